// The cockpit's side of agent jobs: every job's events delivered exactly once, in
// order, across lost links and reconnects.
//
// A job is started by id (StartJob is idempotent on the agent: an existing id is
// followed, never run again). The tracker remembers the newest seq delivered per
// job; when a host comes back it asks for what came after (Attach{after_seq}), or
// repeats StartJob if nothing was heard yet (the claim may or may not have happened).
// Anything at or below the newest seq is dropped, so a replay never doubles an event.
// A followed job (one an earlier cockpit started) is only ever asked for with Attach, on
// every link: an agent without it answers Error(kUnknownJob), passed on as unknown.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "transport/fleet.h"
#include "transport/protocol.h"

namespace cutpilot::transport {

// One event of a tracked job, as the caller gets it.
struct JobEvent {
  std::string host;
  std::string job_id;
  proto::Message message;  // JobStarted (existing = a re-attach note), Progress, LogLine, Health,
                           // JobFinished or Error
  bool unknown = false;    // an Error after which nobody can tell whether the job ran: the agent
                           // has no such job (never started there, or its spool was acknowledged
                           // or expired: kUnknownJob), or lost one it had started
};

// What the tracker knows about one job.
struct TrackedJob {
  std::string host;
  proto::StartJob request;
  uint64_t last_seq = 0;     // the newest event delivered
  bool asked = false;        // StartJob/Attach went out on the current link
  bool attach_only = false;  // followed, not started here: never sent a StartJob
  std::optional<proto::JobFinished> finished;
  std::string error;  // the agent refused or lost the job (an Error naming it)
  int requests = 0;   // StartJob/Attach messages sent (after reconnects > 1)
};

// Starts and follows jobs on a fleet's hosts.
class JobTracker {
 public:
  explicit JobTracker(Fleet& fleet) : fleet_(fleet) {}

  // Starts a job on host (now if the host is ready, else as soon as it is).
  void start(const std::string& host, proto::StartJob request);
  // Follows a job started earlier (e.g. by a cockpit that died) from after_seq on, with Attach
  // only. Asks again even when the job is done here (the agent is asked afresh, from after_seq).
  void follow(const std::string& host, const std::string& job_id, uint64_t after_seq);
  // Takes one fleet event: re-asks after a reconnect, appends new job events to out.
  void handle(const HostEvent& event, std::vector<JobEvent>& out);
  // Asks the agent to cancel a job; false when its host is not ready.
  bool cancel(const std::string& job_id);
  // Tells the agent a finished job's result is safe (its spool goes) and forgets it.
  void acknowledge(const std::string& job_id);
  // A job by id, or nullptr.
  const TrackedJob* find(const std::string& job_id) const;
  // True when the job finished or failed to start.
  bool done(const std::string& job_id) const;

 private:
  void ask(const std::string& job_id, TrackedJob& job);

  Fleet& fleet_;
  std::map<std::string, TrackedJob> jobs_;
};

}  // namespace cutpilot::transport
