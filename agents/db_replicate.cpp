#include "agents/db_replicate.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "agents/db_replicate_parts.h"
#include "agents/rate_meter.h"
#include "agents/words.h"

namespace cutpilot::agent {

using namespace replica_parts;

namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

// What keeps the source from being replicated ("" when nothing): every problem, named.
std::string preflight(Ends& ends, std::vector<std::string>& tables,
                      std::vector<std::string>& keyless, uint64_t& size) {
  const DbSpec& spec = ends.spec;
  std::string error;
  const std::string schemas =
      "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'";
  const std::string from = " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ";
  const auto rows = ends.on_source(
      "SELECT 'wal_level|' || current_setting('wal_level');\n"
      "SELECT 'role|' || (rolsuper OR rolreplication) FROM pg_roles WHERE rolname = "
      "current_user;\n"
      "SELECT 'slots|' || current_setting('max_replication_slots') || '|' || count(*) FROM "
      "pg_replication_slots;\n"
      "SELECT 'senders|' || current_setting('max_wal_senders') || '|' || count(*) FROM "
      "pg_stat_replication;\n"
      "SELECT 'large|' || count(*) FROM pg_largeobject_metadata;\n"
      "SELECT 'size|' || " +
          std::string(spec.engine->size_sql.substr(7)) +
          "SELECT 'table|' || n.nspname || '.' || c.relname" + from +
          "c.relkind IN ('r', 'p') AND " + schemas +
          " ORDER BY 1;\n"
          "SELECT 'keyless|' || n.nspname || '.' || c.relname" +
          from + "c.relkind = 'r' AND " + schemas +
          " AND (c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS (SELECT FROM "
          "pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)) OR (c.relreplident = 'i' AND "
          "NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident))) "
          "ORDER BY 1;\n"
          "SELECT 'unlogged|' || n.nspname || '.' || c.relname" +
          from + "c.relkind = 'r' AND c.relpersistence = 'u' AND " + schemas + " ORDER BY 1;\n",
      error);
  if (!rows) return "looking at the source database " + error;
  std::vector<std::string> problems, unlogged;
  for (const auto& row : *rows) {
    const auto p = split(row);
    const std::string& what = p[0];
    if (what == "wal_level" && p.size() > 1 && p[1] != "logical")
      problems.push_back("wal_level is " + p[1] +
                         " on the source; logical replication needs wal_level = logical (ALTER "
                         "SYSTEM SET wal_level = logical, then restart the server)");
    if (what == "role" && p.size() > 1 && p[1] != "true")
      problems.push_back("the user " +
                         (spec.from.user.empty() ? std::string("connecting") : spec.from.user) +
                         " may not replicate: it needs the REPLICATION attribute (ALTER ROLE ... "
                         "REPLICATION) or superuser");
    if ((what == "slots" || what == "senders") && p.size() > 2 && number(p[2]) >= number(p[1]))
      problems.push_back(
          std::string(what == "slots" ? "max_replication_slots" : "max_wal_senders") + " is " +
          p[1] + " on the source and " + p[2] +
          " are in use: the replication needs one more (raise it, then restart "
          "the server)");
    if (what == "large" && p.size() > 1 && p[1] != "0")
      problems.push_back("the source holds " + counted(number(p[1]), "large object") +
                         ", which logical replication does not carry (copy the database instead)");
    if (what == "size" && p.size() > 1) size = number(p[1]);
    if (p.size() < 2 || excluded(spec, p[1])) continue;
    if (what == "table") tables.push_back(p[1]);
    if (what == "keyless") keyless.push_back(p[1]);
    if (what == "unlogged") unlogged.push_back(p[1]);
  }
  if (!keyless.empty() && !spec.replica_identity_full)
    problems.push_back(counted(keyless.size(), "table") +
                       " without a primary key or replica "
                       "identity, whose updates and deletes cannot be replicated: " +
                       listed(keyless) +
                       " (add a primary key, exclude the table, or set "
                       "replica_identity_full = true)");
  if (!unlogged.empty())
    problems.push_back(counted(unlogged.size(), "unlogged table") +
                       ", which logical replication does not carry: " + listed(unlogged) +
                       " (exclude them or make them logged)");
  std::string out;
  for (const auto& p : problems)
    out += (out.empty() ? "" : "; ") + p;
  return out;
}

// The first copy: until every table of the subscription is ready. The failure, or nullopt.
std::optional<proto::JobFinished> first_copy(Ends& ends, DbSession& target, uint64_t size,
                                             size_t tables, int cancel_fd, uint64_t& copied) {
  JobContext& job = ends.job;
  RateMeter rate;
  const std::string sql =
      "SELECT count(*) FILTER (WHERE r.srsubstate = 'r') || '|' || count(*) || '|' || "
      "pg_database_size(current_database()) || '|' || coalesce(max(st.sync_error_count), 0) "
      "FROM pg_subscription s LEFT JOIN pg_subscription_rel r ON r.srsubid = s.oid LEFT JOIN "
      "pg_stat_subscription_stats st ON st.subid = s.oid WHERE s.subname = " +
      literal(ends.name) + ";\n";
  for (;;) {
    std::string error;
    const auto rows = ask(target, sql, error);
    if (!rows || rows->empty())
      return error == "cancelled" ? cancelled(job, "cancelled: " + tear_down(ends))
                                  : fail(job, "following the first copy on the target: " + error +
                                                  "; " + tear_down(ends));
    const auto p = split(rows->front());
    const uint64_t ready = number(p[0]), listed_tables = number(p[1]);
    copied = std::max(copied, number(p[2]));
    if (p.size() > 3 && number(p[3]) > 0)
      return fail(job, "the first copy of a table failed on the target " + p[3] +
                           " time(s) (the target server's log says why; a target table that "
                           "already holds rows is the usual cause); " +
                           tear_down(ends));
    job.progress(proto::Progress{"", 0, copied, std::max(size, copied), rate.update(copied), ready,
                                 std::max<uint64_t>(listed_tables, tables),
                                 "first copy: " + std::to_string(ready) + " of " +
                                     std::to_string(listed_tables) + " tables ready"});
    if (ready == listed_tables && listed_tables >= tables) return std::nullopt;
    if (cancel_arrived(cancel_fd, kPollMs)) return cancelled(job, "cancelled: " + tear_down(ends));
  }
}

// VACUUM (ANALYZE) of the side database once its first copy is done, while the source is
// live: the first read of freshly copied rows sets their hint bits, writing every page, which
// would otherwise fall to the catch-up's row counts inside the window; and the copy gets its
// planner statistics for the application's first queries after the cutover. Shown as it goes;
// it never fails the replication (the catch-up counts either way). The failure (a cancel), or
// nullopt.
std::optional<proto::JobFinished> vacuum_copy(Ends& ends, DbSession& target, uint64_t size,
                                              size_t tables, uint64_t copied) {
  JobContext& job = ends.job;
  const auto started = Clock::now();
  DbSession vacuum = ends.session(false, "vacuum-session.log");
  send(vacuum, "VACUUM (ANALYZE);\n");
  const std::string sql =
      "SELECT p.relid::regclass || '|' || p.heap_blks_scanned || '|' || p.heap_blks_total FROM "
      "pg_stat_progress_vacuum p WHERE p.datname = current_database();\n";
  for (;;) {
    std::string error;
    if (vacuum.read_until(kAnswered, Clock::now() + std::chrono::milliseconds(kPollMs), error)) {
      job.log(proto::Stream::kAgent,
              "VACUUM ANALYZE of the copy done in " +
                  human_seconds(std::chrono::duration<double>(Clock::now() - started).count()));
      return std::nullopt;
    }
    if (error == "cancelled") return cancelled(job, "cancelled: " + tear_down(ends));
    if (error != "no answer in time") {
      job.log(proto::Stream::kAgent, "VACUUM ANALYZE of the copy stopped (" + error +
                                         "); the catch-up counts rows without it, slower");
      return std::nullopt;
    }
    const auto rows = ask(target, sql, error);
    if (!rows) {
      if (error == "cancelled") return cancelled(job, "cancelled: " + tear_down(ends));
      continue;  // the vacuum's own answer says what went wrong, if anything did
    }
    std::string item = "vacuuming the copy";
    if (!rows->empty()) {
      const auto p = split(rows->front());
      const uint64_t total = p.size() > 2 ? number(p[2]) : 0;
      item += ": " + p[0];
      if (total) item += " " + std::to_string(number(p[1]) * 100 / total) + " %";
    }
    job.progress(proto::Progress{"", 0, copied, std::max(size, copied), 0, tables, tables, item});
  }
}

}  // namespace

std::string replication_name(const DbSpec& spec) {
  std::string name = "cutpilot_";
  for (char c : spec.to.database + "_" + spec.run)
    name += (c >= 'A' && c <= 'Z')                               ? static_cast<char>(c - 'A' + 'a')
            : ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) ? c
                                                                 : '_';
  if (name.size() <= 63) return name;
  uint32_t hash = 2166136261u;  // FNV-1a of the whole name: a cut name stays one's own
  for (unsigned char c : name)
    hash = (hash ^ c) * 16777619u;
  char mark[10];
  std::snprintf(mark, sizeof mark, "_%08x", hash);
  return name.substr(0, 63 - 9) + mark;
}

proto::JobFinished replicate(const DbSpec& spec, const Side& source, JobContext& job) {
  if (job.cancel_requested()) return cancelled_before_start(job);
  Ends ends{spec, source, job, side_names(*spec.engine, spec.to.database, spec.run),
            replication_name(spec)};
  std::string error;
  // The source first, so that a mistyped password or address is said as such, before
  // anything is removed or made.
  if (!ends.on_source("SELECT 1;\n", error))
    return fail(job, "connecting to the source database " + spec.from.database + " " + error +
                         "; nothing was changed");
  // What an earlier attempt of this run left goes first: its subscription holds the side
  // database, its slot the source's WAL.
  if (!remove_replication(ends, error))
    return fail(job, "removing an earlier attempt's replication " + error);
  std::vector<std::string> tables, keyless;
  uint64_t size = 0;
  const std::string refused = preflight(ends, tables, keyless, size);
  if (!refused.empty())
    return fail(job, "the source database " + spec.from.database +
                         " cannot be replicated: " + refused + "; nothing was changed");
  job.log(proto::Stream::kAgent, "preflight passed: " + counted(tables.size(), "table") + ", " +
                                     human_bytes(size) + " on the source");
  bool target_exists = false;
  const std::string unready = prepare_side(spec, ends.names, target_exists, job);
  if (!unready.empty()) return fail(job, unready);
  int cancel_fd = cancel_signal_fd(error);
  if (cancel_fd < 0) return fail(job, error + "; " + tear_down(ends));
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{cancel_fd};
  if (auto failed = copy_schema(spec, source, ends.names.side, job)) {
    failed->error += "; " + tear_down(ends);
    return *failed;
  }
  // The publication, and the tables it gives REPLICA IDENTITY FULL, at once; its comment
  // names those tables, so that whoever removes it sets them back.
  std::string publish = "BEGIN;\nCREATE PUBLICATION " + ident(ends.name);
  for (size_t i = 0; i < tables.size(); ++i)
    publish += (i ? ", " : " FOR TABLE ") + table_name(tables[i]);
  publish += ";\n";
  if (!keyless.empty()) {
    std::string names;
    for (const auto& t : keyless) {
      names += (names.empty() ? "" : "\n") + table_name(t);
      publish += "ALTER TABLE " + table_name(t) + " REPLICA IDENTITY FULL;\n";
    }
    publish += "COMMENT ON PUBLICATION " + ident(ends.name) + " IS " + literal(names) + ";\n";
  }
  if (!ends.on_source(publish + "COMMIT;\n", error))
    return fail(job, "creating the publication on the source " + error + "; " + tear_down(ends));
  if (!keyless.empty())
    job.log(proto::Stream::kAgent, "REPLICA IDENTITY FULL set on the source for " +
                                       listed(keyless) +
                                       " (replica_identity_full = true; set back to DEFAULT when "
                                       "the replication is removed)");
  std::string conn = "host=" + conn_value(spec.publisher_host) +
                     " port=" + std::to_string(spec.from.port ? spec.from.port : 5432) +
                     " dbname=" + conn_value(spec.from.database);
  if (!spec.from.user.empty()) conn += " user=" + conn_value(spec.from.user);
  if (!spec.from.password.empty()) conn += " password=" + conn_value(spec.from.password);
  if (!ends.on_target("CREATE SUBSCRIPTION " + ident(ends.name) + " CONNECTION " + literal(conn) +
                          " PUBLICATION " + ident(ends.name) + " WITH (copy_data = true);\n",
                      error, ends.names.side))
    return fail(job,
                "creating the subscription on the target (its server connects to the "
                "source's at " +
                    spec.publisher_host + ") " + error + "; " + tear_down(ends));
  job.log(proto::Stream::kAgent, "replicating " + counted(tables.size(), "table") + " into " +
                                     ends.names.side + " (publication and subscription " +
                                     ends.name + ")");
  uint64_t copied = 0;
  uint64_t catch_up_ms = 0;
  std::optional<DbSession> lag;  // the source's, opened once the copy is whole
  {
    DbSession side = ends.session(false, "side-session.log");
    if (auto failed = first_copy(ends, side, size, tables.size(), cancel_fd, copied))
      return *failed;
    job.log(proto::Stream::kAgent, "the first copy is done; VACUUM ANALYZE of the copy");
    if (auto failed = vacuum_copy(ends, side, size, tables.size(), copied)) return *failed;
    ends.open(lag, true, "source-session.log");
    std::string named;  // a failure shows in the next question to this session
    ask(*lag, "SET application_name = " + literal(job_session_name(ends.name)) + ";\n", named);
    // Both sides count at once, as the catch-up's counts do.
    catch_up_ms = catch_up_estimate(spec, job, tables, [&](const std::string& sql, std::string& e) {
      send(*lag, sql);
      const auto copy = ask(side, sql, e);
      std::string source_error;
      const auto source = receive(*lag, source_error);
      if (!source && copy) e = source_error;
      return source ? copy : std::nullopt;
    });
  }
  job.log(proto::Stream::kAgent, "streaming the source's changes");
  // From here on nothing of this job holds the side database, which the catch-up renames:
  // the subscription is followed from the maintenance database (pg_subscription is shared).
  DbSession target = ends.server_session("target-session.log");
  const std::string lag_sql =
      "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint || '|' || "
      "coalesce(extract(epoch FROM (SELECT max(replay_lag) FROM pg_stat_replication WHERE "
      "application_name = " +
      literal(ends.name) +
      ")), 0) FROM pg_replication_slots WHERE slot_name = " + literal(ends.name) + ";\n";
  const std::string sub_sql =
      "SELECT subenabled || '|' || coalesce((SELECT apply_error_count FROM "
      "pg_stat_subscription_stats WHERE subid = s.oid), 0) FROM pg_subscription s WHERE subname "
      "= " +
      literal(ends.name) + ";\n";
  uint64_t apply_errors = 0;
  for (bool first = true;; first = false) {
    const auto slot = ask(*lag, lag_sql, error);
    const auto sub = slot ? ask(target, sub_sql, error) : std::nullopt;
    if (!slot || !sub) {
      if (error == "cancelled") return cancelled(job, "cancelled: " + tear_down(ends));
      // A catch-up that removed the replication ends this job's session on the source.
      std::string ignored;
      const auto still = slot ? std::nullopt : ask(target, sub_sql, ignored);
      if (still && still->empty()) {
        job.log(proto::Stream::kAgent,
                "the replication was removed (by a catch-up or a detach): nothing left to follow");
        return succeeded(job, {{"detached", true}, {"name", ends.name}});
      }
      return fail(job, "following the replication: " + error +
                           " (the replication is left as it is: a catch-up or a detach ends it)");
    }
    if (slot->empty() || sub->empty()) {
      job.log(proto::Stream::kAgent,
              "the replication was removed (by a catch-up or a detach): nothing left to follow");
      return succeeded(job, {{"detached", true}, {"name", ends.name}});
    }
    const auto s = split(slot->front()), t = split(sub->front());
    const uint64_t behind = number(s[0]);
    const double seconds = s.size() > 1 ? std::strtod(s[1].c_str(), nullptr) : 0;
    if (t.size() > 1 && number(t[1]) > apply_errors) {
      apply_errors = number(t[1]);
      job.log(proto::Stream::kAgent, "the target failed to apply a change " + t[1] +
                                         " time(s) (the target server's log says why); it "
                                         "retries");
    }
    job.progress(proto::Progress{"", 0, copied, std::max(size, copied), 0, tables.size(),
                                 tables.size(),
                                 std::string(kStreaming) + lag_words(behind, seconds) +
                                     (t[0] == "true" ? "" : " (the subscription is disabled)"),
                                 catch_up_ms + static_cast<uint64_t>(seconds * 1000)});
    if (first) job.flush_progress();
    if (cancel_arrived(cancel_fd, kPollMs)) return cancelled(job, "cancelled: " + tear_down(ends));
  }
}

proto::JobFinished detach(const DbSpec& spec, const Side& source, JobContext& job) {
  Ends ends{spec, source, job, side_names(*spec.engine, spec.to.database, spec.run),
            replication_name(spec)};
  std::string error;
  const auto removed = remove_replication(ends, error);
  if (!removed) return fail(job, "removing the replication " + error);
  drop_side_now(ends);
  job.log(proto::Stream::kAgent, (removed->empty() ? std::string("no replication was left")
                                                   : "removed " + listed(*removed)) +
                                     "; the side database " + ends.names.side + " is dropped");
  return succeeded(job, {{"removed", *removed}});
}

}  // namespace cutpilot::agent
