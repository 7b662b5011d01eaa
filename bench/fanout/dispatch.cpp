// Dispatch latency on ready hosts: one message to every host's agent and back.
// Until jobs exist (exec of `true`), the round trip is a facts request: the agent
// does real work (reads /proc, statvfs, searches PATH) before it answers.
//
// Usage: fanout_dispatch LAB_DIR N [ROUNDS]  (hosts f0..f{N-1} must be in the lab)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

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
  std::vector<double> ms;
  for (int r = 0; r < rounds; ++r) {
    const auto start = Clock::now();
    for (const auto& host : fleet.hosts())
      fleet.send(host, proto::Facts{});
    std::set<std::string> answered;
    fleet.run_until(
        [&](const std::vector<transport::HostEvent>& events) {
          for (const auto& e : events)
            if (e.message && std::holds_alternative<proto::HostFacts>(*e.message))
              answered.insert(e.host);
          return static_cast<int>(answered.size()) == n;
        },
        std::chrono::seconds(30));
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf(
      "%d hosts: dispatch to last answer, median %.1f ms, min %.1f ms, max %.1f ms (%d rounds)\n",
      n, ms[ms.size() / 2], ms.front(), ms.back(), rounds);
  return 0;
}
