#include "agents/db_job.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "agents/command.h"
#include "agents/db_engines.h"
#include "agents/db_replicate.h"
#include "agents/db_replicate_maria.h"
#include "agents/db_run.h"
#include "agents/db_session.h"
#include "agents/db_spec.h"
#include "agents/db_swap.h"
#include "agents/net_stream.h"
#include "agents/peer_ssh.h"
#include "agents/rate_meter.h"
#include "agents/spec_fields.h"
#include "agents/spool.h"
#include "agents/words.h"

namespace cutpilot::agent {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

// The moving part of a copy: what it reports as progress, never going backwards.
struct Transfer {
  const DbSpec& spec;
  JobContext& job;
  uint64_t total = 0;  // the source's size, measured before or while the dump streams
  uint64_t bytes = 0, tables_done = 0, tables_total = 0;
  std::string current;  // what is being done ("table public.x")
  RateMeter rate;
  void report() {
    // tables_done may run ahead of a measurement that is still under way.
    job.progress(proto::Progress{"", 0, bytes, std::max(total, bytes), rate.update(bytes),
                                 std::min(tables_done, tables_total), tables_total, current});
  }
  // Adds the measurement's next row (the size, then one table per row) to rows, and to
  // total and tables_total.
  void on_measured(std::vector<std::string>& rows, std::string row) {
    rows.push_back(std::move(row));
    if (rows.size() == 1) total = std::strtoull(rows.front().c_str(), nullptr, 10);
    if (rows.size() > 1 && !excluded(spec, rows.back())) ++tables_total;
  }
};

// Why a run of the copy's commands failed (each named by what), or nullopt when it did not.
std::optional<proto::JobFinished> outcome(const RunResult& run, const DbSpec& spec,
                                          const std::vector<std::string>& what,
                                          const std::vector<Complaints>& said, JobContext& job) {
  proto::JobFinished done = fail(job, "");
  if (run.stop != StopReason::kNone) {
    done.state = run.stop == StopReason::kCancelled ? proto::JobState::kCancelled
                                                    : proto::JobState::kTimedOut;
    done.error = run.stop == StopReason::kCancelled
                     ? "cancelled"
                     : "timed out after " + std::to_string(spec.timeout_ms) + " ms";
    done.error += "; the target database is unchanged";
    return done;
  }
  std::string why;
  for (size_t i = 0; i < run.commands.size(); ++i) {
    const CommandResult& r = run.commands[i];
    if (!r.start_error.empty()) {
      why += (why.empty() ? "" : "; ") + what[i] + ": " + r.start_error;
    } else if (r.exit_code != 0) {
      why += (why.empty() ? "" : "; ") + what[i] + " failed (" +
             describe_exit(r.exit_code.value_or(-1)) + ")" +
             (said[i].lines.empty() ? "" : ": " + said[i].text());
      done.exit_code = r.exit_code.value_or(-1);
    }
  }
  if (why.empty()) return std::nullopt;
  done.error = why + "; the target database is unchanged";
  return done;
}

// How a streamed copy runs: where it restores, and what it does while it streams.
struct Streaming {
  DbEndpoint into;                     // the side database on the target
  DbCopyOptions dump;                  // the dump's options (with the source's snapshot)
  std::string target_counts;           // queries the restore runs before it commits ("": none)
  std::function<void()> dump_started;  // the dump said its first table: it holds its snapshot
  std::vector<std::string> target_rows;
};

// The far side of a compressed dump: $1 the codec ("auto": zstd when the host has it, else
// gzip), then the dump's argv. It says the codec it picked on stderr (kCodecMark) before
// the dump starts, and exits with the dump's status (POSIX sh has no pipefail).
constexpr std::string_view kCodecMark = "cutpilot-dump codec ";
constexpr const char* kCompressedDump = R"sh(c=$1; shift
if [ "$c" = auto ]; then if command -v zstd >/dev/null 2>&1; then c=zstd; else c=gzip; fi; fi
echo "cutpilot-dump codec $c" >&2
exec 4>&1
rc=$( { { "$@"; echo $? >&5; } | if [ "$c" = zstd ]; then zstd -q -1 -c; else gzip -1 -c; fi >&4; } 5>&1 )
exit "${rc:-1}")sh";

// The codec a dump from source is sent with: none when nothing crosses ssh; zstd only when
// this host can decode it (its zstd reads gzip too).
std::string wire_codec(const DbSpec& spec, const Side& source) {
  if (source.ssh.empty() || spec.compress == "none") return "none";
  if ((spec.compress == "auto" || spec.compress == "zstd") && !on_path("zstd")) return "gzip";
  return spec.compress;
}

// Dump there, piped through this runner (counted) into the restore into the side database;
// compressed on the wire, through a decoder here.
std::optional<proto::JobFinished> stream_copy(Transfer& t, const Side& source, Streaming& s) {
  const DbSpec& spec = t.spec;
  const DbEngine& engine = *spec.engine;
  std::string codec = wire_codec(spec, source);  // "auto" until the far side says
  std::vector<std::string> dump = engine.dump(spec.from, s.dump);
  if (codec != "none") dump.insert(dump.begin(), {"sh", "-c", kCompressedDump, "sh", codec});
  std::vector<Command> pipeline = {on(source, engine, spec.from, dump)};
  std::vector<std::string> what = {"the dump on the source"};
  if (codec != "none") {
    Command decode{.argv = on_path("zstd") ? std::vector<std::string>{"zstd", "-d", "-q", "-c"}
                                           : std::vector<std::string>{"gzip", "-d", "-c"}};
    decode.stdin_from = 0;
    decode.stop_if_producer_fails = true;
    pipeline.push_back(std::move(decode));
    what.push_back("the decompression (" + pipeline.back().argv[0] + " -d) on the target");
  }
  const size_t restore_at = pipeline.size();
  Command restore = on(Side{"target", {}}, engine, s.into, engine.restore(s.into, spec.options));
  restore.stdin_from = restore_at - 1;
  restore.stop_if_producer_fails = true;
  restore.stdin_after = [&] { return s.target_counts; };
  pipeline.push_back(std::move(restore));
  what.push_back("the restore on the target");
  std::vector<Complaints> said(pipeline.size());
  bool started = false;
  uint64_t wire = 0;
  const RunResult run = run_commands(
      pipeline,
      [&](size_t i, proto::Stream stream, std::string line) {
        if (line.empty()) return;
        if (i == 0 && stream == proto::Stream::kStderr && line.rfind(kCodecMark, 0) == 0)
          return void(codec = line.substr(kCodecMark.size()));
        if (i == restore_at && stream == proto::Stream::kStdout && !s.target_counts.empty())
          return s.target_rows.push_back(std::move(line));
        said[i].add(line);
        if (i == 0 && stream == proto::Stream::kStderr) {
          if (auto table = engine.table_of(line)) {
            if (!std::exchange(started, true)) s.dump_started();
            if (!t.current.empty()) ++t.tables_done;
            t.current = "table " + *table;
            t.report();
          } else if (engine.chatter(line)) {
            return;
          }
        }
        t.job.log(stream, (i == 0 ? "[source] " : "[target] ") + line);
      },
      {.timeout = std::chrono::milliseconds(spec.timeout_ms),
       .piped =
           [&](size_t producer, uint64_t n) {
             // The progress counts the dump's own bytes: what the restore reads.
             if (producer + 1 == restore_at) {
               t.bytes += n;
               t.report();
             } else {
               wire += n;
             }
           }},
      t.job);
  auto failed = outcome(run, spec, what, said, t.job);
  if (codec != "none" && !failed)
    t.job.log(proto::Stream::kAgent, "the dump crossed ssh compressed (" + codec +
                                         "): " + std::to_string(wire) + " bytes for " +
                                         std::to_string(t.bytes) + " bytes of dump");
  return failed;
}

// True once 127.0.0.1:port accepts a connection (the tunnel is up).
bool accepts(uint16_t port) {
  std::string error;
  const int fd =
      connect_tcp("127.0.0.1", port, Clock::now() + std::chrono::milliseconds(200), -1, error);
  if (fd >= 0) close(fd);
  return fd >= 0;
}

// pg_dump -Fd -j N here (through an ssh tunnel to the source's server when there is a
// peer) into the job's spool, then pg_restore -j N; the staging is removed either way.
std::optional<proto::JobFinished> parallel_copy(Transfer& t, const Side& source,
                                                const Streaming& s) {
  const DbSpec& spec = t.spec;
  JobContext& job = t.job;
  DbEndpoint from = spec.from;
  std::optional<Background> tunnel;
  if (!source.ssh.empty()) {
    const uint16_t port = free_local_port();
    const std::string host = from.host.empty() ? "127.0.0.1" : from.host;
    const std::string forward = "127.0.0.1:" + std::to_string(port) + ":" + host + ":" +
                                std::to_string(from.port ? from.port : 5432);
    Command ssh{.argv = source.ssh};
    ssh.argv.insert(ssh.argv.end() - 1, {"-N", "-o", "ExitOnForwardFailure=yes", "-L", forward});
    // Many connections through one tunnel: ssh compresses it (zlib) when the copy asks.
    if (spec.compress != "none")
      std::replace(ssh.argv.begin(), ssh.argv.end(), std::string("Compression=no"),
                   std::string("Compression=yes"));
    std::string error;
    tunnel.emplace(ssh, job.dir() + "/tunnel.log", error);
    if (!error.empty()) return fail(job, "the tunnel to the source: " + error);
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (tunnel->running() && !accepts(port) && Clock::now() < deadline)
      usleep(50 * 1000);
    if (!accepts(port)) {
      const std::string log = read_file(job.dir() + "/tunnel.log").value_or("");
      return fail(job, "the tunnel to the source's database did not come up: " + log);
    }
    from.host = "127.0.0.1";
    from.port = port;
    from.socket.clear();
    job.log(proto::Stream::kAgent,
            "tunnel to the source's database on 127.0.0.1:" + std::to_string(port));
  }
  const std::string stage = job.dir() + "/dump";
  remove_tree(stage);
  const std::string jobs = std::to_string(spec.jobs);
  const Side here{"target", {}};
  std::vector<Complaints> said(1);
  auto logged = [&](size_t, proto::Stream stream, std::string line) {
    if (line.empty()) return;
    said[0].add(line);
    if (auto table = spec.engine->table_of(line)) {
      t.tables_done = std::min(t.tables_done + 1, t.tables_total);
      t.current = "dumped " + *table;
      job.log(stream, line);
      return;
    }
    if (line.find("processing data for table") != std::string::npos) {
      t.tables_done = std::min(t.tables_done + 1, t.tables_total);
      t.current = line.substr(line.find("table"));
    }
    if (!spec.engine->chatter(line)) job.log(stream, line);
  };
  // Dump and restore each count their tables: the total is both.
  t.tables_total *= 2;
  Command dump = on(here, *spec.engine, from, spec.engine->dump(from, s.dump));
  std::erase_if(dump.argv, [](const std::string& a) { return a == "-Fp" || a == "-Fc"; });
  // Uncompressed: the staging is local and short-lived, gzip only costs CPU here.
  dump.argv.insert(dump.argv.end(), {"-Fd", "-Z", "0", "-j", jobs, "-f", stage});
  RunResult run = run_commands({dump}, logged,
                               {.timeout = std::chrono::milliseconds(spec.timeout_ms),
                                .tick =
                                    [&] {
                                      t.bytes = std::max(t.bytes, tree_bytes(stage));
                                      t.report();
                                    }},
                               job);
  tunnel.reset();
  auto failed = outcome(run, spec, {"the dump (pg_dump -j " + jobs + ")"}, said, job);
  if (failed && !source.ssh.empty()) {
    // A refused forward shows only in ssh's own words.
    Complaints tunnel_said;
    const std::string log = read_file(job.dir() + "/tunnel.log").value_or("");
    for (size_t at = 0, end; at < log.size(); at = end + 1) {
      end = log.find('\n', at);
      if (end == std::string::npos) end = log.size();
      tunnel_said.add(log.substr(at, end - at));
    }
    if (!tunnel_said.lines.empty()) failed->error += " (ssh tunnel: " + tunnel_said.text() + ")";
  }
  if (!failed) {
    said[0] = {};
    Command restore{
        .argv = {spec.to.bin_dir.empty() ? "pg_restore" : spec.to.bin_dir + "/pg_restore", "-v",
                 "--exit-on-error", "-j", jobs}};
    if (!spec.to.password.empty()) restore.env["PGPASSWORD"] = spec.to.password;
    if (spec.options.no_owner) restore.argv.push_back("--no-owner");
    if (spec.options.no_privileges) restore.argv.push_back("--no-privileges");
    const auto client = spec.engine->client(s.into, s.into.database);
    restore.argv.insert(restore.argv.end(), std::find(client.begin(), client.end(), "-w"),
                        client.end());
    restore.argv.push_back(stage);
    run = run_commands({restore}, logged, {.timeout = std::chrono::milliseconds(spec.timeout_ms)},
                       job);
    failed = outcome(run, spec, {"the restore (pg_restore -j " + jobs + ")"}, said, job);
  }
  remove_tree(stage);
  return failed;
}

// The source's session: its snapshot, its measurement (size, then tables) and its counts.
struct SourceSnapshot {
  std::string id;                     // postgres: the exported snapshot
  std::vector<std::string> measured;  // the size, then one table per row
  bool released = false;              // mariadb: the read lock is gone
};

// Reads what the source's session says up to marker; the failure's message on error.
std::optional<std::vector<std::string>> answer(DbSession& session, const std::string& marker,
                                               const DbSpec& spec, const char* doing,
                                               JobContext& job, std::string& error) {
  const auto deadline =
      Clock::now() + std::chrono::milliseconds(spec.timeout_ms ? spec.timeout_ms : kQueryTimeoutMs);
  auto rows = session.read_until(marker, deadline, error);
  if (!rows) error = std::string(doing) + " on the source: " + error;
  if (!rows) job.log(proto::Stream::kAgent, error);
  return rows;
}

proto::JobFinished copy(const DbSpec& spec, const Side& source, JobContext& job) {
  const DbEngine& engine = *spec.engine;
  const auto started = Clock::now();
  const SideNames names = side_names(engine, spec.to.database, spec.run);
  // The source opens the snapshot that both the dump and its counts read, and says what it
  // holds; meanwhile the target's server gets the side database. The target itself changes
  // only at the very end.
  const std::string marker = "measured|cutpilot";
  DbSession session(on(source, engine, spec.from, engine.client(spec.from, spec.from.database),
                       std::string(engine.snapshot_open) + std::string(engine.size_sql) +
                           std::string(engine.tables_sql) + "SELECT '" + marker + "';\n"),
                    job.dir() + "/source-session.log");
  bool target_exists = false;
  std::string refused = prepare_side(spec, names, target_exists, job);
  std::string error;
  auto opened = answer(session, marker, spec, "measuring the source database", job, error);
  const auto abandon = [&](std::string why) {
    drop_side(spec, names, job);
    return fail(job, std::move(why));
  };
  if (!opened)
    return refused.empty() ? abandon(error + "; the target database is unchanged")
                           : fail(job, error + "; the target database is unchanged");
  if (!refused.empty()) return abandon(refused);
  Transfer transfer{spec, job};
  SourceSnapshot snapshot;
  for (auto& row : *opened) {
    if (row.starts_with("snapshot|")) {
      snapshot.id = row.substr(9);
    } else {
      transfer.on_measured(snapshot.measured, std::move(row));
    }
  }
  job.log(proto::Stream::kAgent, counted(transfer.tables_total, "table") + ", " +
                                     human_bytes(transfer.total) + " on the source");
  // The tables to count: what the measurement listed, less the excluded ones.
  std::vector<std::string> tables;
  for (size_t i = 1; i < snapshot.measured.size(); ++i)
    if (!excluded(spec, snapshot.measured[i])) tables.push_back(snapshot.measured[i]);
  std::string count_sql(engine.count_preamble);
  for (const auto& t : tables)
    count_sql += engine.count_sql(t);
  const bool verify = spec.verify && !spec.options.schema_only;
  const std::string counted_marker = "counted|cutpilot";
  const std::string source_counts = count_sql + "SELECT '" + counted_marker + "';\n";
  // Counted in the snapshot: postgres at once (the dump reads the exported snapshot), mariadb
  // once the dump has started its own (until then this session's lock holds every write).
  const auto release = [&] {
    if (snapshot.released) return;
    snapshot.released = true;
    session.write(std::string(engine.snapshot_release) + (verify ? source_counts : ""));
  };
  if (engine.snapshot_release.empty()) release();

  Streaming streaming{spec.to, spec.options};
  streaming.into.database = names.side;
  if (engine.name == "postgres") streaming.dump.snapshot = snapshot.id;
  const bool inside =
      verify && !engine.restore_rows_on.empty() && spec.options.format == "plain" && spec.jobs == 1;
  if (inside) streaming.target_counts = std::string(engine.restore_rows_on) + count_sql;
  streaming.dump_started = release;
  auto failed = spec.jobs > 1 ? parallel_copy(transfer, source, streaming)
                              : stream_copy(transfer, source, streaming);
  release();
  if (failed) {
    drop_side(spec, names, job);
    return *failed;
  }
  transfer.tables_done = transfer.tables_total;
  transfer.current.clear();
  transfer.report();

  proto::JobFinished done = fail(job, "");
  Json result = {{"bytes", transfer.bytes},
                 {"size", transfer.total},
                 {"tables", tables.size()},
                 {"database", spec.to.database},
                 {"kept", target_exists ? Json(names.kept) : Json(nullptr)}};
  if (verify) {
    auto there = answer(session, counted_marker, spec, "counting rows", job, error);
    if (!there) return abandon(error + "; the target database is unchanged");
    std::optional<std::vector<std::string>> here = streaming.target_rows;
    if (!inside)
      here = run_queries({{Side{"target", {}}, streaming.into, names.side, count_sql}}, engine, job,
                         error)
                 .front();
    if (!here) return abandon("counting rows in the copy " + error);
    const auto source_rows = counts_of(*there), target_rows = counts_of(*here);
    const std::vector<std::string> differ = count_mismatches(tables, source_rows, target_rows);
    result["rows"] = source_rows;
    result["mismatches"] = differ;
    if (!differ.empty()) {
      drop_side(spec, names, job);
      done.error = "row counts differ (source vs copy) in " + counted(differ.size(), "table") +
                   ": " + listed(differ) + "; the copy was dropped, the target database " +
                   "is unchanged";
      done.result = result.dump();
      return done;
    }
    job.log(proto::Stream::kAgent,
            "row counts equal in " + std::string(tables.size() == 1 ? "" : "all ") +
                counted(tables.size(), "table") + " (the source's counted in the dump's snapshot" +
                (inside ? ", the copy's inside the restore, before it committed)" : ")"));
  }
  refused = swap_into_place(spec, names, target_exists, job);
  if (!refused.empty()) return abandon(refused + "; the target database is unchanged");
  result["seconds"] = std::chrono::duration<double>(Clock::now() - started).count();
  done.state = proto::JobState::kSucceeded;
  done.exit_code = 0;
  done.result = result.dump();
  return done;
}

proto::JobFinished connections(const DbSpec& spec, const Side& side, JobContext& job) {
  std::string error;
  const auto rows =
      run_queries(
          {{side, spec.db, spec.db.database, spec.engine->connections_sql(spec.db.database)}},
          *spec.engine, job, error)
          .front();
  if (!rows) return fail(job, "counting connections " + error);
  Json clients = Json::array();
  for (const auto& row : *rows) {
    clients.push_back(row);
    job.log(proto::Stream::kAgent, "connected: " + listed_clients({row}));
  }
  const std::string list = listed_clients(*rows);
  proto::JobFinished done = fail(job, "");
  done.result = Json{{"count", rows->size()}, {"clients", clients}}.dump();
  if (spec.max && rows->size() > *spec.max) {
    done.error = counted(rows->size(), "client") + " still connected to " + spec.db.database +
                 " (at most " + std::to_string(*spec.max) + " allowed): " + list;
    return done;
  }
  job.log(proto::Stream::kAgent,
          counted(rows->size(), "client") + " connected to " + spec.db.database);
  done.state = proto::JobState::kSucceeded;
  done.exit_code = 0;
  return done;
}

}  // namespace

std::optional<proto::JobFinished> copy_schema(const DbSpec& spec, const Side& source,
                                              const std::string& into, JobContext& job) {
  DbSpec schema = spec;
  schema.options.schema_only = true;
  schema.options.format = "plain";
  schema.options.no_replication = true;
  Transfer transfer{schema, job};
  Streaming streaming{spec.to, schema.options};
  streaming.into.database = into;
  streaming.dump_started = [] {};
  return stream_copy(transfer, source, streaming);
}

bool validate_db_spec(std::string_view spec, std::string& error) {
  return parse_db_spec(spec, error).has_value();
}

proto::JobFinished run_db(std::string_view text, JobContext& job) {
  std::string error;
  const std::optional<DbSpec> spec = parse_db_spec(text, error);
  if (!spec) return fail(job, error);
  Side source{spec->action == "connections" ? "database host" : "source", {}};
  if (spec->peer && !spec->direct) {
    auto argv = ssh_argv(*spec->peer, job.dir(), error);
    if (!argv) return fail(job, error);
    argv->push_back(spec->peer->address);
    source.ssh = *argv;
  }
  if (spec->action == "connections") return connections(*spec, source, job);
  if (spec->action == "put-back") return put_back(*spec, job);
  if (spec->action == "drop-kept") return drop_kept(*spec, job);
  const bool maria = spec->engine->name == "mariadb";
  if (spec->action == "replicate")
    return maria ? maria_replicate(*spec, source, job) : replicate(*spec, source, job);
  if (spec->action == "catch-up")
    return maria ? maria_catch_up(*spec, source, job) : catch_up(*spec, source, job);
  if (spec->action == "detach")
    return maria ? maria_detach(*spec, source, job) : detach(*spec, source, job);
  return copy(*spec, source, job);
}

}  // namespace cutpilot::agent
