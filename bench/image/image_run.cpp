// The image bench's cutpilot contender: one file copied host to host as an image on lab
// hosts, the way a plan's image step runs it (migration key made on the target and
// authorised on the source, then one agent `image` job on the target that reads the file on
// the source over the migration ssh, writes it sparse and compares SHA-256 on both ends).
//
// Usage: image_run --lab DIR --from HOST:PATH --to HOST:PATH [--compress none|gzip|zstd|auto]
// The job's log lines go to stderr, each after "+S" (seconds since the job started).
// Prints "job_seconds=S" (the image job alone, the links already up, as in a run),
// "total_seconds=S" and "result=JSON"; exit 0 only when the job succeeded.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "bench/lab_link.h"

namespace {

using namespace cutpilot;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

int usage() {
  std::fprintf(stderr,
               "usage: image_run --lab DIR --from HOST:PATH --to HOST:PATH "
               "[--compress none|gzip|zstd|auto]\n");
  return 2;
}

// Splits HOST:/PATH; false when either half is missing or the path is relative.
bool split(const std::string& text, std::string& host, std::string& path) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos || colon == 0) return false;
  host = text.substr(0, colon);
  path = text.substr(colon + 1);
  return !path.empty() && path[0] == '/';
}

}  // namespace

int main(int argc, char** argv) {
  std::string lab, from, to, compress = "none";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--lab")
      lab = value();
    else if (a == "--from")
      from = value();
    else if (a == "--to")
      to = value();
    else if (a == "--compress")
      compress = value();
    else
      return usage();
  }
  std::string source, source_path, target, target_path;
  if (lab.empty() || !split(from, source, source_path) || !split(to, target, target_path) ||
      (compress != "none" && compress != "gzip" && compress != "zstd" && compress != "auto"))
    return usage();

  const auto started = Clock::now();
  bench::LabLink link(lab, source, target, argv[0], {});
  if (!link.ok()) return 1;
  const Json spec = {{"peer", link.peer()},  {"from", source_path}, {"to", target_path},
                     {"compress", compress}, {"volume", "bench"},   {"source_host", source}};
  double job_seconds = 0;
  const auto events = link.run_logged(
      target, {link.run_id() + "/image/" + target, "image", spec.dump()}, job_seconds);
  return bench::report(events, "image copy", job_seconds, started);
}
