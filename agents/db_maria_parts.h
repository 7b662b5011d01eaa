// What the MariaDB replication's actions share (db_replicate_maria.cpp, db_catch_up_maria.cpp):
// result rows by column name, the job's two ends and their queries, the run's connection and
// its filters, and the removal of the replication.
#pragma once

#include <unistd.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agents/db_replicate_maria.h"
#include "agents/db_replicate_parts.h"

namespace cutpilot::agent::maria_parts {

using replica_parts::kHere;
// A result row by column name.
using Row = std::map<std::string, std::string>;

// text as a MariaDB string literal.
std::string lit(std::string_view text);
// The engine's client printing column names and escaping values (SHOW ALL SLAVES STATUS).
std::vector<std::string> named_client(const DbEndpoint& e, std::string_view database);
// The rows of one result printed by named_client: a header line, then the rows.
std::vector<Row> rows_of(const std::vector<std::string>& lines);
// A row's value in column ("" when it has none).
std::string value(const Row& row, const std::string& column);
// A GTID position ("0-1-5,1-2-9") by domain.
std::map<std::string, std::string> by_domain(const std::string& position);
// How many transactions applied is behind source, over the source's GTID domains.
uint64_t behind(const std::string& source, const std::string& applied);
// The lag in words: "caught up" or "3 transactions behind, 2 s", and both positions.
std::string lag(const std::string& source, const Row& row);

// The job's sides, the run's names, and the queries on them.
struct Maria {
  const DbSpec& spec;
  const Side& source;
  JobContext& job;
  SideNames names;
  std::string name;  // the replication connection on the target
  std::string user;  // the replication user on the source
  DbEngine named;    // the engine with named_client

  // SQL on the source (in its database, or in none: what the replication must not apply).
  std::optional<std::vector<std::string>> on_source(const std::string& sql, std::string& error,
                                                    bool in_database = true) {
    return run_queries({{source, spec.from, in_database ? spec.from.database : "", sql}},
                       *spec.engine, job, error)
        .front();
  }
  // SQL on the target's server.
  std::optional<std::vector<std::string>> on_target(const std::string& sql, std::string& error) {
    return run_queries({{kHere, spec.to, "", sql}}, *spec.engine, job, error).front();
  }
  // Every replication connection on the target.
  std::optional<std::vector<Row>> slaves(std::string& error) {
    auto lines =
        run_queries({{kHere, spec.to, "", "SHOW ALL SLAVES STATUS;\n"}}, named, job, error).front();
    if (!lines) return std::nullopt;
    return rows_of(*lines);
  }
};

// The ends of a job for spec.
Maria ends_of(const DbSpec& spec, const Side& source, JobContext& job);
// The run's connection among rows, or nullptr.
const Row* ours(const std::vector<Row>& rows, const std::string& name);
// Whether the connection's filters are the run's (a restarted server forgets them).
bool filtered(const Maria& m, const Row& row);
// Removes the connection (stopped, its filters cleared) and the replication user, whichever
// exist; what it removed, or nullopt with error set.
std::optional<std::vector<std::string>> remove_replication(Maria& m, std::string& error);
// A connection running without the run's filters is stopped at once; what was done, or "".
std::string guard(Maria& m);
// One statement to a session of named_client; its rows ("cancelled" when a cancel arrived).
std::optional<std::vector<Row>> ask_rows(DbSession& session, const std::string& sql,
                                         std::string& error);

// What keeps the source from being replicated into the target ("" when nothing): every
// problem, named (db_maria_preflight.cpp). tables and size say what the source holds, domain
// its GTID domain.
std::string preflight(Maria& m, std::vector<std::string>& tables, uint64_t& size,
                      std::string& domain);
// A descriptor closed when this goes (the job's cancel signals).
struct Closer {
  int fd;
  ~Closer() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace cutpilot::agent::maria_parts
