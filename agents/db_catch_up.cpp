#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "agents/db_replicate.h"
#include "agents/db_replicate_parts.h"
#include "agents/words.h"

namespace cutpilot::agent {

using namespace replica_parts;

namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
// How long a catch-up waits for the target by default.
constexpr uint64_t kCatchUpTimeoutMs = 5 * 60 * 1000;

// "schema.table|columns" rows of every table's columns on a side, as a map.
const std::string kColumnsSql =
    "SELECT n.nspname || '.' || c.relname || '|' || string_agg(a.attname || ' ' || "
    "format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) FROM pg_attribute a JOIN "
    "pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
    "c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND n.nspname NOT IN "
    "('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' GROUP BY n.nspname, "
    "c.relname ORDER BY 1;\n";

}  // namespace

proto::JobFinished catch_up(const DbSpec& spec, const Side& source, JobContext& job) {
  if (job.cancel_requested()) return cancelled_before_start(job);
  const auto started = Clock::now();
  const DbEngine& engine = *spec.engine;
  Ends ends{spec, source, job, side_names(engine, spec.to.database, spec.run),
            replication_name(spec)};
  std::string error;
  const std::string unchanged = "; the target database is unchanged";
  // One client on each side for everything: the source's through ssh is opened first, so that
  // its connection is made while the target is looked at.
  std::optional<DbSession> there, here;
  ends.open(there, true, "source-session.log");
  const std::string sequences_sql =
      "SELECT schemaname || '.' || sequencename || '|' || coalesce(last_value::text, '') FROM "
      "pg_sequences ORDER BY 1;\n";
  // Everything the source has written up to now (its writers stopped before this step); its
  // schema (DDL is not replicated: a table changed since would lose rows or fail) and tables.
  send(*there, "SELECT pg_current_wal_lsn();\n");
  send(*there, kColumnsSql);
  send(*there, std::string(engine.tables_sql));
  const auto where = ends.on_target(
      "SELECT 'cutpilot-subscription|' || d.datname || '|' || s.subenabled FROM pg_subscription "
      "s JOIN pg_database d ON d.oid = s.subdbid WHERE s.subname = " +
          literal(ends.name) +
          ";\nSELECT 'present|' || count(*) FROM pg_database WHERE datname = " +
          literal(spec.to.database) + ";\n" + engine.connections_sql(spec.to.database),
      error);
  if (!where) return fail(job, "looking at the target " + error + unchanged);
  bool subscribed = false, enabled = false, target_exists = false;
  std::vector<std::string> clients;
  for (const auto& row : *where) {
    if (row.starts_with("cutpilot-subscription|" + ends.names.side + "|")) {
      subscribed = true;
      enabled = row.ends_with("|true");
    } else if (row.starts_with("cutpilot-subscription|"))
      continue;  // in another database: not this run's side database
    else if (row.starts_with("present|"))
      target_exists = row != "present|0";
    else
      clients.push_back(row);
  }
  if (!subscribed)
    return fail(job, "there is no replication of " + spec.from.database + " into " +
                         ends.names.side + " to catch up (no subscription " + ends.name +
                         " on the target): the replicate step has not set it up in this run, "
                         "or it was removed" +
                         unchanged);
  if (!target_exists && !spec.create)
    return fail(job, "the target database " + spec.to.database +
                         " does not exist (create = true makes it)" + unchanged);
  if (target_exists && !clients.empty())
    return fail(job, counted(clients.size(), "client") + " connected to the target database " +
                         spec.to.database + ": " + listed_clients(clients) +
                         "; cutpilot does not disconnect them: stop them and retry" + unchanged);
  // An earlier catch-up stopped at its swap may have left it disabled.
  if (!enabled) {
    if (!ends.on_target("ALTER SUBSCRIPTION " + ident(ends.name) + " ENABLE;\n", error,
                        ends.names.side))
      return fail(job, "enabling the subscription " + ends.name + " again " + error + unchanged);
    job.log(proto::Stream::kAgent, "the subscription " + ends.name +
                                       " was disabled (an earlier catch-up stopped at its "
                                       "swap?): enabled again");
  }
  ends.open(here, false, "target-session.log");
  send(*here, kColumnsSql +
                  "SELECT 'unready|' || count(*) FROM pg_subscription_rel r JOIN "
                  "pg_subscription s ON s.oid = r.srsubid WHERE s.subname = " +
                  literal(ends.name) + " AND r.srsubstate <> 'r';\n");
  const auto position = receive(*there, error);
  const auto source_columns = position ? receive(*there, error) : std::nullopt;
  const auto tables = source_columns ? receive(*there, error) : std::nullopt;
  if (!tables || position->empty())
    return fail(job, "reading the source's position, schema and tables: " + error + unchanged);
  const auto target_columns = receive(*here, error);
  if (!target_columns) return fail(job, "reading the replica's schema: " + error + unchanged);
  const std::string lsn = position->front();
  std::vector<std::string> target_rows;
  for (const auto& row : *target_columns) {
    if (row.starts_with("unready|") && row != "unready|0")
      return fail(job, "the replication's first copy has not finished (" + row.substr(8) +
                           " tables not ready)" + unchanged);
    if (!row.starts_with("unready|")) target_rows.push_back(row);
  }
  const std::string changed = schema_changes(spec, *source_columns, target_rows, "");
  if (!changed.empty())
    return fail(job,
                "the source's schema changed while it was replicated (DDL is not "
                "replicated): " +
                    changed + "; the replication goes on" + unchanged);
  int cancel_fd = cancel_signal_fd(error);
  if (cancel_fd < 0) return fail(job, error + unchanged);
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{cancel_fd};
  const std::string behind_sql = "SELECT greatest(pg_wal_lsn_diff(" + literal(lsn) +
                                 ", confirmed_flush_lsn), 0)::bigint FROM pg_replication_slots "
                                 "WHERE slot_name = " +
                                 literal(ends.name) + ";\n";
  const uint64_t wait_ms = spec.timeout_ms ? spec.timeout_ms : kCatchUpTimeoutMs;
  const auto deadline = Clock::now() + std::chrono::milliseconds(wait_ms);
  uint64_t gap = 0, done_bytes = 0;
  for (bool first = true;; first = false) {
    const auto rows = ask(*there, behind_sql, error);
    if (!rows)
      return error == "cancelled" ? cancelled(job, "cancelled; the replication goes on" + unchanged)
                                  : fail(job, "following the catch-up: " + error + unchanged);
    if (rows->empty())
      return fail(job,
                  "the replication slot " + ends.name + " is gone from the source" + unchanged);
    const uint64_t behind = number(rows->front());
    if (first) gap = behind;
    done_bytes = std::max(done_bytes, gap > behind ? gap - behind : 0);
    job.progress(proto::Progress{"", 0, done_bytes, gap, 0, 0, std::nullopt,
                                 "catching up to " + lsn + ": " + lag_words(behind, 0)});
    if (behind == 0) break;
    if (Clock::now() >= deadline)
      return fail(job, "the target did not catch up with the source within " +
                           std::to_string(wait_ms / 1000) + " s (" + human_bytes(behind) +
                           " behind " + lsn + "); the replication goes on" + unchanged);
    if (cancel_arrived(cancel_fd, 50))
      return cancelled(job, "cancelled; the replication goes on" + unchanged);
  }
  const double waited = std::chrono::duration<double>(Clock::now() - started).count();
  job.log(proto::Stream::kAgent, "the target applied everything the source wrote up to " + lsn);
  // Sequences do not replicate: each is set to the source's value.
  send(*there, sequences_sql);
  const auto source_seqs = ask(*here, sequences_sql, error);
  const auto seqs = source_seqs ? receive(*there, error) : std::nullopt;
  if (!seqs) return fail(job, "reading the sequences " + error + unchanged);
  std::map<std::string, std::string> present;
  for (const auto& row : *source_seqs)
    present[row.substr(0, row.rfind('|'))] = "";
  std::string set_sql;
  size_t set = 0;
  for (const auto& row : *seqs) {
    const size_t bar = row.rfind('|');
    const std::string name = row.substr(0, bar), value = row.substr(bar + 1);
    if (value.empty() || !present.count(name)) continue;
    set_sql += "SELECT setval(" + literal(table_name(name)) + ", " + value + ", true);\n";
    ++set;
  }
  // Row counts, one snapshot per side (the sequences are set in the target's first).
  std::string count_sql =
      "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\n" + std::string(engine.count_preamble);
  std::vector<std::string> counted_tables;
  for (const auto& t : *tables)
    if (!excluded(spec, t)) {
      counted_tables.push_back(t);
      count_sql += engine.count_sql(t);
    }
  count_sql += "COMMIT;\n";
  // verify = false: no counts (a count reads every row: the window grows with the data).
  if (!spec.verify) count_sql.clear();
  const auto counting = Clock::now();
  if (spec.verify) send(*there, count_sql);
  send(*here, set_sql);
  if (spec.verify) send(*here, count_sql);
  if (!receive(*here, error))
    return fail(job, "setting the sequences on the target " + error + unchanged);
  job.log(proto::Stream::kAgent, counted(set, "sequence") + " set to the source's values");
  const auto target_counts =
      spec.verify ? receive(*here, error)
                  : std::optional<std::vector<std::string>>(std::vector<std::string>{});
  const auto source_counts =
      !target_counts ? std::nullopt
      : spec.verify  ? receive(*there, error)
                     : std::optional<std::vector<std::string>>(std::vector<std::string>{});
  if (!source_counts) return fail(job, "counting rows " + error + unchanged);
  const double count_s = std::chrono::duration<double>(Clock::now() - counting).count();
  // The side database is renamed below: no client of ours may hold it.
  here.reset();
  there.reset();
  const auto there_rows = counts_of(*source_counts), here_rows = counts_of(*target_counts);
  const std::vector<std::string> differ =
      spec.verify ? count_mismatches(counted_tables, there_rows, here_rows)
                  : std::vector<std::string>{};
  Json result = {{"database", spec.to.database},
                 {"lsn", lsn},
                 {"waited_s", waited},
                 {"count_s", spec.verify ? Json(count_s) : Json(nullptr)},
                 {"sequences", set},
                 {"rows", there_rows},
                 {"mismatches", differ},
                 {"tables", counted_tables.size()}};
  if (!differ.empty()) {
    proto::JobFinished done =
        fail(job, "row counts differ (source vs replica) in " + counted(differ.size(), "table") +
                      ": " + listed(differ) +
                      " (are the writers stopped?); the replication goes "
                      "on, retry once nothing writes" +
                      unchanged);
    done.result = result.dump();
    return done;
  }
  job.log(proto::Stream::kAgent,
          spec.verify ? "row counts equal in " + counted(counted_tables.size(), "table")
                      : std::string("row counts not compared (verify = "
                                    "false)"));
  // The copy goes into place before the replication is removed: a swap refused (a client
  // connected meanwhile, say) leaves the replication going, for a retry. The subscription's
  // worker holds the side database, so it is stopped for the rename: disabled, it would
  // notice only at its next wakeup (up to a second), so it is ended at once (its progress is
  // kept with each applied transaction; disabled, it is not started again).
  const std::string sub = ident(ends.name);
  if (!ends.on_target("ALTER SUBSCRIPTION " + sub +
                          " DISABLE;\nSELECT count(pg_terminate_backend(pid)) FROM "
                          "pg_stat_subscription WHERE subname = " +
                          literal(ends.name) + " AND pid IS NOT NULL;\n",
                      error, ends.names.side))
    return fail(job, "stopping the subscription " + ends.name + " for the swap " + error +
                         "; the replication goes on" + unchanged);
  const std::string refused = swap_into_place(spec, ends.names, target_exists, job);
  if (!refused.empty()) {
    const bool resumed =
        ends.on_target("ALTER SUBSCRIPTION " + sub + " ENABLE;\n", error, ends.names.side)
            .has_value();
    return fail(job, refused +
                         (resumed ? "; the replication goes on: retry the catch-up"
                                  : "; the subscription " + ends.name + " stays disabled (" +
                                        error + "): ALTER SUBSCRIPTION ... ENABLE in " +
                                        ends.names.side + " resumes it") +
                         unchanged);
  }
  // The copy is in place and whole: what is left of the replication no longer touches it.
  log_removal(job, remove_replication(ends, error), error, result);
  // The replicate job's session on the source goes too (the job ends once it sees the
  // subscription gone): nothing of the replication talks to the old database any more.
  const std::string session = literal(job_session_name(ends.name));
  if (!ends.on_source("DO $$BEGIN PERFORM pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                      "application_name = " +
                          session +
                          "; FOR i IN 1..100 LOOP PERFORM pg_stat_clear_snapshot(); EXIT WHEN "
                          "NOT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = " +
                          session + "); PERFORM pg_sleep(0.1); END LOOP; END$$;\n",
                      error))
    job.log(proto::Stream::kAgent, "ending the replicate job's session on the source failed " +
                                       error + " (it ends with the job, within a second)");
  result["kept"] = target_exists ? Json(ends.names.kept) : Json(nullptr);
  result["seconds"] = std::chrono::duration<double>(Clock::now() - started).count();
  return succeeded(job, result);
}

}  // namespace cutpilot::agent
