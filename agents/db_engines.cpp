#include "agents/db_engines.h"

#include <algorithm>

namespace cutpilot::agent {
namespace {

std::string tool(const DbEndpoint& e, const char* name) {
  return e.bin_dir.empty() ? name : e.bin_dir + "/" + name;
}

// "schema.table" -> {"schema", "table"}; a name without a dot is in `fallback`.
std::pair<std::string, std::string> split_table(const std::string& table,
                                                const std::string& fallback) {
  const size_t dot = table.find('.');
  if (dot == std::string::npos) return {fallback, table};
  return {table.substr(0, dot), table.substr(dot + 1)};
}

std::string quoted(const std::string& s, char quote) {
  std::string out(1, quote);
  for (char c : s)
    out += c == quote ? std::string(2, quote) : std::string(1, c);
  return out + quote;
}

// --- PostgreSQL -------------------------------------------------------------------------------

std::vector<std::string> pg_connection(const DbEndpoint& e, std::string_view database) {
  std::vector<std::string> args = {"-w"};  // never prompt for a password
  const std::string host = e.socket.empty() ? e.host : e.socket;
  if (!host.empty()) args.insert(args.end(), {"-h", host});
  if (e.port) args.insert(args.end(), {"-p", std::to_string(e.port)});
  if (!e.user.empty()) args.insert(args.end(), {"-U", e.user});
  args.insert(args.end(), {"-d", std::string(database)});
  return args;
}

std::vector<std::string> pg_dump(const DbEndpoint& e, const DbCopyOptions& o) {
  std::vector<std::string> args = {tool(e, "pg_dump"), "-v", o.format == "custom" ? "-Fc" : "-Fp"};
  for (auto& a : pg_connection(e, e.database))
    args.push_back(a);
  if (!o.snapshot.empty()) args.push_back("--snapshot=" + o.snapshot);
  if (o.schema_only) args.push_back("--schema-only");
  if (o.no_replication) args.insert(args.end(), {"--no-publications", "--no-subscriptions"});
  if (o.no_owner) args.push_back("--no-owner");
  if (o.no_privileges) args.push_back("--no-privileges");
  for (const auto& table : o.exclude_tables)
    args.push_back("--exclude-table=" + table);
  return args;
}

std::vector<std::string> pg_restore(const DbEndpoint& e, const DbCopyOptions& o) {
  std::vector<std::string> args;
  if (o.format == "custom") {
    args = {tool(e, "pg_restore"), "--exit-on-error", "--single-transaction"};
    if (o.no_owner) args.push_back("--no-owner");
    if (o.no_privileges) args.push_back("--no-privileges");
  } else {
    // One transaction: a restore that fails half-way leaves nothing behind.
    args = {tool(e, "psql"),       "-X", "-q", "-o", "/dev/null", "-v", "ON_ERROR_STOP=1",
            "--single-transaction"};
  }
  for (auto& a : pg_connection(e, e.database))
    args.push_back(a);
  return args;
}

std::vector<std::string> pg_client(const DbEndpoint& e, std::string_view database) {
  std::vector<std::string> args = {tool(e, "psql"),  "-X", "-A", "-t", "-q", "-v",
                                   "ON_ERROR_STOP=1"};
  for (auto& a : pg_connection(e, database))
    args.push_back(a);
  return args;
}

std::optional<std::string> pg_table_of(std::string_view line) {
  constexpr std::string_view kMarker = "dumping contents of table \"";
  const size_t at = line.find(kMarker);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = line.substr(at + kMarker.size());
  return std::string(rest.substr(0, rest.rfind('"')));
}

bool pg_chatter(std::string_view line) {
  constexpr std::string_view kTools[] = {"pg_dump: ", "pg_restore: "};
  constexpr std::string_view kDoing[] = {
      "reading ",   "identifying ",      "finding ",      "flagging ",
      "saving ",    "last built-in OID", "creating ",     "processing ",
      "executing ", "dropping ",         "launching ",    "finished ",
      "entering ",  "transferring ",     "setting owner", "connecting to database"};
  for (auto tool : kTools) {
    if (!line.starts_with(tool)) continue;
    const std::string_view what = line.substr(tool.size());
    for (auto doing : kDoing)
      if (what.starts_with(doing)) return true;
  }
  return false;
}

std::string pg_count(const std::string& table) {
  const auto [schema, name] = split_table(table, "public");
  return "SELECT " + quoted(table, '\'') + " || '|' || count(*) FROM " + quoted(schema, '"') + "." +
         quoted(name, '"') + ";\n";
}

std::string pg_connections(const std::string& database) {
  return "SELECT coalesce(usename, '') || '|' || coalesce(client_addr::text, 'local socket') || "
         "'|' || coalesce(application_name, '') FROM pg_stat_activity WHERE datname = " +
         quoted(database, '\'') +
         " AND pid <> pg_backend_pid() AND backend_type = 'client backend';\n";
}

std::string pg_create(const std::string& database) {
  return "SELECT 'CREATE DATABASE ' || quote_ident(" + quoted(database, '\'') +
         ") WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = " + quoted(database, '\'') +
         ")\\gexec\n";
}

std::string pg_drop(const std::string& database) {
  // No notice that a database to drop "does not exist, skipping": it reads like a failure.
  return "SET client_min_messages = warning;\nDROP DATABASE IF EXISTS " + quoted(database, '"') +
         ";\n";
}

// "'a', 'b'": names as SQL string literals.
std::string literals(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names)
    out += (out.empty() ? "" : ", ") + quoted(name, '\'');
  return out;
}

std::string pg_existing(const std::vector<std::string>& names) {
  return "SELECT datname FROM pg_database WHERE datname IN (" + literals(names) + ");\n";
}

std::string pg_move(const DbMoves& moves) {
  // A session on its way out (a client just closed, a subscription's worker just stopped)
  // holds its database a moment longer, and a rename waits only 5 s for it, which a busy
  // machine can exceed: up to 60 s for them to go first (the rename stops autovacuum itself;
  // the snapshot of pg_stat_activity is cleared so that each look is a new one).
  std::vector<std::string> from;
  for (const auto& move : moves)
    from.push_back(move.first);
  std::string sql =
      "DO $$BEGIN FOR i IN 1..600 LOOP PERFORM pg_stat_clear_snapshot(); EXIT WHEN NOT EXISTS "
      "(SELECT FROM pg_stat_activity WHERE datname IN (" +
      literals(from) +
      ") AND pid <> pg_backend_pid() AND backend_type <> 'autovacuum worker'); PERFORM "
      "pg_sleep(0.1); END LOOP; END$$;\n";
  // ALTER DATABASE ... RENAME is transactional: every rename happens, or none.
  sql += "BEGIN;\n";
  for (const auto& [from, to] : moves)
    sql += "ALTER DATABASE " + quoted(from, '"') + " RENAME TO " + quoted(to, '"') + ";\n";
  return sql + "COMMIT;\n";
}

std::string no_sql(const std::string&) {
  return "";
}

// --- MariaDB / MySQL --------------------------------------------------------------------------

std::vector<std::string> my_connection(const DbEndpoint& e) {
  std::vector<std::string> args;
  if (!e.socket.empty()) args.push_back("--socket=" + e.socket);
  if (!e.host.empty()) args.insert(args.end(), {"--protocol=TCP", "-h", e.host});
  if (e.port) args.push_back("-P" + std::to_string(e.port));
  if (!e.user.empty()) args.push_back("-u" + e.user);
  return args;
}

std::vector<std::string> my_dump(const DbEndpoint& e, const DbCopyOptions& o) {
  std::vector<std::string> args = {tool(e, "mysqldump"), "--single-transaction", "--routines",
                                   "--triggers", "--verbose"};
  for (auto& a : my_connection(e))
    args.push_back(a);
  if (o.schema_only) args.push_back("--no-data");
  for (const auto& table : o.exclude_tables)
    args.push_back("--ignore-table=" +
                   (table.find('.') == std::string::npos ? e.database + "." + table : table));
  args.push_back(e.database);
  return args;
}

std::vector<std::string> my_restore(const DbEndpoint& e, const DbCopyOptions&) {
  std::vector<std::string> args = {tool(e, "mysql"), "--batch"};  // stops at the first error
  for (auto& a : my_connection(e))
    args.push_back(a);
  args.push_back(e.database);
  return args;
}

std::vector<std::string> my_client(const DbEndpoint& e, std::string_view database) {
  // --unbuffered: each answer comes when its query ends (a kept-open session waits for it).
  std::vector<std::string> args = {tool(e, "mysql"), "--batch", "--skip-column-names", "--raw",
                                   "--unbuffered"};
  for (auto& a : my_connection(e))
    args.push_back(a);
  if (!database.empty()) args.push_back(std::string(database));
  return args;
}

std::optional<std::string> my_table_of(std::string_view line) {
  constexpr std::string_view kMarker = "-- Retrieving table structure for table ";
  if (!line.starts_with(kMarker)) return std::nullopt;
  std::string_view rest = line.substr(kMarker.size());
  if (rest.ends_with("...")) rest.remove_suffix(3);
  return std::string(rest);
}

bool my_chatter(std::string_view line) {
  return line.starts_with("-- ");
}  // mysqldump -v

std::string my_count(const std::string& table) {
  // The table in the connected database: the same rows are counted in the copy, whose
  // database has another name until it takes the target's.
  const std::string from = quoted(split_table(table, "").second, '`');
  return "SELECT CONCAT(" + quoted(table, '\'') + ", '|', COUNT(*)) FROM " + from + ";\n";
}

std::string my_connections(const std::string& database) {
  return "SELECT CONCAT(user, '|', host, '|', COALESCE(command, '')) FROM "
         "information_schema.processlist WHERE db = " +
         quoted(database, '\'') + " AND id <> CONNECTION_ID();\n";
}

std::string my_create(const std::string& database) {
  return "CREATE DATABASE IF NOT EXISTS " + quoted(database, '`') + ";\n";
}

std::string my_drop(const std::string& database) {
  return "DROP DATABASE IF EXISTS " + quoted(database, '`') + ";\n";
}

std::string my_existing(const std::vector<std::string>& names) {
  return "SELECT schema_name FROM information_schema.schemata WHERE schema_name IN (" +
         literals(names) + ");\n";
}

// SQL text that is name quoted as an identifier, computed by the server.
std::string my_ident(const std::string& column) {
  return "CONCAT('`', REPLACE(" + column + ", '`', '``'), '`')";
}

std::string my_drop_if_empty(const std::string& database) {
  const std::string name = quoted(database, '\'');
  return "SET @cutpilot_drop = IF((SELECT COUNT(*) FROM information_schema.tables WHERE "
         "table_schema = " +
         name +
         ") + (SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = " + name +
         ") = 0, " + quoted("DROP DATABASE IF EXISTS " + quoted(database, '`'), '\'') +
         ", 'DO 0');\nEXECUTE IMMEDIATE @cutpilot_drop;\n";
}

std::string my_move(const DbMoves& moves) {
  // No database rename: one RENAME TABLE (atomic) moves every table of each database, in the
  // order of moves (the old target's tables leave before the copy's arrive).
  std::string sql = "SET SESSION group_concat_max_len = 16777216;\n";
  std::string to_case = "CASE table_schema", order = "FIELD(table_schema", from;
  for (const auto& [a, b] : moves) {
    sql += my_create(b);
    to_case += " WHEN " + quoted(a, '\'') + " THEN " + quoted(b, '\'');
    order += ", " + quoted(a, '\'');
    from += (from.empty() ? "" : ", ") + quoted(a, '\'');
  }
  sql += "SELECT GROUP_CONCAT(CONCAT(" + my_ident("table_schema") + ", '.', " +
         my_ident("table_name") + ", ' TO ', " + my_ident(to_case + " END") + ", '.', " +
         my_ident("table_name") + ") ORDER BY " + order +
         ") SEPARATOR ', ') INTO @cutpilot_moves FROM information_schema.tables WHERE "
         "table_schema IN (" +
         from +
         ");\nSET @cutpilot_moves = IF(@cutpilot_moves IS NULL, 'DO 0', CONCAT('RENAME TABLE ', "
         "@cutpilot_moves));\nEXECUTE IMMEDIATE @cutpilot_moves;\n";
  for (const auto& move : moves) {
    const std::string& a = move.first;
    const bool refilled =
        std::any_of(moves.begin(), moves.end(), [&](const auto& m) { return m.second == a; });
    if (!refilled) sql += my_drop_if_empty(a);
  }
  return sql;
}

constexpr DbEngine kEngines[] = {
    {"postgres", "PGPASSWORD", "postgres", pg_dump, pg_restore, pg_client, pg_table_of, pg_chatter,
     "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n "
     "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm', 'p') AND n.nspname NOT IN "
     "('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%';\n",
     "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = "
     "c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', "
     "'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1;\n",
     pg_count,
     // No JIT for the counts: compiling a count(*) costs more than it saves, the first one
     // in a session most (loading LLVM: 150 ms of 370 ms for 6 M rows here). Servers
     // before 11 have no jit setting. No index-only scans: the planner picks them from
     // pg_class.relallvisible, which only a vacuum updates, so a table written since (a live
     // source, a replica) is counted by fetching every changed row's page in index order
     // (30 M rows, a third of the pages changed: 2.6 s against 1.5 s for the scan).
     "DO $$BEGIN IF current_setting('server_version_num')::int >= 110000 THEN SET jit = off; "
     "END IF; END$$;\nSET enable_indexonlyscan = off;\n",
     pg_connections, pg_create, pg_drop,
     "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\n"
     "SELECT 'snapshot|' || pg_export_snapshot();\n",
     "", pg_existing, pg_move, no_sql,
     // psql runs the restore with -o /dev/null; \o puts query output back on stdout.
     "\\o\n\\pset format unaligned\n\\pset tuples_only on\n"},
    {"mariadb", "MYSQL_PWD", "", my_dump, my_restore, my_client, my_table_of, my_chatter,
     "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables WHERE "
     "table_schema = DATABASE();\n",
     "SELECT CONCAT(table_schema, '.', table_name) FROM information_schema.tables WHERE "
     "table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1;\n",
     my_count, "", my_connections, my_create, my_drop,
     // mysqldump --single-transaction starts its own consistent snapshot: writes wait for this
     // lock until it has, so this session's snapshot and the dump's hold the same rows.
     "FLUSH TABLES WITH READ LOCK;\nSTART TRANSACTION WITH CONSISTENT SNAPSHOT;\n"
     "SELECT 'snapshot|held';\n",
     "UNLOCK TABLES;\n", my_existing, my_move, my_drop_if_empty, ""},
};

}  // namespace

const DbEngine* find_db_engine(std::string_view name) {
  if (name == "mysql") name = "mariadb";
  for (const auto& engine : kEngines)
    if (engine.name == name) return &engine;
  return nullptr;
}

}  // namespace cutpilot::agent
