#include "agents/db_replicate_maria.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <vector>

#include "agents/db_maria_parts.h"
#include "agents/db_replicate.h"
#include "agents/db_replicate_parts.h"
#include "agents/rate_meter.h"
#include "agents/words.h"

namespace cutpilot::agent {
namespace maria_parts {

using namespace replica_parts;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

// How long the target's server gets to reach the source's binary log.
constexpr auto kConnectTimeout = std::chrono::seconds(60);
constexpr std::string_view kPosition = "-- SET GLOBAL gtid_slave_pos='";

// text as a MariaDB string literal.
std::string lit(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'' || c == '\\') out += c == '\'' ? '\'' : '\\';
    out += c;
  }
  return out + "'";
}

std::string account(const std::string& user) {
  return lit(user) + "@'%'";
}

std::string hex(const unsigned char* bytes, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i)
    out += std::string{"0123456789ABCDEF"[bytes[i] >> 4], "0123456789ABCDEF"[bytes[i] & 15]};
  return out;
}

// A fresh password for the replication user: 32 hex digits.
std::string random_password() {
  unsigned char bytes[16];
  std::random_device random;  // getrandom(2)
  for (auto& b : bytes)
    b = static_cast<unsigned char>(random());
  return hex(bytes, sizeof bytes);
}

// The mysql_native_password hash of password: the source only ever sees this.
std::string native_hash(const std::string& password) {
  unsigned char once[EVP_MAX_MD_SIZE], twice[EVP_MAX_MD_SIZE];
  unsigned n = 0, m = 0;
  EVP_Digest(password.data(), password.size(), once, &n, EVP_sha1(), nullptr);
  EVP_Digest(once, n, twice, &m, EVP_sha1(), nullptr);
  return "*" + hex(twice, m);
}

// The engine's client printing column names and escaping values (SHOW ALL SLAVES STATUS).
std::vector<std::string> named_client(const DbEndpoint& e, std::string_view database) {
  std::vector<std::string> argv = find_db_engine("mariadb")->client(e, database);
  std::erase_if(argv,
                [](const std::string& a) { return a == "--skip-column-names" || a == "--raw"; });
  return argv;
}

// A batch field with the client's escapes undone.
std::string unescape(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] != '\\' || i + 1 == field.size()) {
      out += field[i];
      continue;
    }
    const char c = field[++i];
    out += c == 'n' ? '\n' : c == 't' ? '\t' : c == '0' ? '\0' : c;
  }
  return out;
}

std::vector<std::string> fields(const std::string& line) {
  std::vector<std::string> out;
  size_t at = 0;
  for (size_t tab; (tab = line.find('\t', at)) != std::string::npos; at = tab + 1)
    out.push_back(line.substr(at, tab - at));
  out.push_back(line.substr(at));
  return out;
}

// The rows of one result printed by named_client: a header line, then the rows.
std::vector<Row> rows_of(const std::vector<std::string>& lines) {
  std::vector<Row> rows;
  if (lines.empty()) return rows;
  const auto names = fields(lines.front());
  for (size_t i = 1; i < lines.size(); ++i) {
    const auto values = fields(lines[i]);
    Row& row = rows.emplace_back();
    for (size_t c = 0; c < names.size() && c < values.size(); ++c)
      row[names[c]] = unescape(values[c]);
  }
  return rows;
}

std::string value(const Row& row, const std::string& column) {
  const auto it = row.find(column);
  return it == row.end() ? "" : it->second;
}

// A GTID position ("0-1-5,1-2-9") by domain.
std::map<std::string, std::string> by_domain(const std::string& position) {
  std::map<std::string, std::string> out;
  for (size_t at = 0; at < position.size();) {
    size_t comma = position.find(',', at);
    if (comma == std::string::npos) comma = position.size();
    std::string gtid = position.substr(at, comma - at);
    std::erase_if(gtid, [](char c) { return c == ' ' || c == '\n'; });
    if (!gtid.empty()) out[gtid.substr(0, gtid.find('-'))] = gtid;
    at = comma + 1;
  }
  return out;
}

std::string joined(const std::map<std::string, std::string>& gtids) {
  std::string out;
  for (const auto& [domain, gtid] : gtids)
    out += (out.empty() ? "" : ",") + gtid;
  return out;
}

// The transactions applied is behind source, over the source's domains.
uint64_t behind(const std::string& source, const std::string& applied) {
  const auto here = by_domain(applied);
  const auto seq = [](const std::string& gtid) { return number(gtid.substr(gtid.rfind('-') + 1)); };
  uint64_t n = 0;
  for (const auto& [domain, gtid] : by_domain(source)) {
    const auto it = here.find(domain);
    const uint64_t done = it == here.end() ? 0 : seq(it->second);
    n += seq(gtid) > done ? seq(gtid) - done : 0;
  }
  return n;
}

// The lag in words: "caught up" or "3 transactions behind, 2 s", and both positions.
std::string lag(const std::string& source, const Row& row) {
  const std::string applied = value(row, "Gtid_Slave_Pos");
  const uint64_t n = behind(source, applied);
  const std::string seconds = value(row, "Seconds_Behind_Master");
  std::string words = n == 0 ? "caught up" : counted(n, "transaction") + " behind";
  if (n && !seconds.empty() && seconds != "NULL" && seconds != "0") words += ", " + seconds + " s";
  return words + " (source at " + (source.empty() ? "-" : source) + ", applied " +
         (applied.empty() ? "-" : applied) + ")";
}

Maria ends_of(const DbSpec& spec, const Side& source, JobContext& job) {
  DbEngine named = *spec.engine;
  named.client = named_client;
  return {spec,
          source,
          job,
          side_names(*spec.engine, spec.to.database, spec.run),
          replication_name(spec),
          maria_replication_user(spec),
          named};
}

// The run's connection among rows, or nullptr.
const Row* ours(const std::vector<Row>& rows, const std::string& name) {
  for (const auto& row : rows)
    if (value(row, "Connection_name") == name) return &row;
  return nullptr;
}

// The connection's filters: only the source database applied, rewritten into the side
// database; with on false, all cleared (they outlive RESET SLAVE ALL otherwise).
std::string filters(const Maria& m, bool on) {
  const std::string& side = m.names.side;
  std::string like, ignored;
  for (char c : side)
    like += (c == '_' || c == '%' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  for (const auto& t : m.spec.options.exclude_tables)
    ignored += (ignored.empty() ? "" : ",") + side + "." + t.substr(t.find('.') + 1);
  const auto set = [&](const char* variable, const std::string& value) {
    return "SET GLOBAL `" + m.name + "`." + variable + " = " + lit(on ? value : "") + ";\n";
  };
  // Qualified statements (ALTER TABLE db.t) keep their database through a rewrite: the table
  // filter keeps them off every database but the side one.
  return set("replicate_do_db", side) +
         set("replicate_rewrite_db", m.spec.from.database + "->" + side) +
         set("replicate_wild_do_table", like + ".%") + set("replicate_ignore_table", ignored) +
         set("replicate_ignore_db", "") + set("replicate_do_table", "") +
         set("replicate_wild_ignore_table", "");
}

// Whether the connection's filters are the run's (a restarted server forgets them).
bool filtered(const Maria& m, const Row& row) {
  return value(row, "Replicate_Do_DB") == m.names.side &&
         value(row, "Replicate_Rewrite_DB") == m.spec.from.database + "->" + m.names.side;
}

// Removes the connection (stopped, its filters cleared) and the replication user, whichever
// exist; what it removed, or nullopt with error set.
std::optional<std::vector<std::string>> remove_replication(Maria& m, std::string& error) {
  std::vector<std::string> removed;
  const auto rows = m.slaves(error);
  if (!rows) return std::nullopt;
  if (ours(*rows, m.name)) {
    const std::string conn = lit(m.name);
    if (!m.on_target(
            "STOP SLAVE " + conn + ";\n" + filters(m, false) + "RESET SLAVE " + conn + " ALL;\n",
            error))
      return std::nullopt;
    removed.push_back("the replication connection " + m.name + " on the target");
  }
  // Outside the database: a replication still running would not apply it.
  const auto notes =
      m.on_source("DROP USER IF EXISTS " + account(m.user) + ";\nSHOW WARNINGS;\n", error, false);
  if (!notes) return std::nullopt;
  if (notes->empty()) removed.push_back("the replication user " + m.user + " on the source");
  return removed;
}

// Removes the replication and the side database; the words for the job's message.
std::string tear_down(Maria& m) {
  std::string error;
  const auto removed = remove_replication(m, error);
  if (!removed)
    return "removing the replication failed (" + error + "): detach it (db action \"detach\")";
  drop_side(m.spec, m.names, m.job);
  const std::string said =
      removed->empty() ? "no replication was left" : "removed " + listed(*removed);
  m.job.log(proto::Stream::kAgent, said + "; the side database " + m.names.side +
                                       " is dropped; the target database is unchanged");
  return said;
}

// A connection running without the run's filters (its server restarted: they are not kept)
// is stopped at once, before it applies the source's other databases; what was done, or "".
std::string guard(Maria& m) {
  std::string error;
  const auto rows = m.slaves(error);
  const Row* row = rows ? ours(*rows, m.name) : nullptr;
  if (!row || filtered(m, *row)) return "";
  m.on_target("STOP SLAVE " + lit(m.name) + ";\n", error);
  return "; the connection " + m.name +
         " on the target had lost its filters (its server restarted?) and was stopped";
}

// One statement to a session of named_client; its rows ("cancelled" when a cancel arrived).
std::optional<std::vector<Row>> ask_rows(DbSession& session, const std::string& sql,
                                         std::string& error) {
  session.write(sql + "SELECT '" + std::string(kAnswered) + "' AS cutpilot_asked;\n");
  auto lines = session.read_until(kAnswered,
                                  Clock::now() + std::chrono::milliseconds(kQueryTimeoutMs), error);
  if (!lines) return std::nullopt;
  if (!lines->empty() && lines->back() == "cutpilot_asked") lines->pop_back();
  return rows_of(*lines);
}

// The dump (--gtid --master-data=2) on the source restored into the side database; the GTID
// position of its snapshot, read from the dump's comment by a sed here on its way through.
// nullopt with failed set (the replication torn down) when the copy did not work.
std::optional<std::string> first_copy(Maria& m, uint64_t size, size_t tables, uint64_t& bytes,
                                      std::optional<proto::JobFinished>& failed) {
  const DbSpec& spec = m.spec;
  const DbEngine& engine = *spec.engine;
  JobContext& job = m.job;
  std::vector<std::string> dump = engine.dump(spec.from, spec.options);
  dump.insert(dump.end() - 1, {"--gtid", "--master-data=2"});
  DbEndpoint into = spec.to;
  into.database = m.names.side;
  Command pick{.argv = {"sed", "-e", "/^" + std::string(kPosition) + "/w /dev/stderr"}};
  pick.stdin_from = 0;
  pick.stop_if_producer_fails = true;
  Command restore = on(kHere, engine, into, engine.restore(into, spec.options));
  restore.stdin_from = 1;
  restore.stop_if_producer_fails = true;
  const std::vector<std::string> what = {"the dump on the source",
                                         "reading the dump's GTID position (sed) on the target",
                                         "the restore on the target"};
  std::vector<Complaints> said(what.size());
  std::optional<std::string> position;
  std::string current;
  uint64_t done = 0;
  RateMeter rate;
  const auto report = [&] {
    job.progress(proto::Progress{"", 0, bytes, std::max(size, bytes), rate.update(bytes),
                                 std::min<uint64_t>(done, tables), tables,
                                 "first copy: " + current});
  };
  const RunResult run = run_commands(
      {on(m.source, engine, spec.from, dump), pick, restore},
      [&](size_t i, proto::Stream stream, std::string line) {
        if (line.empty()) return;
        if (i == 1 && line.starts_with(kPosition)) {
          const std::string rest = line.substr(kPosition.size());
          return void(position = rest.substr(0, rest.find('\'')));
        }
        said[i].add(line);
        if (i == 0 && stream == proto::Stream::kStderr) {
          if (auto table = engine.table_of(line)) {
            if (!current.empty()) ++done;
            current = "table " + *table;
            report();
          } else if (engine.chatter(line)) {
            return;
          }
        }
        job.log(stream, (i == 0 ? "[source] " : "[target] ") + line);
      },
      {.timeout = std::chrono::milliseconds(spec.timeout_ms),
       .piped =
           [&](size_t producer, uint64_t n) {
             if (producer != 1) return;
             bytes += n;
             report();
           }},
      job);
  if (run.stop == StopReason::kCancelled) {
    failed = cancelled(job, "cancelled: " + tear_down(m));
    return std::nullopt;
  }
  std::string why = run.stop == StopReason::kTimedOut
                        ? "timed out after " + std::to_string(spec.timeout_ms) + " ms"
                        : "";
  for (size_t i = 0; i < what.size() && why.empty(); ++i) {
    const CommandResult& r = run.commands[i];
    if (!r.start_error.empty()) why = what[i] + ": " + r.start_error;
    if (r.start_error.empty() && r.exit_code != 0)
      why = what[i] + " failed (" + describe_exit(r.exit_code.value_or(-1)) + ")" +
            (said[i].lines.empty() ? "" : ": " + said[i].text());
  }
  if (why.empty() && !position)
    why = "the dump on the source did not say its GTID position (no \"" +
          std::string(kPosition.substr(0, kPosition.size() - 2)) + "\" comment)";
  if (!why.empty()) {
    failed = fail(job, "the first copy: " + why + "; " + tear_down(m));
    if (run.stop == StopReason::kTimedOut) failed->state = proto::JobState::kTimedOut;
    return std::nullopt;
  }
  job.log(proto::Stream::kAgent, "the first copy is in " + m.names.side + " (" +
                                     human_bytes(bytes) +
                                     " of dump), at the source's GTID position " +
                                     (position->empty() ? "(none yet)" : *position));
  return position;
}

// Until the connection reads the source's binary log and applies it; the failure, or nullopt.
std::optional<proto::JobFinished> connected(Maria& m, int cancel_fd, const std::string& at) {
  const auto deadline = Clock::now() + kConnectTimeout;
  for (;;) {
    std::string error, why;
    const auto rows = m.slaves(error);
    const Row* row = rows ? ours(*rows, m.name) : nullptr;
    if (!rows) why = "following the replication connection " + error;
    if (rows && !row) why = "the replication connection " + m.name + " vanished from the target";
    if (row && value(*row, "Slave_IO_Running") == "Yes" &&
        value(*row, "Slave_SQL_Running") == "Yes")
      return std::nullopt;
    if (row && value(*row, "Last_IO_Errno") != "0")
      why = "the target's server cannot read the source's binary log at " + at + ": " +
            value(*row, "Last_IO_Error");
    if (row && value(*row, "Last_SQL_Errno") != "0")
      why =
          "the target's server cannot apply the source's changes: " + value(*row, "Last_SQL_Error");
    if (why.empty() && Clock::now() >= deadline)
      why = "the target's server did not reach the source's binary log at " + at + " within " +
            std::to_string(kConnectTimeout.count()) + " s";
    if (!why.empty()) return fail(m.job, why + "; " + tear_down(m));
    m.job.progress(proto::Progress{"", 0, 0, std::nullopt, 0, 0, std::nullopt,
                                   "connecting to the source's binary log at " + at});
    if (cancel_arrived(cancel_fd, 200)) return cancelled(m.job, "cancelled: " + tear_down(m));
  }
}

}  // namespace maria_parts

using namespace maria_parts;

std::string maria_replication_user(const DbSpec& spec) {
  const std::string name = replication_name(spec);
  if (name.size() <= 32) return name;
  uint32_t hash = 2166136261u;  // FNV-1a of the whole name: a cut name stays one's own
  for (unsigned char c : name)
    hash = (hash ^ c) * 16777619u;
  char mark[10];
  std::snprintf(mark, sizeof mark, "_%08x", hash);
  return name.substr(0, 32 - 9) + mark;
}

proto::JobFinished maria_replicate(const DbSpec& spec, const Side& source, JobContext& job) {
  if (job.cancel_requested()) return cancelled_before_start(job);
  Maria m = ends_of(spec, source, job);
  std::vector<std::string> tables;
  uint64_t size = 0;
  std::string domain, error;
  const std::string refused = preflight(m, tables, size, domain);
  if (!refused.empty())
    return fail(job, "the source database " + spec.from.database +
                         " cannot be replicated: " + refused + "; nothing was changed");
  job.log(proto::Stream::kAgent, "preflight passed: " + counted(tables.size(), "table") + ", " +
                                     human_bytes(size) + " on the source");
  // What an earlier attempt of this run left goes first.
  if (!remove_replication(m, error))
    return fail(job, "removing an earlier attempt's replication " + error);
  bool target_exists = false;
  const std::string unready = prepare_side(spec, m.names, target_exists, job);
  if (!unready.empty()) return fail(job, unready);
  Closer closer{cancel_signal_fd(error)};
  if (closer.fd < 0) return fail(job, error + "; " + tear_down(m));
  // The user exists before the dump's position: the replication never applies it.
  const std::string password = random_password();
  if (!m.on_source("CREATE OR REPLACE USER " + account(m.user) + " IDENTIFIED BY PASSWORD " +
                       lit(native_hash(password)) + ";\nGRANT REPLICATION SLAVE ON *.* TO " +
                       account(m.user) + ";\n",
                   error, false))
    return fail(job, "creating the replication user " + m.user + " " + error + "; " + tear_down(m));
  uint64_t copied = 0;
  std::optional<proto::JobFinished> failed;
  const auto position = first_copy(m, size, tables.size(), copied, failed);
  if (!position) return *failed;
  const uint64_t catch_up_ms =
      catch_up_estimate(spec, job, tables, [&](const std::string& sql, std::string& e) {
        auto both = run_queries(
            {{m.source, spec.from, spec.from.database, sql}, {kHere, spec.to, m.names.side, sql}},
            *spec.engine, job, e);
        return both[0] ? both[1] : std::nullopt;
      });
  // gtid_slave_pos: the dump's position for the source's domains, every other one as it is.
  const auto now = m.on_target("SELECT @@global.gtid_slave_pos;\n", error);
  if (!now) return fail(job, "reading gtid_slave_pos " + error + "; " + tear_down(m));
  auto slave_pos = by_domain(now->empty() ? "" : now->front());
  slave_pos.erase(domain);
  for (const auto& [d, gtid] : by_domain(*position))
    slave_pos[d] = gtid;
  const std::string port = std::to_string(spec.from.port ? spec.from.port : 3306);
  const std::string at = spec.publisher_host + ":" + port;
  if (!m.on_target("SET GLOBAL gtid_slave_pos = " + lit(joined(slave_pos)) + ";\nCHANGE MASTER " +
                       lit(m.name) + " TO master_host = " + lit(spec.publisher_host) +
                       ", master_port = " + port + ", master_user = " + lit(m.user) +
                       ", master_password = " + lit(password) + ", master_use_gtid = slave_pos;\n" +
                       filters(m, true) + "START SLAVE " + lit(m.name) + ";\n",
                   error))
    return fail(
        job, "setting up the replication connection " + m.name + " " + error + "; " + tear_down(m));
  job.log(proto::Stream::kAgent,
          "replicating " + spec.from.database + " into " + m.names.side + " from " +
              (position->empty() ? "the start of the source's binary log" : *position) +
              " (connection " + m.name + " on the target, user " + m.user +
              " on the source); its filters are not kept across a restart of the target's "
              "server: restart it only after a catch-up or a detach");
  if (auto failure = connected(m, closer.fd, at)) return *failure;
  DbSession there(
      on(source, *spec.engine, spec.from, spec.engine->client(spec.from, spec.from.database)),
      job.dir() + "/source-session.log");
  DbSession here(on(kHere, *spec.engine, spec.to, named_client(spec.to, "")),
                 job.dir() + "/target-session.log");
  std::string io_said, sql_said;  // the errors logged already
  for (bool first = true;; first = false) {
    const auto pos = ask(there, "SELECT @@global.gtid_binlog_pos;\n", error);
    const auto rows = pos ? ask_rows(here, "SHOW ALL SLAVES STATUS;\n", error) : std::nullopt;
    if (!pos || !rows) {
      if (error == "cancelled") {
        cancel_arrived(closer.fd, 0);
        return cancelled(job, "cancelled: " + tear_down(m));
      }
      return fail(job, "following the replication: " + error + guard(m) +
                           " (the replication is left as it is: a catch-up or a detach ends it)");
    }
    const Row* row = ours(*rows, m.name);
    if (!row) {
      job.log(proto::Stream::kAgent,
              "the replication was removed (by a catch-up or a detach): nothing left to follow");
      return succeeded(job, {{"detached", true}, {"name", m.name}});
    }
    if (!filtered(m, *row))
      return fail(job, "following the replication: its filters are gone" + guard(m) +
                           "; a detach removes it");
    std::string detail = std::string(kStreaming) + lag(pos->empty() ? "" : pos->front(), *row);
    for (auto [errno_col, error_col, logged, what] :
         {std::tuple{"Last_IO_Errno", "Last_IO_Error", &io_said, "reading the source's binary log"},
          std::tuple{"Last_SQL_Errno", "Last_SQL_Error", &sql_said,
                     "applying the source's changes"}}) {
      const std::string said = value(*row, errno_col) == "0" ? "" : value(*row, error_col);
      if (!said.empty())
        detail += "; " + std::string(what) + " failed (" + value(*row, errno_col) + ")";
      if (said != *logged && !said.empty())
        job.log(proto::Stream::kAgent,
                "the target's server: " + std::string(what) + " failed: " + said +
                    " (it waits: fix it and START SLAVE " + lit(m.name) + " there, or detach)");
      *logged = said;
    }
    const std::string behind_s = value(*row, "Seconds_Behind_Master");
    job.progress(
        proto::Progress{"", 0, copied, std::max(size, copied), 0, tables.size(), tables.size(),
                        detail, catch_up_ms + 1000 * std::strtoull(behind_s.c_str(), nullptr, 10)});
    if (first) job.flush_progress();
    if (cancel_arrived(closer.fd, kPollMs)) return cancelled(job, "cancelled: " + tear_down(m));
  }
}

proto::JobFinished maria_detach(const DbSpec& spec, const Side& source, JobContext& job) {
  Maria m = ends_of(spec, source, job);
  std::string error;
  const auto removed = remove_replication(m, error);
  if (!removed) return fail(job, "removing the replication " + error);
  drop_side(spec, m.names, job);
  job.log(proto::Stream::kAgent, (removed->empty() ? std::string("no replication was left")
                                                   : "removed " + listed(*removed)) +
                                     "; the side database " + m.names.side + " is dropped");
  return succeeded(job, {{"removed", *removed}});
}

}  // namespace cutpilot::agent
