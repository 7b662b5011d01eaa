#include "agents/db_spec.h"

#include <nlohmann/json.hpp>

#include "agents/spec_fields.h"

namespace cutpilot::agent {

using Json = nlohmann::json;

namespace {

std::optional<DbEndpoint> parse_endpoint(const Json& j, const std::string& what,
                                         std::string& error) {
  DbEndpoint e;
  const FieldHandlers fields = {
      {"host", text_field(e.host, error, what + ".host")},
      {"port", count_field(e.port)},
      {"socket", text_field(e.socket, error, what + ".socket")},
      {"database", text_field(e.database, error, what + ".database")},
      {"user", text_field(e.user, error, what + ".user")},
      {"password", text_field(e.password, error, what + ".password")},
      {"bin_dir", text_field(e.bin_dir, error, what + ".bin_dir")},
  };
  if (!read_fields(j, what, fields, error)) return std::nullopt;
  if (e.database.empty()) error = "\"" + what + ".database\" is required";
  if (e.port > 65535) error = "\"" + what + ".port\" must be at most 65535";
  if (e.password.find_first_of("\n\r") != std::string::npos)
    error = "\"" + what + ".password\" must be one line";
  if (!error.empty()) return std::nullopt;
  return e;
}

}  // namespace

std::optional<DbSpec> parse_db_spec(std::string_view text, std::string& error) {
  const Json j = Json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) {
    error = "the db spec is not valid JSON";
    return std::nullopt;
  }
  DbSpec spec;
  std::string engine;
  uint64_t max = 0;
  auto endpoint = [&](DbEndpoint& out, const std::string& what) {
    return [&out, &error, what](const Json& v) {
      auto e = parse_endpoint(v, what, error);
      if (e) out = *e;
      return e.has_value();
    };
  };
  const FieldHandlers fields = {
      {"action", text_field(spec.action, error, "action")},
      {"engine", text_field(engine, error, "engine")},
      {"peer",
       [&](const Json& v) { return (spec.peer = parse_peer(v, "peer", error)).has_value(); }},
      {"from", endpoint(spec.from, "from")},
      {"to", endpoint(spec.to, "to")},
      {"db", endpoint(spec.db, "db")},
      {"max",
       [&](const Json& v) {
         const bool ok = count_field(max)(v);
         if (ok) spec.max = max;
         return ok;
       }},
      {"format", text_field(spec.options.format, error, "format")},
      {"create", flag_field(spec.create)},
      {"drop", flag_field(spec.drop)},
      {"schema_only", flag_field(spec.options.schema_only)},
      {"no_owner", flag_field(spec.options.no_owner)},
      {"no_privileges", flag_field(spec.options.no_privileges)},
      {"verify", flag_field(spec.verify)},
      {"direct", flag_field(spec.direct)},
      {"exclude_tables", list_field(spec.options.exclude_tables)},
      {"timeout_ms", count_field(spec.timeout_ms)},
      {"jobs", count_field(spec.jobs)},
      {"compress", text_field(spec.compress, error, "compress")},
      {"run", text_field(spec.run, error, "run")},
      {"publisher_host", text_field(spec.publisher_host, error, "publisher_host")},
      {"replica_identity_full", flag_field(spec.replica_identity_full)},
  };
  if (!read_fields(j, "db", fields, error)) return std::nullopt;
  spec.engine = find_db_engine(engine);
  if (!spec.engine) {
    error = "db \"engine\" must be postgres or mariadb";
  } else if (spec.action == "copy") {
    if (!j.contains("from") || !j.contains("to")) error = "a db copy needs \"from\" and \"to\"";
    if (spec.options.format != "plain" && spec.options.format != "custom")
      error = "db \"format\" must be plain or custom";
    if (spec.options.format == "custom" && spec.engine->name != "postgres")
      error = "db \"format\" custom is for postgres only";
    if (spec.jobs == 0 || spec.jobs > 32) error = "db \"jobs\" must be between 1 and 32";
    if (spec.jobs > 1 && spec.engine->name != "postgres")
      error = "db \"jobs\" above 1 is for postgres only";
    if (spec.compress != "none" && spec.compress != "gzip" && spec.compress != "zstd" &&
        spec.compress != "auto")
      error = "db \"compress\" must be none, gzip, zstd or auto";
  } else if (spec.action == "connections") {
    if (!j.contains("db")) error = "db connections needs \"db\"";
  } else if (spec.action == "put-back" || spec.action == "drop-kept") {
    if (!j.contains("to")) error = "db " + spec.action + " needs \"to\"";
  } else if (spec.action == "replicate" || spec.action == "catch-up" || spec.action == "detach") {
    if (!j.contains("from") || !j.contains("to"))
      error = "a db " + spec.action + " needs \"from\" and \"to\"";
    if (spec.action == "replicate" && spec.publisher_host.empty())
      error =
          "a db replicate needs \"publisher_host\" (where the target's server reaches the "
          "source's)";
  } else {
    error =
        "db \"action\" must be copy, connections, put-back, drop-kept, replicate, catch-up "
        "or detach";
  }
  if (spec.action != "connections" && spec.run.empty() && error.empty())
    error = "db " + spec.action + " needs \"run\" (it names the side and kept databases)";
  if (!error.empty()) return std::nullopt;
  return spec;
}

}  // namespace cutpilot::agent
