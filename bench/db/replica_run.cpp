// The db bench's replication contender: a PostgreSQL database replicated host to host on lab
// hosts while a writer runs on the source, then caught up once the writer has stopped, the
// way a plan's replicate step and its catch-up run (migration key made on the target and
// authorised on the source; the agent's `db` job with action replicate on the target, then one
// with action catch-up).
//
// Usage: replica_run --lab DIR --from HOST --to HOST --database DB --writes COMMAND
//                    [--verify no]   (the catch-up without its row counts: "verify": false)
// The writer (`sh -c COMMAND`, here) starts once the replica streams and runs to its end; the
// catch-up starts when it has exited (the writers stopped). The endpoints come from each
// host's postgres.env (TCP to 127.0.0.1:PGPORT as postgres, password "lab"); the source's
// cluster runs with wal_level = logical (`lab postgres --logical`). The target database may
// exist (it is kept as DB_old_RUN by the catch-up's swap). Prints "first_copy_seconds=S"
// (the replicate job until it streams), "lag_at_stop=TEXT" (its last lag before the
// catch-up), "catch_up_seconds=S" (the catch-up job alone: the window's part) and
// "result=JSON"; the job logs go to stderr. Exit 0 only when both jobs did their part.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "bench/lab_link.h"

extern char** environ;

namespace {

using namespace cutpilot;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

constexpr char kLabPassword[] = "lab";

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> opt;
  for (int i = 1; i + 1 < argc; i += 2)
    opt[argv[i]] = argv[i + 1];
  const std::string lab = opt["--lab"], source = opt["--from"], target = opt["--to"],
                    database = opt["--database"], writes = opt["--writes"];
  const bool verify = opt["--verify"] != "no";
  if (lab.empty() || source.empty() || target.empty() || database.empty() || writes.empty() ||
      argc % 2 == 0) {
    std::fprintf(stderr,
                 "usage: replica_run --lab DIR --from HOST --to HOST --database DB --writes CMD\n");
    return 2;
  }
  std::map<std::string, Json> endpoint;
  for (const auto& host : {source, target}) {
    auto env = bench::env_file(lab + "/hosts/" + host + "/postgres.env");
    if (env["PGPORT"].empty()) {
      std::fprintf(stderr, "%s: no postgres.env (run `tests/lab/lab postgres` first)\n",
                   host.c_str());
      return 1;
    }
    endpoint[host] = {{"host", "127.0.0.1"},      {"port", std::atoi(env["PGPORT"].c_str())},
                      {"database", database},     {"user", "postgres"},
                      {"password", kLabPassword}, {"bin_dir", env["PGBIN"]}};
  }
  bench::LabLink link(lab, source, target, argv[0]);
  if (!link.ok()) return 1;
  Json spec = {{"engine", "postgres"},
               {"action", "replicate"},
               {"peer", link.peer()},
               {"from", endpoint[source]},
               {"to", endpoint[target]},
               {"create", true},
               {"publisher_host", "127.0.0.1"},
               {"replica_identity_full", true},  // pgbench_history has no key
               {"run", "bench" + std::to_string(getpid())}};
  if (!verify) spec["verify"] = false;
  const std::string replica = link.run_id() + "/replicate/" + target;
  std::string lag;
  std::optional<uint64_t> estimate_ms;  // the job's estimate of the catch-up as it first streamed
  const auto note = [&](const proto::Message& m) {
    if (const auto* p = std::get_if<proto::Progress>(&m)) {
      if (p->detail.starts_with("streaming") && !estimate_ms) estimate_ms = p->estimate_ms;
      if (p->detail.starts_with("streaming")) lag = p->detail;
      return p->detail.starts_with("streaming");
    }
    if (const auto* line = std::get_if<proto::LogLine>(&m))
      std::fprintf(stderr, "[replicate] %s\n", line->line.c_str());
    return false;
  };
  const auto started = Clock::now();
  std::vector<proto::Message> ended;
  if (!link.start_until(target, {replica, "db", spec.dump()}, note, ended)) {
    std::fprintf(stderr, "replicate failed: %s\n", bench::failure_of(ended).c_str());
    return 1;
  }
  const double first_copy = seconds_since(started);
  // The service writes while the replica streams; the fleet follows the lag meanwhile.
  pid_t writer = -1;
  const char* sh_argv[] = {"sh", "-c", writes.c_str(), nullptr};
  if (posix_spawnp(&writer, "sh", nullptr, nullptr, const_cast<char**>(sh_argv), environ) != 0) {
    std::perror("replica_run: the writer");
    link.cancel(replica);
    return 1;
  }
  int status = 0;
  bool exited = false;
  link.pump_until([&] { return exited = exited || waitpid(writer, &status, WNOHANG) == writer; },
                  [&](const std::string& id, const proto::Message& m) {
                    if (id == replica) note(m);
                  },
                  std::chrono::hours(2));
  if (!exited || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "the writer failed (%s)\n", exited ? "its exit status" : "it never ended");
    link.cancel(replica);
    return 1;
  }
  std::printf("first_copy_seconds=%.3f\nlag_at_stop=%s\ncatch_up_estimate_seconds=%.3f\n",
              first_copy, lag.c_str(), static_cast<double>(estimate_ms.value_or(0)) / 1000.0);
  spec["action"] = "catch-up";
  double seconds = 0;
  const auto events =
      link.run_logged(target, {link.run_id() + "/catch-up/" + target, "db", spec.dump()}, seconds);
  const proto::JobFinished* done = bench::finished(events);
  const bool ok = done && done->state == proto::JobState::kSucceeded;
  // The replicate job sees its replication gone and ends; a failed catch-up cancels it (which
  // removes the replication).
  if (ok)
    link.pump_until([&] { return link.done(replica); },
                    [](const std::string&, const proto::Message&) {}, std::chrono::seconds(30));
  if (!link.done(replica)) link.cancel(replica);
  if (!ok) {
    std::fprintf(stderr, "catch-up failed: %s\n", bench::failure_of(events).c_str());
    return 1;
  }
  std::printf("catch_up_seconds=%.3f\nresult=%s\n", seconds, done->result.c_str());
  return 0;
}
