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
#include "agents/db_spec.h"
#include "agents/net_stream.h"
#include "agents/peer_ssh.h"
#include "agents/rate_meter.h"
#include "agents/spec_fields.h"
#include "agents/spool.h"

namespace cutpilot::agent {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

// At most this many mismatching tables or clients are listed in a message.
constexpr size_t kMaxListed = 10;
// Measuring, listing and counting queries get this long each (unless the job has less).
constexpr uint64_t kQueryTimeoutMs = 10 * 60 * 1000;

// Where a command runs: on this host, or on the peer through ssh.
struct Side {
  std::string name;              // "source" or "target", for messages
  std::vector<std::string> ssh;  // empty: here
};

// command (argv) on side, with the endpoint's password in the engine's variable.
Command on(const Side& side, const DbEngine& engine, const DbEndpoint& e,
           std::vector<std::string> argv, std::string input = "") {
  const std::string var(engine.password_env);
  if (side.ssh.empty()) {
    Command c{.argv = std::move(argv), .stdin_text = std::move(input)};
    if (!e.password.empty()) c.env[var] = e.password;
    return c;
  }
  // The password is the first line of ssh's stdin, read by the far shell into the variable.
  const std::string script = "IFS= read -r p || :; if [ -n \"$p\" ]; then " + var + "=$p; export " +
                             var + "; fi; unset p; exec \"$@\"";
  std::vector<std::string> remote = {"sh", "-c", script, "sh"};
  remote.insert(remote.end(), argv.begin(), argv.end());
  Command c{.argv = side.ssh};
  c.argv.push_back(shell_line(remote));
  c.stdin_text = e.password + "\n" + input;
  return c;
}

// The last few stderr lines of one command, to say why it failed.
struct Complaints {
  std::vector<std::string> lines;
  void add(const std::string& line) {
    if (line.empty()) return;
    lines.push_back(line);
    if (lines.size() > 3) lines.erase(lines.begin());
  }
  std::string text() const {
    std::string out;
    for (const auto& l : lines)
      out += (out.empty() ? "" : " | ") + l;
    return out;
  }
};

// One query: SQL through the engine's client on a side.
struct Query {
  const Side& side;
  const DbEndpoint& endpoint;
  std::string database;
  std::string sql;
};

// Runs queries at once (each side pays its round trips in parallel); each one's output
// lines, or nullopt with error set to the first failure.
std::vector<std::optional<std::vector<std::string>>> run_queries(const std::vector<Query>& queries,
                                                                 const DbEngine& engine,
                                                                 JobContext& job,
                                                                 std::string& error) {
  std::vector<Command> commands;
  for (const auto& q : queries)
    commands.push_back(
        on(q.side, engine, q.endpoint, engine.client(q.endpoint, q.database), q.sql));
  std::vector<std::vector<std::string>> rows(queries.size());
  std::vector<Complaints> complaints(queries.size());
  const RunResult run = run_commands(
      commands,
      [&](size_t i, proto::Stream stream, std::string line) {
        if (stream == proto::Stream::kStdout) {
          if (!line.empty()) rows[i].push_back(std::move(line));
          return;
        }
        complaints[i].add(line);
        job.log(stream, "[" + queries[i].side.name + "] " + line);
      },
      {.timeout = std::chrono::milliseconds(kQueryTimeoutMs)}, job);
  std::vector<std::optional<std::vector<std::string>>> out(queries.size());
  for (size_t i = 0; i < queries.size(); ++i) {
    const CommandResult& r = run.commands[i];
    std::string why;
    if (run.stop != StopReason::kNone) {
      why = run.stop == StopReason::kCancelled ? "cancelled" : "timed out";
    } else if (!r.start_error.empty()) {
      why = r.start_error;
    } else if (r.exit_code != 0) {
      why = describe_exit(r.exit_code.value_or(-1)) +
            (complaints[i].lines.empty() ? "" : ": " + complaints[i].text());
    }
    if (why.empty()) {
      out[i] = std::move(rows[i]);
    } else if (error.empty()) {
      error = "on the " + queries[i].side.name + ": " + why;
    }
  }
  return out;
}

// Row counts per table ("schema.table" -> count) from a count query's rows.
std::map<std::string, uint64_t> counts_of(const std::vector<std::string>& rows) {
  std::map<std::string, uint64_t> counts;
  for (const auto& row : rows) {
    const size_t bar = row.rfind('|');
    if (bar != std::string::npos) counts[row.substr(0, bar)] = std::stoull(row.substr(bar + 1));
  }
  return counts;
}

bool excluded(const DbSpec& spec, const std::string& table) {
  const std::string bare = table.substr(table.find('.') + 1);
  for (const auto& x : spec.options.exclude_tables)
    if (x == table || x == bare) return true;
  return false;
}

proto::JobFinished fail(JobContext& job, std::string error) {
  return failed_result(job.job_id(), std::move(error));
}

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
    done.error += "; the target database may hold a partial copy";
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
  done.error = why;
  return done;
}

// The row counts a copy takes while it runs: the source's once it is dumped (while the target
// still builds its indexes), the target's inside the restore's transaction, before it commits
// (its own rows need no commit-log lookups and leave no hint bits to write).
struct RunningCounts {
  std::function<std::optional<Command>()> source;  // the source's count (nullopt: none)
  // The target's count, queries the restore runs before it commits ("": not inside it).
  std::function<std::string()> target;
  std::vector<std::string> source_rows, target_rows;
  bool source_started = false, target_inside = false;
};

// Dump there, piped through this runner (counted) into the restore here. A query given as
// beside runs at the same time (the source's measurement: no round trip before the first
// byte moves); its rows land in beside_rows. Rows are counted as counts says.
std::optional<proto::JobFinished> stream_copy(Transfer& t, const Side& source, const Query* beside,
                                              std::vector<std::string>& beside_rows,
                                              RunningCounts& counts) {
  const DbSpec& spec = t.spec;
  const DbEngine& engine = *spec.engine;
  std::vector<Complaints> said(4);
  bool dumped = false, measured = !beside;  // each finished cleanly
  std::vector<Command> pipeline = {
      on(source, engine, spec.from, engine.dump(spec.from, spec.options)), [&] {
        Command restore =
            on(Side{"target", {}}, engine, spec.to, engine.restore(spec.to, spec.options));
        restore.stdin_from = 0;
        restore.stop_if_producer_fails = true;
        restore.stdin_after = [&] {
          std::string sql = measured ? counts.target() : "";  // the tables must all be known
          counts.target_inside = !sql.empty();
          return sql;
        };
        return restore;
      }()};
  if (beside)
    pipeline.push_back(on(beside->side, engine, beside->endpoint,
                          engine.client(beside->endpoint, beside->database), beside->sql));
  const size_t counting = pipeline.size();
  const RunResult run = run_commands(
      pipeline,
      [&](size_t i, proto::Stream stream, std::string line) {
        if (line.empty()) return;
        if (i == counting && stream == proto::Stream::kStdout)
          return counts.source_rows.push_back(std::move(line));
        if (i == 1 && counts.target_inside && stream == proto::Stream::kStdout)
          return counts.target_rows.push_back(std::move(line));
        if (i == 2 && beside && stream == proto::Stream::kStdout)
          return t.on_measured(beside_rows, std::move(line));
        said[i].add(line);
        if (i == 0 && stream == proto::Stream::kStderr) {
          if (auto table = engine.table_of(line)) {
            if (!t.current.empty()) ++t.tables_done;
            t.current = "table " + *table;
            t.report();
          } else if (engine.chatter(line)) {
            return;
          }
        }
        t.job.log(stream,
                  (i == 1 ? "[target] " : "[source] ") + line);  // 2, 3: measuring, counting
      },
      {.timeout = std::chrono::milliseconds(spec.timeout_ms),
       .piped =
           [&](size_t, uint64_t n) {
             t.bytes += n;
             t.report();
           },
       .finished = [&](size_t i, int exit_code) -> std::vector<Command> {
         dumped = dumped || (i == 0 && exit_code == 0);
         measured = measured || (i == 2 && exit_code == 0);
         if (!dumped || !measured || counts.source_started) return {};
         auto command = counts.source();
         counts.source_started = command.has_value();
         if (!command) return {};
         return {std::move(*command)};
       }},
      t.job);
  return outcome(run, spec,
                 {"the dump on the source", "the restore on the target", "measuring the source",
                  "counting the source's rows"},
                 said, t.job);
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
std::optional<proto::JobFinished> parallel_copy(Transfer& t, const Side& source) {
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
  Command dump = on(here, *spec.engine, from, spec.engine->dump(from, spec.options));
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
    const auto client = spec.engine->client(spec.to, spec.to.database);
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

proto::JobFinished copy(const DbSpec& spec, const Side& source, JobContext& job) {
  const DbEngine& engine = *spec.engine;
  const Side target{"target", {}};
  const auto started = Clock::now();
  std::string error;
  // Measure the source (its size, then its tables, one round trip): what will move, and
  // which tables to count afterwards. A streamed copy into a database that needs no preparing
  // measures while the dump runs; otherwise the target is made ready meanwhile.
  const Query measure{source, spec.from, spec.from.database,
                      std::string(engine.size_sql) + std::string(engine.tables_sql)};
  const bool measure_beside = spec.jobs == 1 && !spec.drop && !spec.create;
  Transfer transfer{spec, job};
  std::vector<std::string> measured;
  if (!measure_beside) {
    std::vector<Query> first = {measure};
    if (spec.drop || spec.create)
      first.push_back({target, spec.to, std::string(engine.maintenance_db),
                       (spec.drop ? engine.drop_sql(spec.to.database) : "") +
                           engine.create_sql(spec.to.database)});
    auto answers = run_queries(first, engine, job, error);
    if (!answers[0]) return fail(job, "measuring the source database " + error);
    if (answers.size() > 1 && !answers[1])
      return fail(job, "preparing the target database " + error);
    for (auto& row : *answers[0])
      transfer.on_measured(measured, std::move(row));
  }
  const auto log_measured = [&] {
    job.log(proto::Stream::kAgent, std::to_string(transfer.tables_total) + " tables, " +
                                       std::to_string(transfer.total) + " bytes on the source");
  };
  if (!measure_beside) log_measured();
  // The tables to count: what the measurement listed, less the excluded ones.
  const auto listed = [&] {
    std::vector<std::string> tables;
    for (size_t i = 1; i < measured.size(); ++i)
      if (!excluded(spec, measured[i])) tables.push_back(measured[i]);
    return tables;
  };
  const auto count_sql = [&](const std::vector<std::string>& tables) {
    std::string sql(engine.count_preamble);
    for (const auto& t : tables)
      sql += engine.count_sql(t);
    return sql;
  };
  const bool verify = spec.verify && !spec.options.schema_only;
  RunningCounts counts{
      [&]() -> std::optional<Command> {
        if (!verify) return std::nullopt;
        return on(source, engine, spec.from, engine.client(spec.from, spec.from.database),
                  count_sql(listed()));
      },
      [&]() -> std::string {
        if (!verify || engine.restore_rows_on.empty() || spec.options.format != "plain") return "";
        return std::string(engine.restore_rows_on) + count_sql(listed());
      }};
  const auto failed =
      spec.jobs > 1
          ? parallel_copy(transfer, source)
          : stream_copy(transfer, source, measure_beside ? &measure : nullptr, measured, counts);
  if (failed) return *failed;
  if (measure_beside) {
    if (measured.empty()) return fail(job, "measuring the source database: no answer");
    log_measured();
  }
  const std::vector<std::string> tables = listed();
  transfer.tables_done = transfer.tables_total;
  transfer.current.clear();
  transfer.report();

  proto::JobFinished done = fail(job, "");
  Json result = {{"bytes", transfer.bytes},
                 {"size", transfer.total},
                 {"tables", tables.size()},
                 {"seconds", std::chrono::duration<double>(Clock::now() - started).count()}};
  if (verify) {
    const std::string sql = count_sql(tables);
    // Whatever was not counted while the copy ran is counted now.
    std::vector<Query> queries;
    if (!counts.target_inside) queries.push_back({target, spec.to, spec.to.database, sql});
    if (!counts.source_started) queries.push_back({source, spec.from, spec.from.database, sql});
    auto later = run_queries(queries, engine, job, error);            // none: nothing runs
    std::vector<std::optional<std::vector<std::string>>> counted(2);  // source, target
    size_t next = 0;
    counted[1] = counts.target_inside ? std::optional(counts.target_rows) : later[next++];
    counted[0] = counts.source_started ? std::optional(counts.source_rows) : later[next++];
    if (!counted[0] || !counted[1]) return fail(job, "counting rows " + error);
    const auto there = counts_of(*counted[0]);
    const auto here = counts_of(*counted[1]);
    std::vector<std::string> differ;
    for (const auto& t : tables) {
      const auto a = there.find(t), b = here.find(t);
      const std::string left = a == there.end() ? "missing" : std::to_string(a->second);
      const std::string right = b == here.end() ? "missing" : std::to_string(b->second);
      if (left != right) differ.push_back(t + " " + left + " vs " + right);
    }
    result["rows"] = there;
    result["mismatches"] = differ;
    if (!differ.empty()) {
      std::string list;
      for (size_t i = 0; i < differ.size() && i < kMaxListed; ++i)
        list += (i ? ", " : "") + differ[i];
      done.error = "row counts differ (source vs target) in " + std::to_string(differ.size()) +
                   " tables: " + list;
      done.result = result.dump();
      return done;
    }
    job.log(proto::Stream::kAgent,
            "row counts equal in all " + std::to_string(tables.size()) + " tables" +
                (counts.target_inside ? " (the target's rows counted inside the restore, before "
                                        "it committed)"
                                      : ""));
  }
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
  std::string list;
  for (const auto& row : *rows) {
    clients.push_back(row);
    if (clients.size() <= kMaxListed) list += (list.empty() ? "" : ", ") + row;
    job.log(proto::Stream::kAgent, "connected: " + row);
  }
  proto::JobFinished done = fail(job, "");
  done.result = Json{{"count", rows->size()}, {"clients", clients}}.dump();
  if (spec.max && rows->size() > *spec.max) {
    done.error = std::to_string(rows->size()) + " clients still connected to " + spec.db.database +
                 " (at most " + std::to_string(*spec.max) + " allowed): " + list;
    return done;
  }
  job.log(proto::Stream::kAgent,
          std::to_string(rows->size()) + " clients connected to " + spec.db.database);
  done.state = proto::JobState::kSucceeded;
  done.exit_code = 0;
  return done;
}

}  // namespace

bool validate_db_spec(std::string_view spec, std::string& error) {
  return parse_db_spec(spec, error).has_value();
}

proto::JobFinished run_db(std::string_view text, JobContext& job) {
  std::string error;
  const std::optional<DbSpec> spec = parse_db_spec(text, error);
  if (!spec) return fail(job, error);
  Side source{spec->action == "copy" ? "source" : "database host", {}};
  if (spec->peer && !spec->direct) {
    auto argv = ssh_argv(*spec->peer, job.dir(), error);
    if (!argv) return fail(job, error);
    argv->push_back(spec->peer->address);
    source.ssh = *argv;
  }
  if (spec->action == "connections") return connections(*spec, source, job);
  return copy(*spec, source, job);
}

}  // namespace cutpilot::agent
