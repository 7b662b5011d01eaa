// The executor's JobPort on the SSH fleet: jobs go out through the job tracker (which
// re-attaches them after a reconnect), and fleet events come back as executor updates.
#pragma once

#include <map>
#include <set>
#include <string>

#include "run/executor.h"
#include "transport/fleet.h"
#include "transport/job_tracker.h"

namespace cutpilot::cli {

// Jobs of one run on one fleet.
class FleetPort : public plans::JobPort {
 public:
  FleetPort(const plans::Plan& plan, transport::Fleet& fleet) : plan_(plan), fleet_(fleet) {}

  void start(const std::string& host, const std::string& job_id,
             const plans::JobSpec& job) override;
  void attach(const std::string& host, const std::string& job_id) override;
  void cancel(const std::string& job_id) override;
  void acknowledge(const std::string& job_id) override;
  std::optional<plans::PeerAccess> peer_access(std::string_view host) override;

  // Hands one fleet event to the executor: a host's new state, or its jobs' events.
  void deliver(const transport::HostEvent& event, plans::Executor& executor,
               plans::RunClock::time_point now);

 private:
  const plans::Plan& plan_;
  transport::Fleet& fleet_;
  transport::JobTracker tracker_{fleet_};
  std::set<std::string> cancels_;             // asked while the job's host was not ready
  std::map<std::string, std::string> shown_;  // host → the schema state last handed on
};

// The one line a view shows beside a ready host: agent version, load, free disk, cores.
std::string facts_line(const proto::HostFacts& facts, const transport::LinkInfo& link);

// DESIGN.md's host states: connecting, ready, lost, failed.
const char* schema_host_state(transport::LinkState state);

}  // namespace cutpilot::cli
