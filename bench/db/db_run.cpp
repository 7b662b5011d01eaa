// The db bench's cutpilot contender: one PostgreSQL database copied host to host on lab
// hosts, the way a plan's db step runs it (migration key made on the target and
// authorised on the source, then one agent `db` job on the target that streams pg_dump on
// the source over the migration ssh into the restore there, and compares row counts).
//
// Usage: db_run --lab DIR --from HOST --to HOST --database DB [--format plain|custom]
//               [--jobs N] [--direct] [--recreate] [--no-verify]
//               [--compress none|gzip|zstd|auto]
// Both hosts run `tests/lab/lab postgres`; each one's DIR/hosts/HOST/postgres.env gives
// the endpoint (TCP to 127.0.0.1:PGPORT as postgres, password "lab", PGBIN). The target
// database must exist and be empty, as for the other contenders (the harness makes it,
// untimed); --recreate has the job drop and create it ("drop", "create") on its clock;
// --compress sends the dump over ssh compressed ("compress" in the spec, as a plan's
// `compress` key does); --no-verify leaves out the job's row counts ("verify": false; a reference,
// not a default). "jobs" goes into the spec only when N > 1 (an agent without parallel copies
// rejects it as an unknown field; this prints "unsupported: ..." on stderr and exits 3). The job's
// log lines go to stderr, each after "+S" (seconds since the job started). Prints "job_seconds=S"
// (the db job alone, the links already up, as in a run), "total_seconds=S" (connects, agent start,
// key setup included) and "result=JSON"; exit 0 only when the job succeeded.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/lab_link.h"

namespace {

using namespace cutpilot;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

// The lab's superuser password over TCP (tests/lab/lablib/postgres.py).
constexpr char kLabPassword[] = "lab";
// Exit code for "the agent does not support what was asked" (an unknown spec field).
constexpr int kUnsupported = 3;

int usage() {
  std::fprintf(stderr,
               "usage: db_run --lab DIR --from HOST --to HOST --database DB "
               "[--format plain|custom] [--jobs N] [--direct] [--recreate] [--no-verify] "
               "[--compress none|gzip|zstd|auto]\n");
  return 2;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string lab, source, target, database, format = "plain", compress = "none";
  int jobs = 1;
  bool direct = false, recreate = false, verify = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--lab")
      lab = value();
    else if (a == "--from")
      source = value();
    else if (a == "--to")
      target = value();
    else if (a == "--database")
      database = value();
    else if (a == "--format")
      format = value();
    else if (a == "--jobs")
      jobs = std::atoi(value().c_str());
    else if (a == "--direct")
      direct = true;
    else if (a == "--recreate")
      recreate = true;
    else if (a == "--no-verify")
      verify = false;
    else if (a == "--compress")
      compress = value();
    else
      return usage();
  }
  if (lab.empty() || source.empty() || target.empty() || database.empty() || jobs < 1 ||
      (format != "plain" && format != "custom") ||
      (compress != "none" && compress != "gzip" && compress != "zstd" && compress != "auto"))
    return usage();

  // The endpoints, from each host's postgres.env.
  std::map<std::string, Json> endpoint;
  for (const auto& host : {source, target}) {
    const std::string path = lab + "/hosts/" + host + "/postgres.env";
    auto env = bench::env_file(path);
    if (env["PGPORT"].empty()) {
      std::fprintf(stderr, "%s: no PGPORT (run `tests/lab/lab postgres --dir %s %s` first)\n",
                   path.c_str(), lab.c_str(), host.c_str());
      return 1;
    }
    endpoint[host] = {{"host", env.count("PG_TCP_HOST") ? env["PG_TCP_HOST"] : "127.0.0.1"},
                      {"port", std::atoi(env["PGPORT"].c_str())},
                      {"database", database},
                      {"user", "postgres"},
                      {"password", kLabPassword},
                      {"bin_dir", env["PGBIN"]}};
  }
  const auto started = Clock::now();

  // A parallel copy reaches the source's database through a tunnel over the migration ssh:
  // the key may forward to it (and only to it).
  std::vector<std::string> permit_open;
  if (jobs > 1)
    permit_open.push_back(endpoint[source]["host"].get<std::string>() + ":" +
                          std::to_string(endpoint[source]["port"].get<int>()));
  bench::LabLink link(lab, source, target, argv[0], permit_open);
  if (!link.ok()) return 1;
  const Json peer = link.peer();
  Json spec = {{"engine", "postgres"},
               {"peer", peer},
               {"from", endpoint[source]},
               {"to", endpoint[target]},
               {"format", format},
               // Names the side and kept databases (<db>_new_<run>, <db>_old_<run>).
               {"run", "bench" + std::to_string(getpid())}};
  if (recreate) spec.update({{"create", true}, {"drop", true}});
  if (jobs > 1) spec["jobs"] = jobs;
  if (direct) spec["direct"] = true;
  if (!verify) spec["verify"] = false;
  if (compress != "none") spec["compress"] = compress;
  const auto job_started = Clock::now();
  // The job's log on stderr, each line with the seconds since the job started.
  auto events = link.run(
      target, {link.run_id() + "/db/" + target, "db", spec.dump()}, [&](const proto::Message& m) {
        if (const auto* line = std::get_if<proto::LogLine>(&m))
          std::fprintf(stderr, "+%7.3f %s\n", seconds_since(job_started), line->line.c_str());
      });
  const double job_seconds = seconds_since(job_started);

  const proto::JobFinished* done = bench::finished(events);
  if (!done || done->state != proto::JobState::kSucceeded) {
    const std::string why = bench::failure_of(events);
    if (why.find("unknown db field") != std::string::npos) {
      std::fprintf(stderr, "unsupported: %s\n", why.c_str());
      return kUnsupported;
    }
    std::fprintf(stderr, "db copy failed: %s\n", why.c_str());
    if (done && !done->result.empty()) std::printf("result=%s\n", done->result.c_str());
    return 1;
  }
  std::printf("job_seconds=%.3f\ntotal_seconds=%.3f\nresult=%s\n", job_seconds,
              seconds_since(started), done->result.c_str());
  return 0;
}
