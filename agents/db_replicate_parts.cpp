#include "agents/db_replicate_parts.h"

#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "agents/words.h"

namespace cutpilot::agent {
namespace replica_parts {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

std::string literal(std::string_view text) {
  std::string out = "'";
  for (char c : text)
    out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string ident(std::string_view text) {
  std::string out = "\"";
  for (char c : text)
    out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// "schema.table" as a quoted SQL name.
std::string table_name(const std::string& table) {
  const size_t dot = table.find('.');
  return ident(table.substr(0, dot)) + "." + ident(table.substr(dot + 1));
}

std::string conn_value(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

proto::JobFinished succeeded(JobContext& job, const nlohmann::json& result) {
  proto::JobFinished done = fail(job, "");
  done.state = proto::JobState::kSucceeded;
  done.exit_code = 0;
  done.result = result.dump();
  return done;
}

proto::JobFinished cancelled(JobContext& job, std::string why) {
  proto::JobFinished done = fail(job, std::move(why));
  done.state = proto::JobState::kCancelled;
  return done;
}

std::optional<std::vector<std::string>> Ends::on_source(const std::string& sql,
                                                        std::string& error) {
  return run_queries({{source, spec.from, spec.from.database, sql}}, *spec.engine, job, error)
      .front();
}

std::optional<std::vector<std::string>> Ends::on_target(const std::string& sql, std::string& error,
                                                        std::string database) {
  if (database.empty()) database = spec.engine->maintenance_db;
  return run_queries({{kHere, spec.to, database, sql}}, *spec.engine, job, error).front();
}

// The client command for a side's session.
Command session_command(const Ends& ends, bool on_source) {
  const DbSpec& spec = ends.spec;
  const DbEndpoint& e = on_source ? spec.from : spec.to;
  const std::string db = on_source ? spec.from.database : ends.names.side;
  return on(on_source ? ends.source : kHere, *spec.engine, e, spec.engine->client(e, db));
}

DbSession Ends::session(bool on_source, const std::string& file) {
  return DbSession(session_command(*this, on_source), job.dir() + "/" + file);
}

DbSession Ends::server_session(const std::string& file) {
  const DbEngine& engine = *spec.engine;
  return DbSession(on(kHere, engine, spec.to, engine.client(spec.to, engine.maintenance_db)),
                   job.dir() + "/" + file);
}

void Ends::open(std::optional<DbSession>& slot, bool on_source, const std::string& file) {
  slot.emplace(session_command(*this, on_source), job.dir() + "/" + file);
}

void send(DbSession& session, const std::string& sql) {
  session.write(sql + "SELECT '" + std::string(kAnswered) + "';\n");
}

std::optional<std::vector<std::string>> receive(DbSession& session, std::string& error) {
  return session.read_until(kAnswered, Clock::now() + std::chrono::milliseconds(kQueryTimeoutMs),
                            error);
}

std::optional<std::vector<std::string>> ask(DbSession& session, const std::string& sql,
                                            std::string& error) {
  send(session, sql);
  return receive(session, error);
}

std::vector<std::string> split(const std::string& row) {
  std::vector<std::string> parts;
  size_t at = 0;
  for (size_t bar; (bar = row.find('|', at)) != std::string::npos; at = bar + 1)
    parts.push_back(row.substr(at, bar - at));
  parts.push_back(row.substr(at));
  return parts;
}

uint64_t number(const std::string& text) {
  return std::strtoull(text.c_str(), nullptr, 10);
}

// Removes the replication, whichever parts exist: the subscription (without reaching the
// source: its slot is dropped below), the source's slot (its sender stopped first) and the
// publication. What it removed, or nullopt with error set.
std::optional<std::vector<std::string>> remove_replication(Ends& ends, std::string& error) {
  std::vector<std::string> removed;
  const std::string name = literal(ends.name);
  const auto where = ends.on_target(
      "SELECT d.datname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE "
      "s.subname = " +
          name + ";\n",
      error);
  if (!where) return std::nullopt;
  if (!where->empty()) {
    const std::string sub = ident(ends.name);
    if (!ends.on_target("ALTER SUBSCRIPTION " + sub + " DISABLE;\nALTER SUBSCRIPTION " + sub +
                            " SET (slot_name = NONE);\nDROP SUBSCRIPTION " + sub + ";\n",
                        error, where->front()))
      return std::nullopt;
    removed.push_back("the subscription " + ends.name);
  }
  // The sender of a disabled subscription takes a moment to let go of the slot.
  const auto slot = ends.on_source(
      "SELECT 'slot|' || count(*) FROM pg_replication_slots WHERE slot_name = " + name +
          ";\nDO $$BEGIN FOR i IN 1..300 LOOP PERFORM pg_terminate_backend(active_pid) FROM "
          "pg_replication_slots WHERE slot_name = " +
          name +
          " AND active_pid IS NOT NULL; IF NOT EXISTS (SELECT FROM pg_replication_slots WHERE "
          "slot_name = " +
          name + " AND active) THEN PERFORM pg_drop_replication_slot(slot_name) FROM " +
          "pg_replication_slots WHERE slot_name = " + name +
          "; RETURN; END IF; PERFORM pg_sleep(0.1); END LOOP; RAISE EXCEPTION 'the replication "
          "slot % is still in use after 30 s', " +
          name +
          "; END$$;\nSELECT 'publication|' || count(*) FROM pg_publication WHERE pubname = " +
          name +
          ";\nDO $$DECLARE t text; BEGIN FOR t IN SELECT "
          "unnest(string_to_array(obj_description(oid, "
          "'pg_publication'), E'\\n')) FROM pg_publication WHERE pubname = " +
          name +
          " LOOP BEGIN EXECUTE 'ALTER TABLE ' || t || ' REPLICA IDENTITY DEFAULT'; EXCEPTION WHEN "
          "undefined_table THEN NULL; END; END LOOP; END$$;\nSET client_min_messages = warning;\n"
          "DROP PUBLICATION IF EXISTS " +
          ident(ends.name) + ";\n",
      error);
  if (!slot) return std::nullopt;
  for (const auto& row : *slot) {
    const auto parts = split(row);
    if (parts.size() == 2 && parts[1] != "0")
      removed.push_back("the " +
                        std::string(parts[0] == "slot" ? "replication slot " : "publication ") +
                        ends.name + " on the source");
  }
  return removed;
}

std::string job_session_name(const std::string& replication) {
  return replication.substr(0, 59) + "_job";
}

void log_removal(JobContext& job, const std::optional<std::vector<std::string>>& removed,
                 const std::string& error, nlohmann::json& result) {
  if (removed)
    job.log(proto::Stream::kAgent, "removed " + listed(*removed));
  else
    job.log(proto::Stream::kAgent,
            "removing the replication failed " + error +
                "; the copy is in place all the same. The run's end removes it (the replicate "
                "job's cancel), as does a db step with action = \"detach\"; until then the "
                "source keeps what the target has not read");
  result["replication_left"] = !removed;
}

uint64_t catch_up_estimate(
    const DbSpec& spec, JobContext& job, const std::vector<std::string>& tables,
    const std::function<std::optional<std::vector<std::string>>(const std::string&, std::string&)>&
        count_both) {
  if (!spec.verify) return kCatchUpFixedMs;
  std::string sql(spec.engine->count_preamble);
  for (const auto& t : tables)
    sql += spec.engine->count_sql(t);
  const auto started = Clock::now();
  std::string error;
  if (!count_both(sql, error)) {
    job.log(proto::Stream::kAgent,
            "counting the rows (for the catch-up's prediction) failed: " + error);
    return kCatchUpFixedMs;
  }
  const double took = std::chrono::duration<double>(Clock::now() - started).count();
  job.log(proto::Stream::kAgent, "counting the rows of the source and the copy took " +
                                     human_seconds(took) + " (as the catch-up will)");
  return kCatchUpFixedMs + static_cast<uint64_t>(took * 1000);
}

// Drops the side database, even while the subscription's worker that was just stopped is
// still connected to it (WITH (FORCE) from PostgreSQL 13; before that it may be refused).
void drop_side_now(Ends& ends) {
  std::string error;
  if (ends.on_target("SET client_min_messages = warning;\nSELECT 'DROP DATABASE IF EXISTS ' || "
                     "quote_ident(" +
                         literal(ends.names.side) +
                         ") || CASE WHEN current_setting('server_version_num')::int >= 130000 "
                         "THEN ' WITH (FORCE)' ELSE '' END\\gexec\n",
                     error))
    return;
  ends.job.log(proto::Stream::kAgent, "could not drop the side database " + ends.names.side + " " +
                                          error + " (a detach or the next attempt drops it)");
}

// Removes the replication and the side database (what a cancelled or detached replication
// leaves); the words for the job's message.
std::string tear_down(Ends& ends) {
  std::string error;
  const auto removed = remove_replication(ends, error);
  if (!removed)
    return "removing the replication failed (" + error +
           "): detach it (db action "
           "\"detach\") before the source's disk fills with the slot's WAL";
  drop_side_now(ends);
  std::string said = removed->empty() ? "no replication was left" : "removed " + listed(*removed);
  ends.job.log(proto::Stream::kAgent, said + "; the side database " + ends.names.side +
                                          " is dropped; the target database is unchanged");
  return said;
}

// The lag the target is behind the source, in words: "1.2 MiB behind (0.4 s)".
std::string lag_words(uint64_t bytes, double seconds) {
  if (bytes == 0) return "caught up";
  return human_bytes(bytes) + " behind (" + human_seconds(seconds) + ")";
}

namespace {

// "table|columns" rows as a map by prefix + table, excluded tables left out.
std::map<std::string, std::string> columns_of(const DbSpec& spec,
                                              const std::vector<std::string>& rows,
                                              const std::string& prefix) {
  std::map<std::string, std::string> out;
  for (const auto& row : rows) {
    const size_t bar = row.find('|');
    if (bar == std::string::npos) continue;
    const std::string table = prefix + row.substr(0, bar);
    if (!excluded(spec, table)) out[table] = row.substr(bar + 1);
  }
  return out;
}

}  // namespace

std::string schema_changes(const DbSpec& spec, const std::vector<std::string>& source_rows,
                           const std::vector<std::string>& target_rows, const std::string& prefix) {
  const auto there = columns_of(spec, source_rows, prefix);
  const auto here = columns_of(spec, target_rows, prefix);
  std::vector<std::string> changed;
  for (const auto& [table, columns] : there) {
    const auto it = here.find(table);
    if (it == here.end())
      changed.push_back(table + " (new on the source)");
    else if (it->second != columns)
      changed.push_back(table + " (columns on the source: " + columns +
                        "; on the target: " + it->second + ")");
  }
  for (const auto& [table, columns] : here)
    if (!there.count(table)) changed.push_back(table + " (gone from the source)");
  return changed.empty() ? "" : listed(changed);
}

}  // namespace replica_parts

}  // namespace cutpilot::agent
