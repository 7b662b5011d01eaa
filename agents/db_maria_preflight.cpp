// The MariaDB replication's preflight: what keeps a source from being replicated into a
// target, every problem named, before anything changes.
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "agents/db_maria_parts.h"
#include "agents/words.h"

namespace cutpilot::agent::maria_parts {

using namespace replica_parts;

namespace {

// The privileges of the connected user: "TYPE|YES" (grantable) or "TYPE|NO" lines.
constexpr std::string_view kPrivilegesSql =
    "SELECT CONCAT('user|', CURRENT_USER());\n"
    "SELECT CONCAT('priv|', PRIVILEGE_TYPE, '|', IS_GRANTABLE) FROM "
    "information_schema.USER_PRIVILEGES WHERE GRANTEE = CONCAT('''', "
    "SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), "
    "'''');\n";

}  // namespace

std::string preflight(Maria& m, std::vector<std::string>& tables, uint64_t& size,
                      std::string& domain) {
  const DbSpec& spec = m.spec;
  std::string error;
  auto answers = run_queries(
      {{m.source, spec.from, spec.from.database,
        "SELECT CONCAT('binlog|', @@global.log_bin, '|', @@global.binlog_format, '|', "
        "@@global.server_id, '|', @@global.log_slave_updates);\n"
        "SELECT CONCAT('gtid|', @@global.gtid_domain_id, '|', @@global.gtid_binlog_pos);\n"
        "SELECT CONCAT('replicas|', VARIABLE_VALUE) FROM information_schema.GLOBAL_STATUS WHERE "
        "VARIABLE_NAME = 'SLAVES_RUNNING';\n"
        "SELECT CONCAT('size|', COALESCE(SUM(data_length + index_length), 0)) FROM "
        "information_schema.tables WHERE table_schema = DATABASE();\n"
        "SELECT CONCAT('table|', table_schema, '.', table_name, '|', COALESCE(engine, '')) FROM "
        "information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE "
        "TABLE' ORDER BY 1;\n" +
            std::string(kPrivilegesSql)},
       {kHere, spec.to, "",
        "SELECT CONCAT('binlog|', @@global.server_id);\n"
        "SELECT CONCAT('rewrite|', COUNT(*), '|', VERSION()) FROM "
        "information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME = 'REPLICATE_REWRITE_DB';\n"
        "SELECT CONCAT('gtid|', @@global.gtid_slave_pos);\n" +
            std::string(kPrivilegesSql)}},
      *spec.engine, m.job, error);
  if (!answers[0] || !answers[1]) return "looking at the servers " + error;
  std::vector<std::string> problems, plain;
  std::map<std::string, std::string> source, target;  // first fields by tag
  std::map<std::string, std::string> source_privs, target_privs;
  std::set<std::string> domains;  // the source's GTID domains
  for (int side = 0; side < 2; ++side)
    for (const auto& row : *answers[side]) {
      const auto p = split(row);
      const std::string rest = row.substr(std::min(row.size(), p[0].size() + 1));
      if (p[0] == "priv" && p.size() > 2)
        (side ? target_privs : source_privs)[p[1]] = p[2];
      else if (p[0] == "table" && p.size() > 2 && !excluded(spec, p[1])) {
        tables.push_back(p[1]);
        if (p[2] != "InnoDB" && p[2] != "ROCKSDB") plain.push_back(p[1] + " (" + p[2] + ")");
      } else {
        (side ? target : source)[p[0]] = rest;
      }
    }
  const auto s = split(source["binlog"]);
  const std::string target_id = split(target["binlog"])[0];
  if (s.size() > 3) {
    if (s[0] != "ON" && s[0] != "1")
      problems.push_back(
          "log_bin is off on the source: the replication reads the source's binary log "
          "(start its server with log_bin and binlog_format = ROW)");
    if (s[1] != "ROW")
      problems.push_back("binlog_format is " + s[1] +
                         " on the source; the replication needs ROW (SET GLOBAL binlog_format = "
                         "ROW and binlog_format = ROW in its configuration)");
    if (s[2] == "0")
      problems.push_back(
          "server_id is 0 on the source: a server without one cannot be "
          "replicated from (set server_id)");
    else if (s[2] == target_id)
      problems.push_back("server_id is " + s[2] +
                         " on both the source and the target: each needs its own (set "
                         "server_id on one of them)");
    if (s[3] != "ON" && s[3] != "1" && number(source["replicas"]) > 0)
      problems.push_back(
          "the source replicates from another server without log_slave_updates: "
          "what arrives that way is not in its binary log (set "
          "log_slave_updates = ON, then restart it)");
  }
  const auto g = split(source["gtid"]);
  domain = g[0];
  domains.insert(domain);
  for (const auto& [d, gtid] : by_domain(g.size() > 1 ? g[1] : ""))
    domains.insert(d);
  size = number(source["size"]);
  const auto lacks = [](std::map<std::string, std::string>& privs, const std::string& what,
                        bool grant) {
    return !privs.count(what) || (grant && privs[what] != "YES");
  };
  std::vector<std::string> missing;
  if (lacks(source_privs, "CREATE USER", false)) missing.push_back("CREATE USER");
  if (lacks(source_privs, "REPLICATION SLAVE", true))
    missing.push_back("REPLICATION SLAVE WITH GRANT OPTION");
  if (!missing.empty())
    problems.push_back("the user " + source["user"] +
                       " on the source may not create the run's replication user: it lacks " +
                       listed(missing));
  if (lacks(target_privs, "SUPER", false) && lacks(target_privs, "REPLICATION SLAVE ADMIN", false))
    problems.push_back("the user " + target["user"] +
                       " on the target may not set up a replication: it needs REPLICATION "
                       "SLAVE ADMIN (or SUPER)");
  const auto r = split(target["rewrite"]);
  if (r[0] == "0")
    problems.push_back(
        "the target's server (" + (r.size() > 1 ? r[1] : "?") +
        ") cannot rewrite a replicated database per connection (replicate_rewrite_db is a "
        "setting from MariaDB 10.11 on)");
  if (!plain.empty())
    problems.push_back(counted(plain.size(), "table") +
                       " without transactions, which the dump's snapshot does not hold at its "
                       "GTID position: " +
                       listed(plain) + " (make them InnoDB or exclude them)");
  for (const std::string& db : {spec.from.database, m.names.side})
    if (db.find(',') != std::string::npos || db.find("->") != std::string::npos)
      problems.push_back("the database name " + db +
                         " cannot be a replication filter (it holds ',' or '->')");
  // gtid_slave_pos is one for all connections: it can be set only while none runs, and a
  // domain of the source's must be no other connection's.
  if (auto rows = m.slaves(error)) {
    std::vector<std::string> running, others;
    for (const auto& row : *rows) {
      if (value(row, "Connection_name") == m.name) continue;
      const std::string n = "'" + value(row, "Connection_name") + "'";
      others.push_back(n);
      if (value(row, "Slave_SQL_Running") == "Yes" || value(row, "Slave_IO_Running") != "No")
        running.push_back(n);
    }
    std::vector<std::string> shared;
    for (const auto& [d, gtid] : by_domain(target["gtid"]))
      if (domains.count(d)) shared.push_back(d);
    if (!running.empty())
      problems.push_back("the target replicates from elsewhere (connection " + listed(running) +
                         " running): setting gtid_slave_pos for the run's connection needs them "
                         "stopped, and cutpilot does not touch another replication");
    else if (!others.empty() && !shared.empty())
      problems.push_back("the source's GTID domain " + listed(shared) +
                         " is in the target's gtid_slave_pos, which its connection " +
                         listed(others) + " uses too (give the source its own gtid_domain_id)");
  } else {
    problems.push_back("reading the target's replication connections " + error);
  }
  std::string out;
  for (const auto& p : problems)
    out += (out.empty() ? "" : "; ") + p;
  return out;
}

}  // namespace cutpilot::agent::maria_parts
