// Database copies through real SSH between lab hosts with real PostgreSQL and MariaDB:
// pg_dump on the source streamed into psql on the target, progress, row counts,
// a killed restore, a wrong password (that never shows), connections.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "agents/db_engines.h"
#include "tests/support/lab.h"
#include "tests/support/peer_lab.h"

namespace cutpilot::transport {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
namespace fs = std::filesystem;

// A password distinctive enough to grep every output for.
constexpr char kSecret[] = "Sup3r-S3cret-pw-7781";

// KEY=VALUE lines of a lab env file (values may be single-quoted).
std::map<std::string, std::string> env_file(const std::string& path) {
  std::map<std::string, std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    std::string value = line.substr(eq + 1);
    if (value.size() >= 2 && value.front() == '\'') value = value.substr(1, value.size() - 2);
    out[line.substr(0, eq)] = value;
  }
  return out;
}

// Runs a shell command; its stdout (stderr goes to the test's output).
std::string sh(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, p)) > 0)
    out.append(buffer, n);
  pclose(p);
  return out;
}

// Every file below dir, concatenated (to grep a spool for a secret).
std::string all_files(const std::string& dir) {
  std::string out;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file()) {
      std::ifstream in(e.path(), std::ios::binary);
      out += std::string(std::istreambuf_iterator<char>(in), {});
    }
  return out;
}

// Two lab hosts with PostgreSQL each, linked by a migration key.
class PgCopy : public test::PeerLab {
 protected:
  PgCopy() : test::PeerLab({"postgres"}) {}
  void SetUp() override {
    test::PeerLab::SetUp();
    if (HasFatalFailure()) return;
    for (const char* host : {"source", "target"}) {
      pg_[host] = env_file(lab_.host_dir(host) + "/postgres.env");
      // A password-only role over TCP: what a real copy between hosts looks like.
      psql(host, "postgres",
           std::string("CREATE ROLE mover LOGIN SUPERUSER PASSWORD '") + kSecret + "'");
    }
    // The key may open a tunnel to the source's server (a parallel copy), and nothing else.
    link_hosts({"127.0.0.1:" + pg_["source"]["PGPORT"]});
  }
  // Runs SQL on a host's cluster through its socket (trusted); stdout.
  std::string psql(const std::string& host, const std::string& db, const std::string& sql) {
    auto& e = pg_[host];
    return sh(e["PGBIN"] + "/psql -X -At -h " + e["PGHOST"] + " -p " + e["PGPORT"] +
              " -U postgres -d " + db + " -c \"" + sql + "\"");
  }
  // An endpoint over TCP with a password.
  Json endpoint(const std::string& host, const std::string& db, const std::string& password) {
    return {{"host", "127.0.0.1"},  {"port", std::stoi(pg_[host]["PGPORT"])},
            {"database", db},       {"user", "mover"},
            {"password", password}, {"bin_dir", pg_[host]["PGBIN"]}};
  }
  Json copy(const std::string& to_password = kSecret) {
    return {{"engine", "postgres"},
            {"peer", peer()},
            {"from", endpoint("source", "shop", kSecret)},
            {"to", endpoint("target", "shop", to_password)},
            {"create", true}};
  }
  // Copies a 600,000-row table and SIGKILLs the process whose command line contains
  // pattern once 8 MB have moved (killed says whether it came to that); the job's events.
  std::vector<proto::Message> copy_killing(const std::string& job_id, const std::string& pattern,
                                           bool& killed) {
    psql("source", "postgres", "CREATE DATABASE shop");
    psql("source", "shop",
         "CREATE TABLE big AS SELECT n, repeat('x', 200) AS pad FROM generate_series(1, 600000) n");
    return run("target", {job_id, "db", copy().dump()}, [&](const proto::Message& m) {
      const auto* p = std::get_if<proto::Progress>(&m);
      if (killed || !p || p->bytes < (8u << 20)) return;
      killed = true;
      sh("pkill -KILL -f -- '" + pattern + "'");
    });
  }
  std::map<std::string, std::map<std::string, std::string>> pg_;
};

TEST_F(PgCopy, PgbenchDatabaseCopiedWithEqualRowCountsAndNoPasswordAnywhere) {
  psql("source", "postgres", "CREATE DATABASE shop");
  auto& e = pg_["source"];
  ASSERT_EQ(std::system((e["PGBIN"] + "/pgbench -q -i -s 10 -h " + e["PGHOST"] + " -p " +
                         e["PGPORT"] + " -U postgres shop >/dev/null 2>&1")
                            .c_str()),
            0);
  auto events = run("target", {"copy-1", "db", copy().dump()});
  const proto::JobFinished& done = finished(events);
  ASSERT_EQ(done.state, proto::JobState::kSucceeded) << done.error << "\n" << lines(events);
  EXPECT_EQ(psql("target", "shop", "SELECT count(*) FROM pgbench_accounts"), "1000000\n");
  const Json result = Json::parse(done.result);
  EXPECT_EQ(result["rows"]["public.pgbench_accounts"], 1000000);
  EXPECT_TRUE(result["mismatches"].empty());
  EXPECT_NE(lines(events).find("row counts equal in all 4 tables"), std::string::npos);
  EXPECT_NE(lines(events).find("the target's rows counted inside the restore"), std::string::npos)
      << lines(events);
  // pg_dump -v says what it reads and creates, object by object: the log keeps one line per
  // table and leaves the rest out.
  EXPECT_NE(lines(events).find("dumping contents of table \"public.pgbench_accounts\""),
            std::string::npos);
  EXPECT_EQ(lines(events).find("reading extensions"), std::string::npos) << lines(events);
  EXPECT_EQ(lines(events).find("creating TABLE"), std::string::npos) << lines(events);

  // Progress: bytes and tables never go backwards; the end says everything.
  uint64_t bytes = 0, tables = 0;
  int seen = 0;
  bool named = false;
  for (const auto& m : events)
    if (const auto* p = std::get_if<proto::Progress>(&m)) {
      ++seen;
      named = named || p->detail == "table public.pgbench_accounts";
      EXPECT_GE(p->bytes, bytes);
      EXPECT_GE(p->files, tables);
      bytes = p->bytes;
      tables = p->files;
      ASSERT_TRUE(p->total.has_value());
      EXPECT_GE(*p->total, p->bytes);
    }
  EXPECT_GE(seen, 2);
  EXPECT_TRUE(named) << "the table being copied shows in the progress";
  EXPECT_EQ(tables, 4u);
  EXPECT_GT(bytes, 50u << 20) << "a scale-10 dump streams tens of MB";

  // The password is in no event, no spool file, no log on either host.
  std::string everything;
  for (const auto& m : events)
    everything += std::visit(
        [](const auto& x) {
          std::string s;
          auto fields = x;
          fields.visit([&](const char*, auto& field) {
            if constexpr (std::is_same_v<std::decay_t<decltype(field)>, std::string>) s += field;
          });
          return s;
        },
        m);
  everything += all_files(lab_.host_dir("target") + "/home/.cache/cutpilot/jobs");
  everything += all_files(lab_.host_dir("source") + "/home/.cache/cutpilot/jobs");
  EXPECT_EQ(everything.find(kSecret), std::string::npos) << "the password leaked";
  // The spool was read (its event log names the job); the spec itself is never written there.
  const std::string spool = all_files(lab_.host_dir("target") + "/home/.cache/cutpilot/jobs");
  EXPECT_NE(spool.find("copy-1"), std::string::npos) << "the job's spool was not read";
  EXPECT_EQ(spool.find("\"password\""), std::string::npos) << "a spec with passwords was kept";
}

TEST_F(PgCopy, ParallelCopyThroughATunnelEndsWithNothingLeftBehind) {
  psql("source", "postgres", "CREATE DATABASE shop");
  auto& e = pg_["source"];
  ASSERT_EQ(std::system((e["PGBIN"] + "/pgbench -q -i -s 2 -h " + e["PGHOST"] + " -p " +
                         e["PGPORT"] + " -U postgres shop >/dev/null 2>&1")
                            .c_str()),
            0);
  Json spec = copy();
  spec["jobs"] = 2;
  // This lab's tunnel, found by its job's known_hosts path (other tests run beside this one).
  const std::string tunnel = "pgrep -f -- 'UserKnownHostsFile=" + lab_.host_dir("target") +
                             "/.*-N -o ExitOnForwardFailur[e]=yes'";
  std::string while_up;
  auto events = run("target", {"copy-j2", "db", spec.dump()}, [&](const proto::Message& m) {
    const auto* line = std::get_if<proto::LogLine>(&m);
    if (line && line->line.find("tunnel to the source's database") != std::string::npos)
      while_up = sh(tunnel);
  });
  const proto::JobFinished& done = finished(events);
  ASSERT_EQ(done.state, proto::JobState::kSucceeded) << done.error << "\n" << lines(events);
  EXPECT_EQ(psql("target", "shop", "SELECT count(*) FROM pgbench_accounts"), "200000\n");
  EXPECT_NE(lines(events).find("tunnel to the source's database"), std::string::npos);
  uint64_t tables = 0;
  for (const auto& m : events)
    if (const auto* p = std::get_if<proto::Progress>(&m)) {
      EXPECT_GE(p->files, tables);
      tables = p->files;
    }
  EXPECT_EQ(tables, 8u) << "4 tables dumped and 4 restored";
  // The staging dump is gone, and so is the tunnel.
  EXPECT_NE(while_up, "") << "the tunnel was not found while it was up: the check below is blind";
  EXPECT_EQ(sh("find " + lab_.host_dir("target") + "/home/.cache/cutpilot/jobs -name dump"), "");
  EXPECT_EQ(sh(tunnel), "");
}

TEST_F(PgCopy, ParallelCopyWithoutAPermittedTunnelFailsSayingWhy) {
  // A key authorised without permit_open may not forward: ssh's refusal is the error.
  auto made = run("target", transport::keygen_job("run-2", "target"));
  auto authorized = run("source", transport::authorize_job(
                                      "run-2", "source", transport::public_key_of(finished(made))));
  ASSERT_EQ(finished(authorized).state, proto::JobState::kSucceeded);
  psql("source", "postgres", "CREATE DATABASE shop");
  Json spec = copy();
  spec["jobs"] = 2;
  spec["peer"]["key"] = "run-2";
  auto events = run("target", {"copy-j2-refused", "db", spec.dump()});
  const proto::JobFinished& done = finished(events);
  EXPECT_EQ(done.state, proto::JobState::kFailed);
  EXPECT_NE(done.error.find("prohibited"), std::string::npos) << done.error;
}

TEST_F(PgCopy, SchemaOnlyAndExcludedTables) {
  psql("source", "postgres", "CREATE DATABASE shop");
  psql("source", "shop",
       "CREATE TABLE keep AS SELECT generate_series(1, 100) AS n; "
       "CREATE TABLE sessions AS SELECT generate_series(1, 100) AS n");
  Json spec = copy();
  spec["exclude_tables"] = {"sessions"};
  auto events = run("target", {"copy-exclude", "db", spec.dump()});
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error;
  EXPECT_EQ(psql("target", "shop", "SELECT count(*) FROM keep"), "100\n");
  EXPECT_EQ(psql("target", "shop", "SELECT count(*) FROM pg_tables WHERE tablename = 'sessions'"),
            "0\n");
  EXPECT_EQ(Json::parse(finished(events).result)["tables"], 1);
  // Schema only: the tables come, their rows do not.
  spec = copy();
  spec["schema_only"] = true;
  spec["drop"] = true;
  events = run("target", {"copy-schema", "db", spec.dump()});
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error;
  EXPECT_EQ(psql("target", "shop", "SELECT count(*) FROM sessions"), "0\n");
}

TEST_F(PgCopy, IntoAnExistingDatabaseTheSourceIsMeasuredWhileItStreams) {
  // No create or drop: the measurement runs beside the dump, and still decides which tables
  // are counted and what the progress' totals are.
  psql("source", "postgres", "CREATE DATABASE shop");
  psql("source", "shop",
       "CREATE TABLE keep AS SELECT n, repeat('x', 100) AS pad FROM generate_series(1, 20000) n; "
       "CREATE TABLE sessions AS SELECT generate_series(1, 100) AS n");
  psql("target", "postgres", "CREATE DATABASE shop");
  Json spec = copy();
  spec.erase("create");
  spec["exclude_tables"] = {"sessions"};
  auto events = run("target", {"copy-existing", "db", spec.dump()});
  const proto::JobFinished& done = finished(events);
  ASSERT_EQ(done.state, proto::JobState::kSucceeded) << done.error << "\n" << lines(events);
  const Json result = Json::parse(done.result);
  EXPECT_EQ(result["tables"], 1);
  EXPECT_EQ(result["rows"]["public.keep"], 20000);
  EXPECT_GT(result["size"].get<uint64_t>(), 2000000u);
  EXPECT_NE(lines(events).find("1 tables, "), std::string::npos) << lines(events);
  EXPECT_NE(lines(events).find("row counts equal in all 1 tables"), std::string::npos);
  uint64_t tables = 0;
  const proto::Progress* last = nullptr;
  for (const auto& m : events)
    if (const auto* p = std::get_if<proto::Progress>(&m)) {
      EXPECT_GE(p->files, tables);
      tables = p->files;
      last = p;
    }
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->files, 1u);
  EXPECT_EQ(last->files_total, std::optional<uint64_t>(1));
  ASSERT_TRUE(last->total.has_value());
  EXPECT_EQ(*last->total, std::max(result["size"].get<uint64_t>(), last->bytes));
}

TEST_F(PgCopy, DirectCopyReachesTheSourceServerWithoutSsh) {
  psql("source", "postgres", "CREATE DATABASE shop");
  psql("source", "shop", "CREATE TABLE t AS SELECT generate_series(1, 500) AS n");
  // Without the key ssh could not reach the source: only a direct copy can work.
  auto revoked = run("source", transport::revoke_job(kRun, "source"));
  ASSERT_EQ(finished(revoked).state, proto::JobState::kSucceeded);
  Json spec = copy();
  spec["direct"] = true;
  auto events = run("target", {"copy-direct", "db", spec.dump()});
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error << "\n"
                                                                 << lines(events);
  EXPECT_EQ(psql("target", "shop", "SELECT count(*) FROM t"), "500\n");
  spec["direct"] = false;
  spec["drop"] = true;
  events = run("target", {"copy-ssh-revoked", "db", spec.dump()});
  EXPECT_EQ(finished(events).state, proto::JobState::kFailed);
}

TEST_F(PgCopy, WrongTargetPasswordFailsClearly) {
  psql("source", "postgres", "CREATE DATABASE shop");
  psql("source", "shop", "CREATE TABLE t AS SELECT generate_series(1, 1000) AS n");
  auto events = run("target", {"copy-bad-pw", "db", copy("not-the-password").dump()});
  const proto::JobFinished& done = finished(events);
  EXPECT_EQ(done.state, proto::JobState::kFailed);
  EXPECT_NE(done.error.find("password authentication failed for user \"mover\""), std::string::npos)
      << done.error;
  EXPECT_NE(done.error.find("target"), std::string::npos) << done.error;
  EXPECT_EQ(lines(events).find("not-the-password"), std::string::npos);
}

TEST_F(PgCopy, KilledRestoreFailsAndLeavesNoHalfCopy) {
  bool killed = false;
  auto events = copy_killing("copy-killed",
                             "-o /dev/null -v ON_ERROR_STOP=1 --single-transaction -w -h "
                             "127.0.0.1 -p " +
                                 pg_["target"]["PGPORT"],
                             killed);
  ASSERT_TRUE(killed) << "the copy ended before the restore could be killed";
  const proto::JobFinished& done = finished(events);
  EXPECT_EQ(done.state, proto::JobState::kFailed);
  EXPECT_NE(done.error.find("the restore on the target failed"), std::string::npos) << done.error;
  EXPECT_NE(done.error.find("exit code 137"), std::string::npos) << done.error;
  // One transaction: nothing of the half-done restore stays.
  EXPECT_EQ(psql("target", "shop", "SELECT count(*) FROM pg_tables WHERE tablename = 'big'"),
            "0\n");
}

TEST_F(PgCopy, DumpKilledHalfWayStopsTheRestoreAndNothingIsCommitted) {
  // psql would commit whatever arrived before EOF: a cut dump must stop it instead.
  bool killed = false;
  auto events = copy_killing(
      "copy-dump-killed", "pg_dump -v -Fp -w -h 127.0.0.1 -p " + pg_["source"]["PGPORT"], killed);
  ASSERT_TRUE(killed) << "the copy ended before the dump could be killed";
  const proto::JobFinished& done = finished(events);
  EXPECT_EQ(done.state, proto::JobState::kFailed);
  EXPECT_NE(done.error.find("the dump on the source failed"), std::string::npos) << done.error;
  EXPECT_NE(lines(events).find("stopped: its input ended with a failure"), std::string::npos)
      << lines(events);
  EXPECT_EQ(psql("target", "shop", "SELECT count(*) FROM pg_tables WHERE tablename = 'big'"),
            "0\n");
}

TEST_F(PgCopy, ConnectionsCountsOtherClients) {
  psql("source", "postgres", "CREATE DATABASE shop");
  const auto& e = pg_["source"];
  // A client that stays connected for a while.
  std::thread client([&] {
    sh(e.at("PGBIN") + "/psql -X -h " + e.at("PGHOST") + " -p " + e.at("PGPORT") +
       " -U postgres -d shop -c 'SELECT pg_sleep(4)' >/dev/null 2>&1");
  });
  std::this_thread::sleep_for(1s);
  Json spec = {{"action", "connections"},
               {"engine", "postgres"},
               {"db", endpoint("source", "shop", kSecret)},
               {"max", 0}};
  auto events = run("source", {"conn-1", "db", spec.dump()});
  client.join();
  const proto::JobFinished& done = finished(events);
  EXPECT_EQ(done.state, proto::JobState::kFailed);
  EXPECT_NE(done.error.find("1 clients still connected to shop"), std::string::npos) << done.error;
  EXPECT_EQ(Json::parse(done.result)["count"], 1);
  // Nobody left: the check passes.
  events = run("source", {"conn-2", "db", spec.dump()});
  EXPECT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error;
}

TEST_F(PgCopy, RowCountsRunWithoutJit) {
  // The counts' preamble switches JIT off for the session (loading LLVM for the first count
  // cost 150 ms of 370) and prints nothing: its output would be read as count rows.
  const agent::DbEngine* pg = agent::find_db_engine("postgres");
  ASSERT_NE(pg, nullptr);
  const std::string file = lab_.dir() + "/preamble.sql";
  std::ofstream(file) << "SHOW jit;\n" << pg->count_preamble << "SHOW jit;\n";
  const auto& e = pg_["target"];
  EXPECT_EQ(sh(e.at("PGBIN") + "/psql -X -At -q -v ON_ERROR_STOP=1 -h " + e.at("PGHOST") + " -p " +
               e.at("PGPORT") + " -U postgres -d postgres -f " + file),
            "on\noff\n");
}

// Two lab hosts with MariaDB each, linked by a migration key.
class MariaCopy : public test::PeerLab {
 protected:
  MariaCopy() : test::PeerLab({"mariadb"}) {}
  void SetUp() override {
    test::PeerLab::SetUp();
    if (HasFatalFailure()) return;
    for (const char* host : {"source", "target"})
      my_[host] = env_file(lab_.host_dir(host) + "/mariadb.env");
    link_hosts();
  }
  std::string mysql(const std::string& host, const std::string& sql) {
    return sh("mysql --batch --skip-column-names -uroot --socket=" + my_[host]["MYSQL_UNIX_PORT"] +
              " -e \"" + sql + "\"");
  }
  std::map<std::string, std::map<std::string, std::string>> my_;
};

TEST_F(MariaCopy, SchemaWithDataCopiedWithEqualRowCounts) {
  mysql("source",
        "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY AUTO_INCREMENT, "
        "item VARCHAR(40)); CREATE TABLE shop.items (sku VARCHAR(20) PRIMARY KEY, price INT);"
        "INSERT INTO shop.items VALUES ('a', 1), ('b', 2), ('c', 3);"
        "SET SESSION max_recursive_iterations = 10000;"
        "INSERT INTO shop.orders (item) WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 "
        "FROM s WHERE n < 5000) SELECT CONCAT('item-', n) FROM s;");
  auto endpoint = [&](const std::string& host) {
    return Json{{"socket", my_[host]["MYSQL_UNIX_PORT"]}, {"database", "shop"}, {"user", "root"}};
  };
  Json spec = {{"engine", "mariadb"},
               {"peer", peer()},
               {"from", endpoint("source")},
               {"to", endpoint("target")},
               {"create", true}};
  auto events = run("target", {"my-copy", "db", spec.dump()});
  const proto::JobFinished& done = finished(events);
  ASSERT_EQ(done.state, proto::JobState::kSucceeded) << done.error << "\n" << lines(events);
  EXPECT_EQ(mysql("target", "SELECT COUNT(*) FROM shop.orders"), "5000\n");
  const Json result = Json::parse(done.result);
  EXPECT_EQ(result["rows"]["shop.items"], 3);
  EXPECT_EQ(result["rows"]["shop.orders"], 5000);
  EXPECT_NE(lines(events).find("row counts equal in all 2 tables"), std::string::npos);
  // mysqldump --verbose: the table lines stay in the log, its other "-- " chatter does not.
  EXPECT_NE(lines(events).find("-- Retrieving table structure for table"), std::string::npos)
      << lines(events);
  EXPECT_EQ(lines(events).find("-- Sending SELECT query"), std::string::npos) << lines(events);
}

}  // namespace
}  // namespace cutpilot::transport
