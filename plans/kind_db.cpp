// The db action kind: a database dump piped into a restore, or who is still connected.
#include <algorithm>

#include "plans/kinds.h"

namespace cutpilot::plans {
namespace {

using Json = nlohmann::json;

// The most parallel dump and restore jobs (agents/db_job.cpp).
constexpr int64_t kMaxJobs = 32;

constexpr std::string_view kEngines[] = {"postgres", "mariadb"};
constexpr std::string_view kDbOps[] = {"copy",      "connections", "put-back",
                                       "drop-kept", "catch-up",    "detach"};
constexpr DbOp kDbOpValues[] = {DbOp::kCopy,     DbOp::kConnections, DbOp::kPutBack,
                                DbOp::kDropKept, DbOp::kCatchUp,     DbOp::kDetach};
constexpr std::string_view kModes[] = {"copy", "replicate"};
// What `cutpilot plan` shows for the run's key in the names of kept databases.
constexpr std::string_view kRunPlaceholder = "RUN";
constexpr std::string_view kFormats[] = {"plain", "custom"};

// Where an endpoint's fields are read into, with where it was written.
struct EndpointRead : DbEndpoint {
  std::optional<Located> host_at;  // where the host was named
  bool has_database = false;
};

}  // namespace

bool valid_env_name(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
      return false;
  return true;
}

std::optional<std::string> read_env_name(Reader& r, const Entry& e) {
  auto v = r.string(e);
  if (!v) return std::nullopt;
  if (!valid_env_name(*v)) {
    r.value_error(e,
                  "must name an environment variable (letters, digits and '_'), not " + quote(*v));
    return std::nullopt;
  }
  // The value is read when the step runs; say now if it is missing.
  if (!r.expander().expand("${env:" + *v + "}").ok())
    r.warning(r.source().pos_of(e.value), quote(e.key) + " in " + std::string(e.section) +
                                              ": environment variable " + quote(*v) +
                                              " is not set (the step fails without it)");
  return v;
}

namespace {

constexpr FieldSpec<EndpointRead> kEndpointFields[] = {
    {"host",
     [](Reader& r, const Entry& e, EndpointRead& x) {
       auto v = r.string(e);
       if (!v) return;
       x.host_at = Located{*v, r.source().pos_of(e.value)};
       x.host = std::move(*v);
     }},
    {"address", read_text<EndpointRead, &DbEndpoint::address>},
    {"port",
     [](Reader& r, const Entry& e, EndpointRead& x) {
       if (auto v = r.integer(e, 1, 65535)) x.port = static_cast<uint16_t>(*v);
     }},
    {"socket", read_text<EndpointRead, &DbEndpoint::socket>},
    {"database",
     [](Reader& r, const Entry& e, EndpointRead& x) {
       x.has_database = true;
       if (auto v = r.string(e)) x.database = std::move(*v);
     }},
    {"user", read_text<EndpointRead, &DbEndpoint::user>},
    {"password_env",
     [](Reader& r, const Entry& e, EndpointRead& x) {
       if (auto v = read_env_name(r, e)) x.password_env = std::move(*v);
     }},
    {"bin_dir", read_text<EndpointRead, &DbEndpoint::bin_dir>},
};

// A db table as read: the action and its endpoints' tables.
struct DbRead : DbAction {
  // The endpoint tables, read once the engine and action are known.
  const toml::value* from_table = nullptr;
  const toml::value* to_table = nullptr;
  const toml::value* db_table = nullptr;
  bool has_engine = false, has_max = false, has_mode = false;
};

constexpr FieldSpec<DbRead> kDbFields[] = {
    {"engine",
     [](Reader& r, const Entry& e, DbRead& x) {
       x.has_engine = true;
       if (auto v = r.choice(e, kEngines))
         x.engine = *v == "postgres" ? DbEngine::kPostgres : DbEngine::kMariadb;
     }},
    {"action",
     [](Reader& r, const Entry& e, DbRead& x) {
       if (auto v = r.choice(e, kDbOps))
         x.op = kDbOpValues[std::find(std::begin(kDbOps), std::end(kDbOps), *v) - kDbOps];
     }},
    {"from", [](Reader&, const Entry& e, DbRead& x) { x.from_table = &e.value; }},
    {"to", [](Reader&, const Entry& e, DbRead& x) { x.to_table = &e.value; }},
    {"db", [](Reader&, const Entry& e, DbRead& x) { x.db_table = &e.value; }},
    {"max",
     [](Reader& r, const Entry& e, DbRead& x) {
       x.has_max = true;
       if (auto v = r.integer(e, 0, 1'000'000)) x.max = static_cast<uint64_t>(*v);
     }},
    {"format",
     [](Reader& r, const Entry& e, DbRead& x) {
       if (auto v = r.choice(e, kFormats)) x.format = *v;
     }},
    {"create", read_flag<DbRead, &DbAction::create>},
    {"drop", read_flag<DbRead, &DbAction::drop>},
    {"schema_only", read_flag<DbRead, &DbAction::schema_only>},
    {"no_owner", read_flag<DbRead, &DbAction::no_owner>},
    {"no_privileges", read_flag<DbRead, &DbAction::no_privileges>},
    {"verify", read_flag<DbRead, &DbAction::verify>},
    {"direct", read_flag<DbRead, &DbAction::direct>},
    {"exclude_tables",
     [](Reader& r, const Entry& e, DbRead& x) {
       if (auto v = r.strings(e, /*single=*/true, /*allow_empty=*/true)) x.exclude_tables = *v;
     }},
    {"jobs",
     [](Reader& r, const Entry& e, DbRead& x) {
       if (auto v = r.integer(e, 1, kMaxJobs)) x.jobs = static_cast<uint32_t>(*v);
     }},
    {"compress", [](Reader& r, const Entry& e, DbRead& x) { read_compress(r, e, x.compress); }},
    {"timeout", read_time<DbRead, &DbAction::timeout>},
    {"mode",
     [](Reader& r, const Entry& e, DbRead& x) {
       x.has_mode = true;
       if (auto v = r.choice(e, kModes)) x.replicate = *v == "replicate";
     }},
    {"replica_identity_full", read_flag<DbRead, &DbAction::replica_identity_full>},
    {"of",
     [](Reader& r, const Entry& e, DbRead& x) {
       if (auto v = r.string(e)) {
         x.of = std::move(*v);
         x.of_pos = r.source().pos_of(e.value);
       }
     }},
};

// Reads one endpoint table (`from`, `to` or `db`) and records the host it names.
void read_endpoint(ActionInput& input, const toml::value& table, std::string_view key, HostUse use,
                   DbEndpoint& out) {
  Reader& reader = input.reader;
  const std::string section = quote(key) + " in " + input.section;
  if (!table.is_table()) {
    reader.error(reader.source().pos_of(table),
                 section + " must be a table: { host = \"HOST\", database = \"NAME\", ... }");
    return;
  }
  EndpointRead read;
  read.pos = reader.source().pos_of(table);
  read_fields<EndpointRead>(reader, table, section, kEndpointFields, read);
  if (!read.has_database) reader.error(read.pos, section + " needs 'database'");
  if (read.host_at) input.hosts.push_back({*read.host_at, "'host' of " + section, use});
  out = std::move(static_cast<DbEndpoint&>(read));
}

Json endpoint_json(const DbEndpoint& e, const std::optional<std::string>& address) {
  Json j = {{"database", e.database}};
  if (address) j["host"] = *address;
  if (e.port) j["port"] = *e.port;
  if (e.socket) j["socket"] = *e.socket;
  if (e.user) j["user"] = *e.user;
  if (e.bin_dir) j["bin_dir"] = *e.bin_dir;
  return j;
}

// Puts the endpoint's password into spec (and "(hidden)" into redacted); false when unset.
bool add_password(const DbEndpoint& e, const JobInput& input, Json& spec, Json& redacted,
                  std::string& error) {
  if (!e.password_env) return true;
  const std::optional<std::string> password =
      input.context.secrets ? input.context.secrets(*e.password_env) : std::nullopt;
  if (!password) {
    error = "environment variable " + quote(*e.password_env) + " (password_env of database " +
            quote(e.database) + ") is not set";
    return false;
  }
  spec["password"] = *password;
  redacted["password"] = "(hidden)";
  return true;
}

// The tools' words for one side, for `cutpilot plan` (the job builds its own).
std::vector<std::string> connection_words(const DbAction& db, const DbEndpoint& e,
                                          const std::optional<std::string>& address) {
  std::vector<std::string> words;
  const bool pg = db.engine == DbEngine::kPostgres;
  if (e.socket) words.push_back(pg ? "-h" : "--socket=" + *e.socket);
  if (e.socket && pg) words.push_back(*e.socket);
  if (address && !e.socket) words.insert(words.end(), {"-h", *address});
  if (e.port) words.insert(words.end(), {pg ? "-p" : "-P", std::to_string(*e.port)});
  if (e.user) words.insert(words.end(), {pg ? "-U" : "-u", *e.user});
  return words;
}

std::string tool(const DbEndpoint& e, std::string_view name) {
  return e.bin_dir ? *e.bin_dir + "/" + std::string(name) : std::string(name);
}

std::string password_prefix(const DbAction& db, const DbEndpoint& e) {
  if (!e.password_env) return "";
  return std::string(db.engine == DbEngine::kPostgres ? "PGPASSWORD" : "MYSQL_PWD") + "=$" +
         *e.password_env + " ";
}

std::string dump_line(const DbAction& db, const std::optional<std::string>& address) {
  const bool pg = db.engine == DbEngine::kPostgres;
  std::vector<std::string> argv = {tool(db.from, pg ? "pg_dump" : "mysqldump")};
  if (pg && db.jobs > 1) argv.insert(argv.end(), {"-Fd", "-j", std::to_string(db.jobs)});
  if (pg && db.jobs == 1) argv.push_back(db.format == "custom" ? "-Fc" : "-Fp");
  if (!pg) argv.insert(argv.end(), {"--single-transaction", "--routines", "--triggers"});
  for (std::string& word : connection_words(db, db.from, address))
    argv.push_back(std::move(word));
  if (db.schema_only) argv.push_back(pg ? "--schema-only" : "--no-data");
  if (db.no_owner && pg) argv.push_back("--no-owner");
  if (db.no_privileges && pg) argv.push_back("--no-privileges");
  for (const std::string& table : db.exclude_tables)
    argv.push_back((pg ? "--exclude-table=" : "--ignore-table=") + table);
  argv.push_back(db.from.database);
  return password_prefix(db, db.from) + shell_join(argv);
}

std::string restore_line(const DbAction& db) {
  const bool pg = db.engine == DbEngine::kPostgres;
  std::vector<std::string> argv;
  if (pg && (db.format == "custom" || db.jobs > 1)) {
    argv = {tool(db.to, "pg_restore"), "--exit-on-error"};
    if (db.jobs > 1)
      argv.insert(argv.end(), {"-j", std::to_string(db.jobs)});
    else
      argv.push_back("--single-transaction");
  } else if (pg) {
    argv = {tool(db.to, "psql"), "-X", "-v", "ON_ERROR_STOP=1", "--single-transaction"};
  } else {
    argv = {tool(db.to, "mysql")};
  }
  for (std::string& word : connection_words(db, db.to, db.to.address))
    argv.push_back(std::move(word));
  if (pg) argv.push_back("-d");
  argv.push_back(db.to.database);
  return password_prefix(db, db.to) + shell_join(argv);
}

}  // namespace

std::optional<Action> read_db_action(ActionInput& input) {
  Reader& reader = input.reader;
  const toml::value& table = input.entry.value;
  const size_t before = reader.diagnostics().size();
  DbRead read;
  if (!read_action_table<DbRead>(input, kDbFields, read,
                                 "{ engine = \"postgres\", from = { ... }, to = { ... } }"))
    return std::nullopt;
  DbAction& db = read;
  const SourcePos at = reader.source().pos_of(table);
  const auto refuse = [&](std::string_view message) {
    reader.error(at, input.section + " " + std::string(message));
  };
  if (!read.has_engine) refuse("needs 'engine' (\"postgres\" or \"mariadb\")");
  if (db.op == DbOp::kCopy) {
    if (read.from_table) read_endpoint(input, *read.from_table, "from", HostUse::kOther, db.from);
    if (read.to_table) read_endpoint(input, *read.to_table, "to", HostUse::kSelf, db.to);
    if (!read.from_table || !read.to_table) refuse("copies a database: it needs 'from' and 'to'");
    if (read.db_table || read.has_max)
      refuse("copies a database: 'db' and 'max' are for connections");
    if (db.engine == DbEngine::kMariadb && db.format == "custom")
      refuse("uses format \"custom\", which is for postgres only");
    if (db.engine == DbEngine::kMariadb && db.jobs > 1)
      refuse("uses jobs above 1, which is for postgres only");
    if (db.direct && read.from_table && !db.from.host)
      refuse("is direct, so 'from' needs the 'host' whose server the tools reach");
    if (db.compress != Compress::kNone && (db.direct || (read.from_table && !db.from.host)))
      refuse("compresses its stream, but nothing crosses ssh: 'from' is " +
             std::string(db.direct ? "reached directly (direct = true)" : "on the step's host"));
    if (db.replicate) {
      if (db.engine == DbEngine::kMariadb && db.replica_identity_full)
        refuse(
            "sets replica_identity_full, which is for postgres (mariadb replicates rows "
            "by their binary log)");
      if (db.jobs > 1 || db.format != "plain" || db.schema_only || db.direct ||
          db.compress != Compress::kNone)
        refuse(
            "replicates: 'jobs', 'format', 'schema_only', 'direct' and 'compress' are for a copy "
            "('verify = false' leaves out the catch-up's row counts)");
    } else if (db.replica_identity_full) {
      refuse("sets replica_identity_full, which is for mode = \"replicate\"");
    }
  } else if (db.op == DbOp::kCatchUp || db.op == DbOp::kDetach) {
    if (db.of.empty())
      refuse("needs 'of' (the id of the step with mode = \"replicate\" whose replication it " +
             std::string(db.op == DbOp::kCatchUp ? "catches up" : "removes") + ")");
    if (read.from_table || read.to_table || read.db_table || read.has_max)
      refuse(
          "takes its databases from the step 'of' names: 'from', 'to', 'db' and 'max' are "
          "not for it");
  } else if (db.op == DbOp::kPutBack || db.op == DbOp::kDropKept) {
    if (read.to_table) read_endpoint(input, *read.to_table, "to", HostUse::kSelf, db.to);
    if (!read.to_table) refuse("needs 'to' (the copy's target: { database = \"NAME\", ... })");
    if (read.from_table || read.db_table || read.has_max)
      refuse("works on the target only: 'from', 'db' and 'max' are for copy and connections");
  } else {
    if (read.db_table) read_endpoint(input, *read.db_table, "db", HostUse::kSelf, db.db);
    if (!read.db_table) refuse("counts connections: it needs 'db' ({ database = \"NAME\" })");
    if (read.from_table || read.to_table)
      refuse("counts connections: 'from' and 'to' are for copy");
  }
  if (db.op != DbOp::kCopy && db.compress != Compress::kNone)
    refuse("compresses only a copy's stream: 'compress' is for copy");
  if (db.op != DbOp::kCopy && (read.has_mode || db.replica_identity_full))
    refuse("has 'mode' or 'replica_identity_full', which are for a copy");
  if (db.op != DbOp::kCatchUp && db.op != DbOp::kDetach && !db.of.empty())
    refuse("has 'of', which is for action = \"catch-up\" or \"detach\"");
  if (errors_since(reader, before)) return std::nullopt;
  return Action(std::move(db));
}

std::optional<std::string> db_tunnel_target(const DbAction& db) {
  if (db.op != DbOp::kCopy || db.jobs <= 1 || !db.from.host || db.direct) return std::nullopt;
  return db.from.address.value_or("127.0.0.1") + ":" + std::to_string(db.from.port.value_or(5432));
}

Translation db_job(const DbAction& db, const JobInput& input) {
  Json spec = {{"engine", db.engine == DbEngine::kPostgres ? "postgres" : "mariadb"}};
  Json redacted;
  std::string error;
  if (db.op == DbOp::kConnections) {
    spec["action"] = "connections";
    Json of = endpoint_json(db.db, db.db.address);
    Json hidden = of;
    if (!add_password(db.db, input, of, hidden, error)) return job_error(input, error);
    spec["db"] = of;
    if (db.max) spec["max"] = *db.max;
    redacted = spec;
    redacted["db"] = hidden;
    return {JobSpec{"db", spec.dump(), redacted.dump()}, ""};
  }
  // The run's key names the side and kept databases (agents/db_swap.h).
  if (input.context.run_key.empty()) return job_error(input, "the run has no migration key name");
  spec["run"] = input.context.run_key;
  if (db.op == DbOp::kPutBack || db.op == DbOp::kDropKept) {
    spec["action"] = db.op == DbOp::kPutBack ? "put-back" : "drop-kept";
    Json to = endpoint_json(db.to, db.to.address), hidden = to;
    if (!add_password(db.to, input, to, hidden, error)) return job_error(input, error);
    spec["to"] = to;
    if (const uint64_t timeout = timeout_ms(db.timeout, input)) spec["timeout_ms"] = timeout;
    redacted = spec;
    redacted["to"] = hidden;
    return {JobSpec{"db", spec.dump(), redacted.dump()}, ""};
  }
  spec["action"] = db.op == DbOp::kCatchUp  ? "catch-up"
                   : db.op == DbOp::kDetach ? "detach"
                   : db.replicate           ? "replicate"
                                            : "copy";
  if (db.from.database.empty())
    return job_error(input,
                     "the step " + quote(db.of) + " it names in 'of' is not a replicate step");
  std::optional<std::string> from_address = db.from.address;
  if (db.replicate) {
    // The target's server reaches the source's itself, as a direct copy's tools do.
    std::optional<std::string> publisher = from_address;
    if (!publisher && db.from.host) {
      const std::optional<PeerAccess> peer =
          input.context.peer ? input.context.peer(*db.from.host) : std::nullopt;
      const HostSpec* host = input.plan.find_host(*db.from.host);
      publisher = peer ? peer->address : host ? default_peer_access(*host).address : "";
    }
    spec["publisher_host"] = publisher.value_or("127.0.0.1");
    if (db.replica_identity_full) spec["replica_identity_full"] = true;
  }
  if (db.from.host && db.direct && !from_address) {
    const std::optional<PeerAccess> peer =
        input.context.peer ? input.context.peer(*db.from.host) : std::nullopt;
    const HostSpec* host = input.plan.find_host(*db.from.host);
    from_address = peer ? peer->address : host ? default_peer_access(*host).address : "";
  } else if (db.from.host && !db.direct) {
    std::optional<Json> peer = peer_spec(*db.from.host, input, error);
    if (!peer) return job_error(input, error);
    spec["peer"] = std::move(*peer);
  }
  Json from = endpoint_json(db.from, from_address), to = endpoint_json(db.to, db.to.address);
  Json hidden_from = from, hidden_to = to;
  if (!add_password(db.from, input, from, hidden_from, error) ||
      !add_password(db.to, input, to, hidden_to, error))
    return job_error(input, error);
  spec["from"] = from;
  spec["to"] = to;
  if (db.format != "plain") spec["format"] = db.format;
  for (const auto& [key, on] : {std::pair{"create", db.create},
                                {"drop", db.drop},
                                {"schema_only", db.schema_only},
                                {"no_owner", db.no_owner},
                                {"no_privileges", db.no_privileges},
                                {"direct", db.direct}})
    if (on) spec[key] = true;
  if (!db.verify) spec["verify"] = false;
  if (!db.exclude_tables.empty()) spec["exclude_tables"] = db.exclude_tables;
  if (db.jobs > 1) spec["jobs"] = db.jobs;
  if (db.compress != Compress::kNone)
    spec["compress"] = compress_names()[static_cast<size_t>(db.compress)];
  if (const uint64_t timeout = timeout_ms(db.timeout, input)) spec["timeout_ms"] = timeout;
  redacted = spec;
  redacted["from"] = hidden_from;
  redacted["to"] = hidden_to;
  return {JobSpec{"db", spec.dump(), redacted.dump()}, ""};
}

std::optional<Action> default_rollback(const Action& action) {
  const auto* db = std::get_if<DbAction>(&action);
  if (db && db->op == DbOp::kCopy && db->replicate) {
    // A replication is removed (subscription, slot, publication, side database), never left.
    DbAction detach = *db;
    detach.op = DbOp::kDetach;
    detach.replicate = false;
    return Action(std::move(detach));
  }
  // A catch-up's put-back needs its target, which the plan's check copies in from 'of'.
  const bool copies = db && (db->op == DbOp::kCopy || db->op == DbOp::kCatchUp);
  if (!copies || db->to.database.empty()) return std::nullopt;
  DbAction put_back;
  put_back.engine = db->engine;
  put_back.op = DbOp::kPutBack;
  put_back.to = db->to;
  put_back.timeout = db->timeout;
  return Action(std::move(put_back));
}

std::string describe_db(const DbAction& db, const DescribeInput& input) {
  const std::string engine = db.engine == DbEngine::kPostgres ? "postgres" : "mariadb";
  if (db.op == DbOp::kConnections)
    return "count the clients connected to " + engine + " database " + quote(db.db.database) +
           (db.max ? "; fail when more than " + std::to_string(*db.max) : "");
  const std::string& target = db.to.database;
  const auto named = [&](std::string_view role) {
    return target + "_" + std::string(role) + "_" + std::string(kRunPlaceholder);
  };
  if (db.op == DbOp::kPutBack)
    return "put back " + engine + " database " + quote(target) + ": rename it to " +
           quote(named("undone")) + " and " + quote(named("old")) + " (kept by the copy) to " +
           quote(target) + "; nothing is dropped (" + std::string(kRunPlaceholder) +
           " = the run's key, names longer than the engine allows are cut and hashed)";
  const bool maria = db.engine == DbEngine::kMariadb;
  if (db.op == DbOp::kCatchUp)
    return "catch up the replication of " + quote(db.of) + ": wait until " + quote(db.to.database) +
           " on this host has applied everything " + engine + " database " +
           quote(db.from.database) +
           (maria ? " wrote (up to its gtid_binlog_pos now, MASTER_GTID_WAIT), compare every "
                    "table's columns and row counts (one snapshot per side), remove the "
                    "replication connection here and the replication user on the source; then "
                  : " wrote (up to its WAL position now), set every sequence to the source's "
                    "value, compare row counts (one snapshot per side), remove the "
                    "subscription, slot and publication; then ") +
           quote(target) + " (if it exists) is kept as " + quote(named("old")) + " and " +
           quote(named("new")) + " takes its name" +
           (maria ? " (tables moved with one RENAME TABLE)" : "");
  if (db.op == DbOp::kDetach)
    return "remove the replication of " + quote(db.of.empty() ? db.from.database : db.of) +
           (maria ? ": the replication connection on this host, the replication user on the "
                    "source, and "
                  : ": the subscription on this host, the slot and publication on the source, "
                    "and ") +
           quote(named("new")) + "; the target database is not touched";
  if (db.replicate && maria)
    return "replicate " + engine + " database " + quote(db.from.database) + " into " +
           quote(named("new")) +
           " while the service runs: a preflight of the source (log_bin, binlog_format = ROW, "
           "its own server_id, GTIDs, the privileges to create a user, InnoDB tables), a "
           "replication user on the source, mysqldump --single-transaction --gtid "
           "--master-data=2 restored here, then a named replication connection from the dump's "
           "GTID position (this server connects to the source's) applying only " +
           quote(db.from.database) + ", rewritten into " + quote(named("new")) +
           "; it streams and shows the lag until a catch-up (the run's end or an abort removes "
           "it)";
  if (db.replicate)
    return "replicate " + engine + " database " + quote(db.from.database) + " into " +
           quote(named("new")) +
           " while the service runs: a preflight of the source (wal_level = logical, "
           "REPLICATION, free slots and senders, a key on every table" +
           (db.replica_identity_full ? " or REPLICA IDENTITY FULL set on it" : "") +
           ", no large objects or unlogged tables), the schema with pg_dump --schema-only, a "
           "publication on the source and a subscription here (this server connects to the "
           "source's), the first copy; then it streams and shows the lag until a catch-up (the "
           "run's end or an abort removes it)";
  if (db.op == DbOp::kDropKept)
    return "drop " + engine + " databases " + quote(named("old")) + " and " +
           quote(named("undone")) + " where they exist (set aside by a copy of this run)";
  std::optional<std::string> from_address = db.from.address;
  const HostSpec* source = db.from.host ? input.plan.find_host(*db.from.host) : nullptr;
  if (source && db.direct && !from_address) from_address = default_peer_access(*source).address;
  std::string dump = dump_line(db, from_address);
  if (source && !db.direct) {
    const PeerAccess peer = default_peer_access(*source);
    dump = "ssh " + shell_quote((peer.user.empty() ? "" : peer.user + "@") + peer.address) +
           (peer.port == 22 ? "" : " -p " + std::to_string(peer.port)) + " " + shell_quote(dump);
  }
  DbAction side = db;
  side.to.database = named("new");
  std::string line = dump + " | " + restore_line(side);
  if (db.compress != Compress::kNone)
    line += db.jobs > 1 ? "   (the tunnel compressed: ssh -C)"
            : db.compress == Compress::kAuto
                ? "   (the stream compressed with zstd where both hosts have it, else gzip)"
                : "   (the stream compressed with " +
                      std::string(compress_names()[static_cast<size_t>(db.compress)]) + ")";
  if (db.verify) line += "   (row counts compared, the source's in the dump's snapshot)";
  line += "; then " + quote(target) + " (if it exists) is kept as " + quote(named("old")) +
          " and " + quote(named("new")) + " takes its name" +
          (db.engine == DbEngine::kMariadb ? " (tables moved with one RENAME TABLE)" : "") +
          (db.create ? "" : "; fails unless " + quote(target) + " exists (create = true)");
  return line;
}

}  // namespace cutpilot::plans
