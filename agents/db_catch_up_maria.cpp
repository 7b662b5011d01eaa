#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "agents/db_maria_parts.h"
#include "agents/words.h"

namespace cutpilot::agent {

using namespace replica_parts;
using namespace maria_parts;

namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

// How long a catch-up waits for the target by default.
constexpr uint64_t kCatchUpTimeoutMs = 5 * 60 * 1000;

// "shop.orders|id int(11), note varchar(20)" rows: every table's columns in the connected
// database.
const std::string kColumnsSql =
    "SET SESSION group_concat_max_len = 16777216;\nSELECT CONCAT(table_name, '|', "
    "GROUP_CONCAT(CONCAT(column_name, ' ', column_type) ORDER BY ordinal_position SEPARATOR ', "
    "')) FROM information_schema.columns WHERE table_schema = DATABASE() GROUP BY table_name "
    "ORDER BY 1;\n";

}  // namespace

proto::JobFinished maria_catch_up(const DbSpec& spec, const Side& source, JobContext& job) {
  if (job.cancel_requested()) return cancelled_before_start(job);
  const auto started = Clock::now();
  const DbEngine& engine = *spec.engine;
  Maria m = ends_of(spec, source, job);
  const std::string unchanged = "; the target database is unchanged";
  const std::string goes_on = "; the replication goes on" + unchanged;
  std::string error;
  const auto rows = m.slaves(error);
  if (!rows) return fail(job, "looking at the target's replication " + error + unchanged);
  const Row* row = ours(*rows, m.name);
  if (!row)
    return fail(job, "there is no replication of " + spec.from.database + " into " + m.names.side +
                         " to catch up (no connection " + m.name +
                         " on the target): the replicate step has not set it up in this run, "
                         "or it was removed" +
                         unchanged);
  if (!filtered(m, *row))
    return fail(
        job, "the replication connection " + m.name + " lost its filters" + guard(m) + unchanged);
  // An earlier catch-up stopped at its swap may have left it stopped (with no error).
  if (value(*row, "Slave_SQL_Running") == "No" && value(*row, "Slave_IO_Running") == "No" &&
      value(*row, "Last_SQL_Errno") == "0" && value(*row, "Last_IO_Errno") == "0") {
    if (!m.on_target("START SLAVE " + lit(m.name) + ";\n", error))
      return fail(job, "starting the connection " + m.name + " again " + error + unchanged);
    job.log(proto::Stream::kAgent, "the connection " + m.name +
                                       " was stopped (an earlier catch-up stopped at its "
                                       "swap?): started again");
  }
  auto where = run_queries({{kHere, spec.to, "", engine.existing_sql({spec.to.database})},
                            {kHere, spec.to, "", engine.connections_sql(spec.to.database)}},
                           engine, job, error);
  if (!where[0] || !where[1]) return fail(job, "looking at the target " + error + unchanged);
  const bool target_exists = !where[0]->empty();
  if (!target_exists && !spec.create)
    return fail(job, "the target database " + spec.to.database +
                         " does not exist (create = true makes it)" + unchanged);
  if (target_exists && !where[1]->empty())
    return fail(job, counted(where[1]->size(), "client") + " connected to the target database " +
                         spec.to.database + ": " + listed_clients(*where[1]) +
                         "; cutpilot does not disconnect them: stop them and retry" + unchanged);
  Closer closer{cancel_signal_fd(error)};
  if (closer.fd < 0) return fail(job, error + unchanged);
  // Everything the source has written up to now (its writers stopped before this step).
  const auto now = m.on_source("SELECT @@global.gtid_binlog_pos;\n", error);
  if (!now) return fail(job, "reading the source's gtid_binlog_pos " + error + unchanged);
  const std::string gtid = now->empty() ? "" : now->front();
  const uint64_t wait_ms = spec.timeout_ms ? spec.timeout_ms : kCatchUpTimeoutMs;
  const auto deadline = Clock::now() + std::chrono::milliseconds(wait_ms);
  DbSession here(on(kHere, engine, spec.to, named_client(spec.to, "")),
                 job.dir() + "/target-session.log");
  uint64_t gap = 0;
  for (bool first = true; !gtid.empty(); first = false) {
    const auto waited =
        ask_rows(here, "SELECT MASTER_GTID_WAIT(" + lit(gtid) + ", 1) AS waited;\n", error);
    const auto status = waited ? ask_rows(here, "SHOW ALL SLAVES STATUS;\n", error) : std::nullopt;
    if (!waited || !status) {
      if (error != "cancelled") return fail(job, "following the catch-up: " + error + unchanged);
      cancel_arrived(closer.fd, 0);
      return cancelled(job, "cancelled" + goes_on);
    }
    const Row* r = ours(*status, m.name);
    if (!waited->empty() && value(waited->front(), "waited") == "0") break;
    if (!r) return fail(job, "the replication connection " + m.name + " is gone" + unchanged);
    if (value(*r, "Slave_SQL_Running") != "Yes")
      return fail(job, "the target's server stopped applying the source's changes (" +
                           value(*r, "Last_SQL_Error") + ")" + goes_on);
    const uint64_t n = behind(gtid, value(*r, "Gtid_Slave_Pos"));
    if (first) gap = n;
    job.progress(proto::Progress{"", 0, 0, std::nullopt, 0, gap > n ? gap - n : 0, gap,
                                 "catching up to " + gtid + ": " + lag(gtid, *r)});
    if (Clock::now() >= deadline)
      return fail(job, "the target did not catch up with the source within " +
                           std::to_string(wait_ms / 1000) + " s (" + lag(gtid, *r) + ")" + goes_on);
    if (cancel_arrived(closer.fd, 0)) return cancelled(job, "cancelled" + goes_on);
  }
  const double waited = std::chrono::duration<double>(Clock::now() - started).count();
  job.log(proto::Stream::kAgent, "the target applied everything the source wrote up to " +
                                     (gtid.empty() ? std::string("now") : gtid));
  // DDL naming its database (ALTER TABLE db.t) is not applied to the copy: the schemas must agree.
  auto schemas = run_queries({{source, spec.from, spec.from.database, kColumnsSql},
                              {kHere, spec.to, m.names.side, kColumnsSql}},
                             engine, job, error);
  if (!schemas[0] || !schemas[1]) return fail(job, "comparing the schemas " + error + unchanged);
  const std::string changed =
      schema_changes(spec, *schemas[0], *schemas[1], spec.from.database + ".");
  if (!changed.empty())
    return fail(job, "the source's schema differs from the copy's: " + changed + goes_on);
  // Row counts, one snapshot per side.
  const auto listed_tables = m.on_source(std::string(engine.tables_sql), error);
  if (!listed_tables) return fail(job, "listing the source's tables " + error + unchanged);
  std::string count_sql =
      "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;\nSTART TRANSACTION WITH "
      "CONSISTENT SNAPSHOT;\n";
  std::vector<std::string> tables;
  for (const auto& t : *listed_tables)
    if (!excluded(spec, t)) {
      tables.push_back(t);
      count_sql += engine.count_sql(t);
    }
  count_sql += "COMMIT;\n";
  auto counts = run_queries({{source, spec.from, spec.from.database, count_sql},
                             {kHere, spec.to, m.names.side, count_sql}},
                            engine, job, error);
  if (!counts[0] || !counts[1]) return fail(job, "counting rows " + error + unchanged);
  const auto there = counts_of(*counts[0]), here_counts = counts_of(*counts[1]);
  const std::vector<std::string> differ = count_mismatches(tables, there, here_counts);
  Json result = {{"database", spec.to.database}, {"gtid", gtid},
                 {"waited_s", waited},           {"rows", there},
                 {"mismatches", differ},         {"tables", tables.size()}};
  if (!differ.empty()) {
    proto::JobFinished done =
        fail(job, "row counts differ (source vs replica) in " + counted(differ.size(), "table") +
                      ": " + listed(differ) + " (are the writers stopped?); retry once nothing " +
                      "writes" + goes_on);
    done.result = result.dump();
    return done;
  }
  job.log(proto::Stream::kAgent, "row counts equal in " + counted(tables.size(), "table"));
  // The copy goes into place before the replication is removed: a swap refused (a client
  // connected meanwhile, say) leaves the replication going, for a retry. The connection is
  // stopped first: it must not apply into tables that are moving.
  const std::string conn = lit(m.name);
  if (!m.on_target("STOP SLAVE " + conn + ";\n", error))
    return fail(job, "stopping the connection " + m.name + " for the swap " + error + goes_on);
  const std::string refused = swap_into_place(spec, m.names, target_exists, job);
  if (!refused.empty()) {
    const bool resumed = m.on_target("START SLAVE " + conn + ";\n", error).has_value();
    return fail(job, refused +
                         (resumed ? "; the replication goes on: retry the catch-up"
                                  : "; the connection " + m.name + " stays stopped (" + error +
                                        "): START SLAVE " + conn + " resumes it") +
                         unchanged);
  }
  // The copy is in place and whole: what is left of the replication no longer touches it.
  log_removal(job, remove_replication(m, error), error, result);
  result["kept"] = target_exists ? Json(m.names.kept) : Json(nullptr);
  result["seconds"] = std::chrono::duration<double>(Clock::now() - started).count();
  return succeeded(job, result);
}

}  // namespace cutpilot::agent
