// What the db job kind needs to know about each database engine: the tools' argument
// vectors, the password variable, and the SQL that measures, lists and counts.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cutpilot::agent {

// One side of a copy: where the database is, as seen from the host that runs the tools.
struct DbEndpoint {
  std::string host;      // "" : the engine's default (local socket)
  uint64_t port = 0;     // 0 : the engine's default
  std::string socket;    // a socket directory (postgres) or file (mariadb)
  std::string database;  // required
  std::string user;
  std::string password;  // reaches the tools only through their environment
  std::string bin_dir;   // where the tools are ("" : PATH)
};

// Copy options that change the tools' arguments.
struct DbCopyOptions {
  std::string format = "plain";  // postgres: plain (psql) or custom (pg_restore)
  bool schema_only = false;
  bool no_owner = false;
  bool no_privileges = false;
  std::vector<std::string> exclude_tables;  // "schema.table" or "table"
  bool no_replication = false;  // postgres: no publications and subscriptions in the dump
  std::string snapshot;         // postgres: the exported snapshot the dump reads ("": its own)
};

// Database renames: each {from, to}, in order.
using DbMoves = std::vector<std::pair<std::string, std::string>>;

// One engine: its tools and SQL.
struct DbEngine {
  std::string_view name;
  std::string_view password_env;    // the variable the tools read the password from
  std::string_view maintenance_db;  // connected to for create/drop
  // The dump that writes the database to stdout (verbose output on stderr).
  std::vector<std::string> (*dump)(const DbEndpoint&, const DbCopyOptions&);
  // The restore that reads a dump on stdin and stops at the first error.
  std::vector<std::string> (*restore)(const DbEndpoint&, const DbCopyOptions&);
  // A client that runs SQL from stdin and prints rows as "a|b" lines, nothing else.
  std::vector<std::string> (*client)(const DbEndpoint&, std::string_view database);
  // The table a line of the dump's verbose output starts on, if it says so.
  std::optional<std::string> (*table_of)(std::string_view line);
  // Whether a line of the tools' verbose output only says what they are doing (one per object
  // in the schema): kept for a failure's message, not put in the job's log.
  bool (*chatter)(std::string_view line);
  std::string_view size_sql;                           // one row: the database's data size in bytes
  std::string_view tables_sql;                         // rows: every table as "schema.table"
  std::string (*count_sql)(const std::string& table);  // one row: "schema.table|N"
  std::string_view count_preamble;  // run before the counts, prints nothing ("": none)
  std::string (*connections_sql)(const std::string& database);  // rows: "user|client|app"
  std::string (*create_sql)(const std::string& database);
  std::string (*drop_sql)(const std::string& database);
  // Opens the snapshot the dump and the source's counts share; prints "snapshot|ID".
  std::string_view snapshot_open;
  // Run once the dump has started its own transaction ("": nothing to release).
  std::string_view snapshot_release;
  // One row per name in names that is a database on the server.
  std::string (*existing_sql)(const std::vector<std::string>& names);
  // Renames databases as moves say, all or none (mariadb: moves their tables with one
  // RENAME TABLE and drops a database it emptied unless a move fills it again).
  std::string (*move_sql)(const DbMoves& moves);
  // Drops database when it holds no table and no routine ("": the engine needs no such thing).
  std::string (*drop_if_empty_sql)(const std::string& database);
  // Appended to a plain-format restore's input, sends the rows of the queries after it to
  // stdout as "a|b" lines, inside the restore's transaction ("": the engine cannot).
  std::string_view restore_rows_on;
};

// The engine called name ("postgres", "mariadb"), or nullptr.
const DbEngine* find_db_engine(std::string_view name);

}  // namespace cutpilot::agent
