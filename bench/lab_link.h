// What the bench drivers share: two lab hosts connected the way a run connects them
// (fleet, agents, the run's migration key from target to source), one job at a time.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "transport/fleet.h"
#include "transport/job_tracker.h"
#include "transport/peer_jobs.h"

namespace cutpilot::bench {

// KEY=VALUE lines of a lab env file (values may be single-quoted); empty when unreadable.
inline std::map<std::string, std::string> env_file(const std::string& path) {
  std::map<std::string, std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    std::string value = line.substr(eq + 1);
    if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'')
      value = value.substr(1, value.size() - 2);
    out[line.substr(0, eq)] = value;
  }
  return out;
}

// The port of host in the lab's ssh_config (how the target reaches the source).
inline int lab_port(const std::string& lab, const std::string& host) {
  std::ifstream in(lab + "/ssh_config");
  std::string key, value, rest;
  bool in_host = false;
  while (in >> key >> value) {
    std::getline(in, rest);
    if (key == "Host") in_host = value == host;
    if (in_host && key == "Port") return std::atoi(value.c_str());
  }
  return -1;
}

// The JobFinished that ends events, or nullptr.
inline const proto::JobFinished* finished(const std::vector<proto::Message>& events) {
  return events.empty() ? nullptr : std::get_if<proto::JobFinished>(&events.back());
}

// Why a job did not succeed: its error, or the agent's refusal, or "no result".
inline std::string failure_of(const std::vector<proto::Message>& events) {
  if (const auto* done = finished(events)) return done->error;
  if (!events.empty())
    if (const auto* refused = std::get_if<proto::Error>(&events.back()))
      return "refused: " + refused->message;
  return "no result";
}

// Prints what a driver prints for a job that ended: "job_seconds=S", "total_seconds=S" (since
// total_start) and "result=JSON", and returns 0; or "WHAT failed: why" on stderr and 1.
inline int report(const std::vector<proto::Message>& events, const char* what, double job_seconds,
                  std::chrono::steady_clock::time_point total_start) {
  const proto::JobFinished* done = finished(events);
  if (!done || done->state != proto::JobState::kSucceeded) {
    std::fprintf(stderr, "%s failed: %s\n", what, failure_of(events).c_str());
    return 1;
  }
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - total_start).count();
  std::printf("job_seconds=%.3f\ntotal_seconds=%.3f\nresult=%s\n", job_seconds, total,
              done->result.c_str());
  return 0;
}

// Source and target of a lab, connected, with the run's migration key in place; the key
// is revoked and deleted when this ends.
class LabLink {
 public:
  // Connects both hosts (the agent beside self, argv[0]) and links them; ok() says whether.
  LabLink(const std::string& lab, const std::string& source, const std::string& target,
          const std::string& self, const std::vector<std::string>& permit_open = {})
      : lab_(lab), source_(source), target_(target), run_("bench-" + std::to_string(getpid())) {
    std::vector<transport::SshTarget> targets;
    for (const auto& name : {source, target}) {
      transport::SshTarget t;
      t.name = t.address = name;
      t.ssh_config = lab + "/ssh_config";
      targets.push_back(t);
    }
    std::string error;
    auto agent =
        transport::AgentBinary::load(self.substr(0, self.rfind('/')) + "/cutpilot-agent", error);
    if (!agent) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return;
    }
    fleet_.emplace(targets, *agent);
    tracker_.emplace(*fleet_);
    fleet_->start();
    fleet_->run_until([&](const auto&) { return ready(source) && ready(target); },
                      std::chrono::seconds(60));
    if (!ready(source) || !ready(target)) {
      std::fprintf(stderr, "hosts not ready: %s / %s\n", fleet_->info(source).error.c_str(),
                   fleet_->info(target).error.c_str());
      return;
    }
    auto keygen = run(target, transport::keygen_job(run_, target));
    const std::string key = finished(keygen) ? transport::public_key_of(*finished(keygen)) : "";
    auto auth = run(source, transport::authorize_job(run_, source, key, permit_open));
    if (key.empty() || !finished(auth) || finished(auth)->state != proto::JobState::kSucceeded) {
      std::fprintf(stderr, "cannot set up the migration key: %s\n",
                   key.empty() ? failure_of(keygen).c_str() : failure_of(auth).c_str());
      return;
    }
    linked_ = true;
  }
  ~LabLink() {
    if (!linked_) return;
    run(source_, transport::revoke_job(run_, source_));
    run(target_, transport::forget_job(run_, target_));
  }
  LabLink(const LabLink&) = delete;
  LabLink& operator=(const LabLink&) = delete;

  // Whether both hosts are ready and linked.
  bool ok() const { return linked_; }
  // The run id (job ids start with it).
  const std::string& run_id() const { return run_; }
  // How the target reaches the source (a spec's "peer").
  nlohmann::json peer() const {
    return {{"address", "127.0.0.1"},
            {"port", lab_port(lab_, source_)},
            {"host_key", fleet_->info(source_).host_key},
            {"key", run_}};
  }
  // Runs one job to its end with its log lines on stderr, each after "+S" (seconds since
  // the job started); its events. seconds gets how long the job took.
  std::vector<proto::Message> run_logged(const std::string& host, proto::StartJob request,
                                         double& seconds) {
    const auto started = std::chrono::steady_clock::now();
    auto since = [&] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    };
    auto events = run(host, std::move(request), [&](const proto::Message& m) {
      if (const auto* line = std::get_if<proto::LogLine>(&m))
        std::fprintf(stderr, "+%7.3f %s\n", since(), line->line.c_str());
    });
    seconds = since();
    return events;
  }
  // Starts a job and drives the fleet until until(event) is true for one of its events; the
  // job goes on after. False when it ended first (its last events go to failed_with).
  bool start_until(const std::string& host, proto::StartJob request,
                   const std::function<bool(const proto::Message&)>& until,
                   std::vector<proto::Message>& failed_with) {
    const std::string id = request.job_id;
    tracker_->start(host, std::move(request));
    bool reached = false;
    std::vector<transport::JobEvent> out;
    fleet_->run_until(
        [&](const std::vector<transport::HostEvent>& happened) {
          for (const auto& e : happened)
            tracker_->handle(e, out);
          for (auto& e : out)
            if (e.job_id == id) {
              reached = reached || until(e.message);
              failed_with.push_back(std::move(e.message));
            }
          out.clear();
          return reached || tracker_->done(id);
        },
        std::chrono::minutes(30));
    return reached;
  }
  // Drives the fleet until done() (or limit), each event of every job to seen.
  void pump_until(const std::function<bool()>& done,
                  const std::function<void(const std::string& job_id, const proto::Message&)>& seen,
                  std::chrono::milliseconds limit) {
    std::vector<transport::JobEvent> out;
    fleet_->run_until(
        [&](const std::vector<transport::HostEvent>& happened) {
          for (const auto& e : happened)
            tracker_->handle(e, out);
          for (const auto& e : out)
            seen(e.job_id, e.message);
          out.clear();
          return done();
        },
        limit);
  }
  // True when the job has ended.
  bool done(const std::string& job_id) const { return tracker_->done(job_id); }
  // Cancels a job started before and drives the fleet until it has ended.
  void cancel(const std::string& job_id) {
    tracker_->cancel(job_id);
    std::vector<transport::JobEvent> out;
    fleet_->run_until(
        [&](const std::vector<transport::HostEvent>& happened) {
          for (const auto& e : happened)
            tracker_->handle(e, out);
          out.clear();
          return tracker_->done(job_id);
        },
        std::chrono::minutes(1));
  }
  // Runs one job to its end; its events (seen gets each as it comes).
  std::vector<proto::Message> run(const std::string& host, proto::StartJob request,
                                  const std::function<void(const proto::Message&)>& seen = {}) {
    return transport::run_job(*fleet_, *tracker_, host, std::move(request), std::chrono::hours(2),
                              seen);
  }

 private:
  bool ready(const std::string& host) const {
    return fleet_->info(host).state == transport::LinkState::kReady;
  }

  std::string lab_, source_, target_, run_;
  std::optional<transport::Fleet> fleet_;
  std::optional<transport::JobTracker> tracker_;
  bool linked_ = false;
};

}  // namespace cutpilot::bench
