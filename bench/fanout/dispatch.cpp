// Dispatch latency on ready hosts: one step on every host and back.
// Two round trips are measured: a facts request (the agent reads /proc, statvfs and
// PATH, then answers) and a real step, an exec job running `true` (claim a spool,
// start a detached runner, fork/exec, log, report JobFinished).
//
// Usage: fanout_dispatch LAB_DIR N [ROUNDS]  (hosts f0..f{N-1} must be in the lab);
// DISPATCH_TRACE=1 also prints each round: first, median and last answer, busy CPU.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "transport/fleet.h"

int main(int argc, char** argv) {
  using namespace cutpilot;
  using Clock = std::chrono::steady_clock;
  if (argc < 3) {
    std::fprintf(stderr, "usage: fanout_dispatch LAB_DIR N [ROUNDS]\n");
    return 2;
  }
  const std::string lab = argv[1];
  const int n = std::stoi(argv[2]);
  const int rounds = argc > 3 ? std::stoi(argv[3]) : 20;
  std::vector<transport::SshTarget> targets;
  for (int i = 0; i < n; ++i) {
    transport::SshTarget t;
    t.name = t.address = "f" + std::to_string(i);
    t.ssh_config = lab + "/ssh_config";
    targets.push_back(t);
  }
  std::string error;
  auto agent = transport::AgentBinary::load(
      std::string(argv[0]).substr(0, std::string(argv[0]).rfind('/')) + "/cutpilot-agent", error);
  if (!agent) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  transport::Fleet fleet(targets, *agent);
  fleet.start();
  int ready = 0;
  fleet.run_until(
      [&](const std::vector<transport::HostEvent>& events) {
        for (const auto& e : events) {
          if (e.state == transport::LinkState::kReady) ++ready;
          if (e.state == transport::LinkState::kFailed) {
            std::fprintf(stderr, "%s\n", e.error.c_str());
            std::exit(1);
          }
        }
        return ready == n;
      },
      std::chrono::seconds(120));
  if (ready != n) return 1;
  // Sends one request per host and runs the fleet until every host answered; the time.
  auto round = [&](const std::function<void(const std::string&)>& send,
                   const std::function<bool(const transport::HostEvent&)>& answer) {
    // Busy CPU time of the whole machine so far, in jiffies (DISPATCH_TRACE=1 prints it).
    auto busy = [] {
      unsigned long long u = 0, ni = 0, sy = 0, id = 0, io = 0, irq = 0, sirq = 0;
      if (FILE* f = std::fopen("/proc/stat", "r")) {
        if (std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu", &u, &ni, &sy, &id, &io, &irq,
                        &sirq) != 7)
          u = ni = sy = irq = sirq = 0;
        std::fclose(f);
      }
      return u + ni + sy + irq + sirq;
    };
    const auto busy0 = busy();
    const auto start = Clock::now();
    for (const auto& host : fleet.hosts())
      send(host);
    const double sent = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    std::vector<double> at;
    std::set<std::string> answered;
    fleet.run_until(
        [&](const std::vector<transport::HostEvent>& events) {
          for (const auto& e : events)
            if (answer(e) && answered.insert(e.host).second)
              at.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
          return static_cast<int>(answered.size()) == n;
        },
        std::chrono::seconds(30));
    if (static_cast<int>(answered.size()) != n) std::exit(1);
    if (std::getenv("DISPATCH_TRACE"))
      std::printf("sent %.1f first %.1f p50 %.1f last %.1f busy %llu jiffies\n", sent, at.front(),
                  at[at.size() / 2], at.back(), busy() - busy0);
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  };
  auto report = [&](const char* what, std::vector<double> ms) {
    std::sort(ms.begin(), ms.end());
    std::printf("%d hosts: %s, median %.1f ms, min %.1f ms, max %.1f ms (%d rounds)\n", n, what,
                ms[ms.size() / 2], ms.front(), ms.back(), rounds);
  };
  std::vector<double> facts, steps;
  for (int r = 0; r < rounds; ++r)
    facts.push_back(round([&](const std::string& h) { fleet.send(h, proto::Facts{}); },
                          [](const transport::HostEvent& e) {
                            return e.message &&
                                   std::holds_alternative<proto::HostFacts>(*e.message);
                          }));
  const std::string run = "dispatch-" + std::to_string(getpid());
  for (int r = 0; r < rounds; ++r) {
    const std::string id = run + "/true-" + std::to_string(r) + "/";
    steps.push_back(round(
        [&](const std::string& h) {
          fleet.send(h, proto::StartJob{id + h, "exec", R"({"argv": ["true"]})"});
        },
        [&](const transport::HostEvent& e) {
          const auto* done = e.message ? std::get_if<proto::JobFinished>(&*e.message) : nullptr;
          return done && done->job_id == id + e.host && done->state == proto::JobState::kSucceeded;
        }));
    for (const auto& h : fleet.hosts())
      fleet.send(h, proto::Ack{id + h, 0});
    // Each step starts from idle hosts: the agents clear the last step's spools first.
    fleet.run_until([](const std::vector<transport::HostEvent>&) { return false; },
                    std::chrono::milliseconds(100));
  }
  report("facts request to last answer", facts);
  report("exec step (`true`) to last job-finished", steps);
  return 0;
}
