// Two lab hosts ("source", "target") with the cockpit's fleet and job tracker, for
// tests of host-to-host jobs (sync, db): runs jobs to the end and links the hosts
// with a migration key the way a run does.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/xattr.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/child.h"
#include "tests/support/lab.h"
#include "tests/support/transport_fixtures.h"
#include "transport/fleet.h"
#include "transport/job_tracker.h"
#include "transport/peer_jobs.h"

namespace cutpilot::test {

// The lab, its fleet (both hosts ready after SetUp) and a tracker.
class PeerLab : public ::testing::Test {
 protected:
  // The run whose migration key links the hosts.
  static constexpr char kRun[] = "run-test";

  explicit PeerLab(std::vector<std::string> addons = {}) : addons_(std::move(addons)) {}
  void SetUp() override {
    ASSERT_TRUE(lab_.ok()) << lab_.log_tail();
    for (const auto& addon : addons_)
      for (const char* host : {"source", "target"})
        ASSERT_TRUE(lab_.run(addon, {host})) << "lab " << addon << " " << host << " failed:\n"
                                             << lab_.log_tail();
    fleet_.start();
    ASSERT_TRUE(fleet_.run_until(
        [&](const std::vector<transport::HostEvent>&) {
          return fleet_.info("source").state == transport::LinkState::kReady &&
                 fleet_.info("target").state == transport::LinkState::kReady;
        },
        std::chrono::seconds(30)));
  }

  // Starts a job and runs the fleet until it finished; its events in order.
  std::vector<proto::Message> run(const std::string& host, proto::StartJob request,
                                  const std::function<void(const proto::Message&)>& seen = {}) {
    const std::string id = request.job_id;
    auto events = transport::run_job(fleet_, tracker_, host, std::move(request),
                                     std::chrono::seconds(120), seen);
    EXPECT_TRUE(tracker_.done(id)) << id << " did not finish within 120 s";
    return events;
  }
  // The job's JobFinished (a failed one saying "no result" when it is missing).
  static const proto::JobFinished& finished(const std::vector<proto::Message>& events) {
    static const proto::JobFinished none{"", 0, proto::JobState::kFailed, -1, "no result", ""};
    return !events.empty() && std::holds_alternative<proto::JobFinished>(events.back())
               ? std::get<proto::JobFinished>(events.back())
               : none;
  }
  // Every log line of the events, one per line.
  static std::string lines(const std::vector<proto::Message>& events) {
    std::string out;
    for (const auto& m : events)
      if (const auto* l = std::get_if<proto::LogLine>(&m)) out += l->line + "\n";
    return out;
  }
  // Runs the fleet until done says so (or 120 s), every job's events going to events_: for
  // tests that run jobs side by side (started with tracker_.start).
  bool pump(const std::function<bool()>& done) {
    std::vector<transport::JobEvent> out;
    return fleet_.run_until(
        [&](const std::vector<transport::HostEvent>& happened) {
          for (const auto& e : happened)
            tracker_.handle(e, out);
          for (auto& e : out)
            events_[e.job_id].push_back(std::move(e.message));
          out.clear();
          return done();
        },
        std::chrono::seconds(120));
  }
  // The job's latest progress's estimate of what follows it (nullopt before any).
  std::optional<uint64_t> estimate_ms(const std::string& id) {
    std::optional<uint64_t> last;
    for (const auto& m : events_[id])
      if (const auto* p = std::get_if<proto::Progress>(&m)) last = p->estimate_ms;
    return last;
  }
  // The job's latest progress detail among events_ ("" before any).
  std::string detail(const std::string& id) {
    std::string last;
    for (const auto& m : events_[id])
      if (const auto* p = std::get_if<proto::Progress>(&m)) last = p->detail;
    return last;
  }
  // SIGKILLs the runner of job id on host (as a host's restart would) and returns once it is
  // gone or a zombie; false when its spool names no runner.
  bool kill_runner(const std::string& host, const std::string& id) {
    char note[64] = {};
    const std::string spool = lab_.host_dir(host) + "/home/.cache/cutpilot/jobs/" + id;
    if (getxattr(spool.c_str(), "user.cutpilot.runner", note, sizeof note - 1) <= 0) return false;
    const pid_t runner = static_cast<pid_t>(std::stol(note));
    if (::kill(runner, SIGKILL) != 0) return false;
    while (::kill(runner, 0) == 0 &&
           capture("grep -s '^State:.*Z' /proc/" + std::to_string(runner) + "/status").empty()) {
    }
    return true;
  }
  // Makes the migration key on the target and authorises it on the source (allowed to
  // forward to permit_open, HOST:PORT each).
  void link_hosts(const std::vector<std::string>& permit_open = {}) {
    auto made = run("target", transport::keygen_job(kRun, "target"));
    ASSERT_EQ(finished(made).state, proto::JobState::kSucceeded) << finished(made).error;
    auto authorized =
        run("source", transport::authorize_job(
                          kRun, "source", transport::public_key_of(finished(made)), permit_open));
    ASSERT_EQ(finished(authorized).state, proto::JobState::kSucceeded)
        << finished(authorized).error;
  }
  // How the target reaches the source (the spec's "peer").
  nlohmann::json peer() const {
    return {{"address", "127.0.0.1"},
            {"port", lab_.port("source")},
            {"user", getenv("USER") ? getenv("USER") : "root"},
            {"host_key", fleet_.info("source").host_key},
            {"key", kRun}};
  }

  std::vector<std::string> addons_;
  std::map<std::string, std::vector<proto::Message>> events_;  // by job id, as pump() saw them
  Lab lab_{{"source", "target"}};
  transport::Fleet fleet_{{target_for(lab_, "source"), target_for(lab_, "target")}, agent_binary()};
  transport::JobTracker tracker_{fleet_};
};

}  // namespace cutpilot::test
