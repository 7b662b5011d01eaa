// The bench's cutpilot contender: one host-to-host sync on lab hosts, the way a
// plan's sync step runs it (migration key, target pulls from source, agent job).
//
// Usage: sync_run --lab DIR --from HOST:SRC --to HOST:DST [--parallel N] [--delete]
//                 [--mode copy|estimate|verify] [--cipher C]
// Prints "job_seconds=S" (the sync job alone, the links already up, as in a run) and
// "total_seconds=S" (connects, agent start, key setup included); exit 0 on success.
// The job's log lines go to stderr, each after "+S" (seconds since the job started).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/lab_link.h"

namespace {

using namespace cutpilot;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

int usage() {
  std::fprintf(stderr,
               "usage: sync_run --lab DIR --from HOST:SRC --to HOST:DST [--parallel N] "
               "[--delete] [--mode MODE] [--cipher C]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string lab, from, to, mode = "copy", cipher;
  if (const char* c = std::getenv("CUTPILOT_BENCH_CIPHER")) cipher = c;
  int parallel = 1;
  bool del = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--lab")
      lab = value();
    else if (a == "--from")
      from = value();
    else if (a == "--to")
      to = value();
    else if (a == "--parallel")
      parallel = std::atoi(value().c_str());
    else if (a == "--mode")
      mode = value();
    else if (a == "--cipher")
      cipher = value();
    else if (a == "--delete")
      del = true;
    else
      return usage();
  }
  const size_t fc = from.find(':'), tc = to.find(':');
  if (lab.empty() || fc == std::string::npos || tc == std::string::npos || parallel < 1)
    return usage();
  const std::string source = from.substr(0, fc), target = to.substr(0, tc);
  const auto started = Clock::now();

  bench::LabLink link(lab, source, target, argv[0]);
  if (!link.ok()) return 1;
  Json peer = link.peer();
  if (!cipher.empty()) peer["cipher"] = cipher;
  const Json spec = {{"mode", mode}, {"local", to.substr(tc + 1)}, {"remote", from.substr(fc + 1)},
                     {"peer", peer}, {"parallel", parallel},       {"delete", del}};
  double job_seconds = 0;
  const auto events = link.run_logged(
      target, {link.run_id() + "/sync/" + target, "sync", spec.dump()}, job_seconds);
  return bench::report(events, "sync", job_seconds, started);
}
