// What the replication actions share (db_replicate.cpp, db_catch_up.cpp): the SQL quoting, the
// job's two ends with their queries and kept sessions, and the removal of a replication.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agents/db_run.h"
#include "agents/db_session.h"
#include "agents/db_spec.h"
#include "agents/db_swap.h"

namespace cutpilot::agent::replica_parts {

// The host the job runs on: the target.
inline const Side kHere{"target", {}};
// Between two looks at the lag.
inline constexpr int kPollMs = 1000;
// How a replicate job's progress begins once it streams (the executor waits for it).
inline constexpr std::string_view kStreaming = "streaming: ";
// The line a kept session prints after each answer (send() asks for it, receive() reads to it).
inline constexpr std::string_view kAnswered = "asked|cutpilot";
// A catch-up's time besides its counts and its wait: the sequences, the swap and the
// removal (bench/RESULTS.md: ~1 s with the counts left out).
inline constexpr uint64_t kCatchUpFixedMs = 1000;

// text as an SQL string literal.
std::string literal(std::string_view text);
// text as a quoted SQL identifier.
std::string ident(std::string_view text);
// A libpq connection value: quoted, with ' and \ escaped.
std::string conn_value(std::string_view text);
// "schema.table" as a quoted SQL name.
std::string table_name(const std::string& table);
// A row's "a|b|c" fields.
std::vector<std::string> split(const std::string& row);
// A decimal number at the start of text (0 when none).
uint64_t number(const std::string& text);
// The lag in words: "caught up", or "1.2 MiB behind (0.4 s)".
std::string lag_words(uint64_t bytes, double seconds);

// The tables whose columns differ between the sides, in words ("" when none): rows are
// "table|columns" lines of each side, prefix goes before each table's name (mariadb: the
// database and a dot), excluded tables are left out.
std::string schema_changes(const DbSpec& spec, const std::vector<std::string>& source_rows,
                           const std::vector<std::string>& target_rows, const std::string& prefix);

// A succeeded job with result.
proto::JobFinished succeeded(JobContext& job, const nlohmann::json& result);
// A cancelled job, why saying what the cancel left.
proto::JobFinished cancelled(JobContext& job, std::string why);

// The job's sides and their databases.
struct Ends {
  const DbSpec& spec;
  const Side& source;
  JobContext& job;
  SideNames names;
  std::string name;  // publication, subscription and slot

  // SQL on the source's database; nullopt with error set.
  std::optional<std::vector<std::string>> on_source(const std::string& sql, std::string& error);
  // SQL on the target's server, in database (the maintenance database when "").
  std::optional<std::vector<std::string>> on_target(const std::string& sql, std::string& error,
                                                    std::string database = "");
  // A client kept open on a side (its answers read with ask()): the source's database, or the
  // side database on the target.
  DbSession session(bool on_source, const std::string& file);
  // A client kept open on the target's maintenance database: it sees the shared catalogs
  // (subscriptions) while holding no database that is renamed or dropped.
  DbSession server_session(const std::string& file);
  // The same, opened into slot (which its owner may close early by resetting it).
  void open(std::optional<DbSession>& slot, bool on_source, const std::string& file);
};

// Queues sql for a kept session, its answer read later by receive() (answers come in order).
void send(DbSession& session, const std::string& sql);
// The rows of the oldest answer not read yet; nullopt with error set ("cancelled" when a cancel
// arrived).
std::optional<std::vector<std::string>> receive(DbSession& session, std::string& error);
// send() then receive().
std::optional<std::vector<std::string>> ask(DbSession& session, const std::string& sql,
                                            std::string& error);

// Removes the replication, whichever parts exist: the subscription (without reaching the
// source: its slot is dropped here), the source's slot (its sender stopped first) and the
// publication. What it removed, or nullopt with error set.
std::optional<std::vector<std::string>> remove_replication(Ends& ends, std::string& error);
// Drops the side database even while a just-stopped subscription worker holds it.
void drop_side_now(Ends& ends);
// Removes the replication and the side database; the words for the job's message.
std::string tear_down(Ends& ends);

// The application_name of the replicate job's session on the source (a catch-up ends it,
// so that nothing of the replication still talks to the old database once it is done).
std::string job_session_name(const std::string& replication);

// After a catch-up's swap: logs what was removed of the replication, or that removing it
// failed (error) with the copy in place all the same; result's "replication_left" says which.
void log_removal(JobContext& job, const std::optional<std::vector<std::string>>& removed,
                 const std::string& error, nlohmann::json& result);

// What a catch-up of the copy is expected to take in ms, its wait for the lag aside: its fixed
// part, plus the row counts unless verify = false, timed here by count_both, which runs the
// counts on the source and the copy at once as the catch-up does.
uint64_t catch_up_estimate(
    const DbSpec& spec, JobContext& job, const std::vector<std::string>& tables,
    const std::function<std::optional<std::vector<std::string>>(const std::string&, std::string&)>&
        count_both);

}  // namespace cutpilot::agent::replica_parts
