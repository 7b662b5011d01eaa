// The tracked final sync's bench driver: a watch of the source armed (as a tracked pre-sync
// arms it), the changes of a tracking window made, then the final sync the way a plan's cold
// sync runs it: the seal on the source, then the target's agent pulls the sealed list.
//
// Usage: track_run --lab DIR --from HOST:SRC/ --to HOST:DST/ --change 'SHELL COMMAND'
//                  [--delete] [--cipher C]
// Prints "arm_seconds=S" (the watch set up over the tree: the hot phase's, not the window's),
// "seal_seconds=S", "job_seconds=S" (seal + sync: the final sync as the window pays for it),
// "total_seconds=S" and "result=JSON" (the sync's); exit 0 on success, 1 when the set was
// incomplete (the copy would have scanned) or a job failed.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "bench/lab_link.h"

namespace {

using namespace cutpilot;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int usage() {
  std::fprintf(stderr,
               "usage: track_run --lab DIR --from HOST:SRC/ --to HOST:DST/ --change CMD "
               "[--delete] [--cipher C]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string lab, from, to, change, cipher;
  if (const char* c = std::getenv("CUTPILOT_BENCH_CIPHER")) cipher = c;
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
    else if (a == "--change")
      change = value();
    else if (a == "--cipher")
      cipher = value();
    else if (a == "--delete")
      del = true;
    else
      return usage();
  }
  const size_t fc = from.find(':'), tc = to.find(':');
  if (lab.empty() || change.empty() || fc == std::string::npos || tc == std::string::npos)
    return usage();
  const std::string source = from.substr(0, fc), target = to.substr(0, tc);
  const auto started = Clock::now();

  bench::LabLink link(lab, source, target, argv[0]);
  if (!link.ok()) return 1;
  const std::string watch = link.run_id() + "/track/" + source;
  std::vector<proto::Message> ended;
  const auto arming = Clock::now();
  if (!link.start_until(
          source, {watch, "track", Json{{"path", from.substr(fc + 1)}}.dump()},
          [](const proto::Message& m) { return std::holds_alternative<proto::Progress>(m); },
          ended)) {
    std::fprintf(stderr, "the watch did not arm: %s\n", bench::failure_of(ended).c_str());
    return 1;
  }
  std::printf("arm_seconds=%.3f\n", since(arming));
  if (std::system(change.c_str()) != 0) {
    std::fprintf(stderr, "the change command failed: %s\n", change.c_str());
    return 1;
  }
  double seal_seconds = 0, sync_seconds = 0;
  const auto sealed = link.run_logged(
      source, {link.run_id() + "/seal/" + source, "track", Json{{"seal", watch}}.dump()},
      seal_seconds);
  const proto::JobFinished* answer = bench::finished(sealed);
  const Json set = answer ? Json::parse(answer->result, nullptr, false) : Json();
  if (!set.is_object() || !set.value("complete", false)) {
    std::fprintf(
        stderr, "the set is incomplete: %s\n",
        set.is_object() ? set.value("lost", "").c_str() : bench::failure_of(sealed).c_str());
    return 1;
  }
  Json peer = link.peer();
  if (!cipher.empty()) peer["cipher"] = cipher;
  const Json spec = {
      {"mode", "copy"},
      {"local", to.substr(tc + 1)},
      {"remote", from.substr(fc + 1)},
      {"peer", peer},
      {"delete", del},
      {"tracked", {{"list", set["list"]}, {"remote", true}, {"paths", set["paths"]}}}};
  const auto events = link.run_logged(
      target, {link.run_id() + "/sync/" + target, "sync", spec.dump()}, sync_seconds);
  link.cancel(watch);
  std::printf("seal_seconds=%.3f\n", seal_seconds);
  return bench::report(events, "tracked sync", seal_seconds + sync_seconds, started);
}
