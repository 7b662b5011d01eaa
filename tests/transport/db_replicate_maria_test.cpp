// MariaDB GTID replication through real SSH between lab hosts (the source started with a ROW
// binary log and a server_id of its own): the replicate job's dump, named connection and lag
// while a shell loop writes; the catch-up's wait, counts and swap; what a cancel, a killed job
// with its detach, and a refused preflight leave behind (no connection, no replication user,
// no side database).
#include <gtest/gtest.h>
#include <sys/xattr.h>

#include "tests/transport/db_lab.h"

namespace cutpilot::transport {
namespace {

using namespace db_lab;

// The run's names (agents/db_replicate_maria.h, agents/db_swap.h) for target shop.
constexpr char kConnection[] = "cutpilot_shop_run_test";
constexpr char kSide[] = "shop_new_run_test";

class MariaReplicate : public test::PeerLab {
 protected:
  void SetUp() override {
    test::PeerLab::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(lab_.run("mariadb", {"--binlog", "source"})) << lab_.log_tail();
    ASSERT_TRUE(lab_.run("mariadb", {"target"})) << lab_.log_tail();
    for (const char* host : {"source", "target"}) {
      my_[host] = env_file(lab_.host_dir(host) + "/mariadb.env");
      mysql(host, std::string("CREATE USER mover@'127.0.0.1' IDENTIFIED BY '") + kSecret +
                      "'; GRANT ALL ON *.* TO mover@'127.0.0.1' WITH GRANT OPTION");
    }
    link_hosts();
    mysql("source",
          "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, "
          "note VARCHAR(40)); CREATE TABLE shop.items (sku VARCHAR(20) PRIMARY KEY, price INT); "
          "USE shop; INSERT INTO shop.items VALUES ('a', 1), ('b', 2); INSERT INTO shop.orders "
          "(note) "
          "SELECT 'before' FROM seq_1_to_50; CREATE DATABASE other; CREATE TABLE other.noise "
          "(id INT AUTO_INCREMENT PRIMARY KEY)");
  }
  std::string client(const std::string& host) {
    return "mysql --batch --skip-column-names -uroot --socket=" + my_[host]["MYSQL_UNIX_PORT"];
  }
  std::string mysql(const std::string& host, const std::string& sql) {
    return sh(client(host) + " -e \"" + sql + "\"");
  }
  uint64_t count(const std::string& host, const std::string& table) {
    return std::stoull("0" + mysql(host, "SELECT COUNT(*) FROM " + table));
  }
  Json endpoint(const std::string& host, const std::string& db) {
    return {{"host", "127.0.0.1"},
            {"port", std::stoi(my_[host]["MYSQL_TCP_PORT"])},
            {"database", db},
            {"user", "mover"},
            {"password", kSecret}};
  }
  Json spec(const std::string& action) {
    return {{"engine", "mariadb"},
            {"action", action},
            {"peer", peer()},
            {"from", endpoint("source", "shop")},
            {"to", endpoint("target", "shop")},
            {"create", true},
            {"run", kRun},
            {"publisher_host", "127.0.0.1"}};
  }
  // check, asked at most every 200 ms (each asking runs a client).
  static std::function<bool()> throttled(std::function<bool()> check) {
    auto last = std::make_shared<std::chrono::steady_clock::time_point>();
    return [check, last] {
      const auto now = std::chrono::steady_clock::now();
      if (now - *last < 200ms) return false;
      *last = now;
      return check();
    };
  }
  // Starts the replicate job and runs until it streams.
  void replicating(const std::string& id) {
    tracker_.start("target", {id, "db", spec("replicate").dump()});
    ASSERT_TRUE(pump([&] { return detail(id).starts_with("streaming: ") || tracker_.done(id); }))
        << lines(events_[id]);
    ASSERT_TRUE(detail(id).starts_with("streaming: ")) << finished(events_[id]).error << "\n"
                                                       << lines(events_[id]);
  }
  // What of a replication remains: connections on the target, cutpilot users on the source
  // ("0 0" when none).
  std::string leftovers() {
    const std::string slaves = mysql("target", "SHOW ALL SLAVES STATUS");
    return std::to_string(std::count(slaves.begin(), slaves.end(), '\n')) + " " +
           std::to_string(count("source", "mysql.user WHERE user LIKE 'cutpilot%'"));
  }
  // The target's databases named like pattern.
  uint64_t databases(const std::string& pattern) {
    return count("target", "information_schema.schemata WHERE schema_name LIKE '" + pattern + "'");
  }
  // A target session holds a WRITE lock on the side database's table (the replica falls
  // behind) until the file release exists; false (and let go) when no lock came in 30 s.
  bool lock_side(const std::string& table, const std::string& release, std::thread& holder) {
    const std::string locked = release + ".locked";
    holder = std::thread([this, table, release, locked] {
      sh("(echo \"LOCK TABLES " + std::string(kSide) + "." + table +
         " WRITE; SELECT 'locked';\"; while [ ! -e " + release + " ]; do sleep 0.05; done) | " +
         client("target") + " --unbuffered > " + locked);
    });
    const auto until = std::chrono::steady_clock::now() + 30s;
    bool holds = false;
    while (!(holds = sh("cat " + locked + " 2>/dev/null") == "locked\n") &&
           std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(20ms);  // polling the file, not waiting for an event
    if (!holds) {
      std::ofstream(release) << "";
      holder.join();
    }
    return holds;
  }
  std::map<std::string, std::map<std::string, std::string>> my_;
};

TEST_F(MariaReplicate, WritesDuringReplicationArriveAndTheCatchUpPutsAWholeCopyInPlace) {
  replicating("rep-1");
  EXPECT_EQ(leftovers(), "1 1");
  // Its estimate of the catch-up: a count of the copy it timed, and the fixed second.
  ASSERT_TRUE(estimate_ms("rep-1"));
  EXPECT_GE(*estimate_ms("rep-1"), 1000u);
  EXPECT_NE(lines(events_["rep-1"]).find("counting the rows of the source and the copy took"),
            std::string::npos);
  EXPECT_NE(detail("rep-1").find("applied 0-" + my_["source"]["MYSQL_TCP_PORT"] + "-"),
            std::string::npos)
      << detail("rep-1");
  // The replication user's password, as the target's server keeps it (master info file).
  const std::string password =
      sh("sed -n 6p " + my_["target"]["MARIADB_DATADIR"] + "/master-" + kConnection + ".info");
  ASSERT_EQ(password.size(), 33u) << password;
  // The service goes on writing while the replica streams: a table with AUTO_INCREMENT, and a
  // database the replication must leave alone.
  const std::string stop = lab_.dir() + "/stop-writing";
  std::thread app([&] {
    sh("while [ ! -e " + stop + " ]; do " + client("source") +
       " -e 'INSERT INTO shop.orders (note) VALUES (\"during\"); INSERT INTO other.noise VALUES "
       "()'; done");
  });
  const bool arrived =
      pump(throttled([&] { return count("target", std::string(kSide) + ".orders") >= 80; }));
  std::ofstream(stop) << "";
  app.join();
  ASSERT_TRUE(arrived) << "rows written during the replication did not arrive\n"
                       << lines(events_["rep-1"]);
  // The writers stopped: the replica catches up with them.
  ASSERT_TRUE(pump([&] { return detail("rep-1").starts_with("streaming: caught up (source at "); }))
      << detail("rep-1");
  // The replica falls behind: a session on the target holds the side table's lock while the
  // last rows are written, until the catch-up says it waits for them.
  const std::string release = lab_.dir() + "/release";
  std::thread holder;
  ASSERT_TRUE(lock_side("orders", release, holder)) << "the target's side table was not locked";
  mysql("source", "INSERT INTO shop.orders (note) SELECT 'last' FROM shop.seq_1_to_10");
  // The catch-up waits, then goes on once the lock is let go.
  tracker_.start("target", {"catch-1", "db", spec("catch-up").dump()});
  const bool waited = pump(
      [&] { return detail("catch-1").starts_with("catching up to ") || tracker_.done("catch-1"); });
  std::ofstream(release) << "";
  holder.join();
  ASSERT_TRUE(waited);
  EXPECT_NE(detail("catch-1").find(": 1 transaction behind"), std::string::npos)
      << detail("catch-1");
  ASSERT_TRUE(pump([&] { return tracker_.done("catch-1") && tracker_.done("rep-1"); }));
  const proto::JobFinished& done = finished(events_["catch-1"]);
  ASSERT_EQ(done.state, proto::JobState::kSucceeded) << done.error << "\n"
                                                     << lines(events_["catch-1"]);
  const uint64_t orders = count("source", "shop.orders");
  const Json result = Json::parse(done.result);
  EXPECT_TRUE(result["mismatches"].empty()) << result.dump();
  EXPECT_EQ(result["rows"]["shop.orders"], orders);
  EXPECT_EQ(result["rows"]["shop.items"], 2);
  EXPECT_EQ(result["tables"], 2);
  EXPECT_EQ(result["database"], "shop");
  EXPECT_TRUE(result["kept"].is_null());
  EXPECT_TRUE(
      result["gtid"].get<std::string>().starts_with("0-" + my_["source"]["MYSQL_TCP_PORT"] + "-"))
      << result.dump();
  EXPECT_GT(orders, 80u);
  EXPECT_EQ(count("target", "shop.orders"), orders);
  EXPECT_EQ(count("target", "shop.items"), 2u);
  // An insert on the target after the catch-up gets an id after the source's last.
  const uint64_t last = std::stoull(mysql("source", "SELECT MAX(id) FROM shop.orders"));
  EXPECT_EQ(
      mysql("target", "INSERT INTO shop.orders (note) VALUES ('after'); SELECT LAST_INSERT_ID()"),
      std::to_string(last + 1) + "\n");
  // Nothing of the replication is left; only shop was applied.
  EXPECT_EQ(leftovers(), "0 0");
  EXPECT_EQ(databases("shop%"), 1u);
  EXPECT_EQ(databases("other"), 0u);
  // The replicate job saw its connection go and ended by itself.
  EXPECT_EQ(finished(events_["rep-1"]).state, proto::JobState::kSucceeded)
      << finished(events_["rep-1"]).error;
  // No password in any event or in the jobs' spools.
  const std::string spools = lab_.host_dir("target") + "/home/.cache/cutpilot/jobs/";
  for (const auto& [id, events] : events_) {
    std::string all = lines(events) + finished(events).error + finished(events).result;
    for (const auto& m : events)
      if (const auto* p = std::get_if<proto::Progress>(&m)) all += p->detail + "\n";
    all += all_files(spools + id);
    EXPECT_EQ(all.find(kSecret), std::string::npos) << id;
    EXPECT_EQ(all.find(password.substr(0, 32)), std::string::npos) << id;
  }
}

TEST_F(MariaReplicate, ASwapRefusedAtTheLastMomentLeavesTheReplicationGoingForARetry) {
  replicating("rep-8");
  const std::string release = lab_.dir() + "/release";
  std::thread holder;
  ASSERT_TRUE(lock_side("orders", release, holder)) << "the target's side table was not locked";
  mysql("source", "INSERT INTO shop.orders (note) VALUES ('held')");
  tracker_.start("target", {"catch-8", "db", spec("catch-up").dump()});
  const bool waited = pump(
      [&] { return detail("catch-8").starts_with("catching up to ") || tracker_.done("catch-8"); });
  // Meanwhile a database of the target's name appears; then the replica catches up.
  mysql("target", "CREATE DATABASE shop");
  std::ofstream(release) << "";
  holder.join();
  ASSERT_TRUE(waited);
  ASSERT_TRUE(pump([&] { return tracker_.done("catch-8"); }));
  const proto::JobFinished& refused = finished(events_["catch-8"]);
  EXPECT_EQ(refused.state, proto::JobState::kFailed);
  EXPECT_NE(refused.error.find("appeared"), std::string::npos) << refused.error;
  EXPECT_NE(refused.error.find("the replication goes on"), std::string::npos) << refused.error;
  EXPECT_EQ(count("target", std::string(kSide) + ".orders"), 51u);
  // It still streams: a row written now arrives in the side database.
  mysql("source", "INSERT INTO shop.orders (note) VALUES ('after the refusal')");
  ASSERT_TRUE(
      pump(throttled([&] { return count("target", std::string(kSide) + ".orders") == 52; })));
  EXPECT_FALSE(tracker_.done("rep-8")) << "the replicate job stopped";
  EXPECT_EQ(count("target", "information_schema.tables WHERE table_schema = 'shop'"), 0u);
  // The operator removes the interloper and retries. (The connection stopped, as an agent that
  // died inside the swap would leave it: the retry starts it.)
  mysql("target", "DROP DATABASE shop; STOP SLAVE '" + std::string(kConnection) + "'");
  mysql("source", "INSERT INTO shop.orders (note) VALUES ('while stopped')");
  tracker_.start("target", {"catch-9", "db", spec("catch-up").dump()});
  ASSERT_TRUE(pump([&] { return tracker_.done("catch-9") && tracker_.done("rep-8"); }));
  const proto::JobFinished& done = finished(events_["catch-9"]);
  ASSERT_EQ(done.state, proto::JobState::kSucceeded) << done.error << "\n"
                                                     << lines(events_["catch-9"]);
  EXPECT_NE(lines(events_["catch-9"]).find("started again"), std::string::npos)
      << lines(events_["catch-9"]);
  EXPECT_EQ(count("target", "shop.orders"), 53u);
  EXPECT_EQ(leftovers(), "0 0");
}

TEST_F(MariaReplicate, CancelledMidReplicationLeavesNoConnectionUserOrSideDatabase) {
  replicating("rep-2");
  ASSERT_TRUE(tracker_.cancel("rep-2"));
  ASSERT_TRUE(pump([&] { return tracker_.done("rep-2"); }));
  EXPECT_EQ(finished(events_["rep-2"]).state, proto::JobState::kCancelled)
      << finished(events_["rep-2"]).error;
  EXPECT_EQ(leftovers(), "0 0");
  EXPECT_EQ(databases("shop%"), 0u);
}

TEST_F(MariaReplicate, AKilledReplicateJobsLeftoversGoWithADetach) {
  replicating("rep-3");
  // The job's runner dies (as on a host's restart); its clients end with it.
  ASSERT_TRUE(kill_runner("target", "rep-3"));
  EXPECT_EQ(leftovers(), "1 1") << "the connection and the user outlive the killed job";
  EXPECT_EQ(databases(kSide), 1u);
  tracker_.start("target", {"detach-3", "db", spec("detach").dump()});
  ASSERT_TRUE(pump([&] { return tracker_.done("detach-3"); }));
  const proto::JobFinished& done = finished(events_["detach-3"]);
  EXPECT_EQ(done.state, proto::JobState::kSucceeded) << done.error;
  EXPECT_EQ(Json::parse(done.result)["removed"].size(), 2u) << done.result;
  EXPECT_EQ(leftovers(), "0 0");
  EXPECT_EQ(databases("shop%"), 0u);
}

TEST_F(MariaReplicate, ASchemaChangeTheReplicationLeftOutFailsTheCatchUpNamingTheTable) {
  replicating("rep-5");
  // In the source database the change is replicated into the side database; naming the
  // database from outside, it is not (the filters keep it off every database but the side one).
  mysql("source", "USE shop; ALTER TABLE orders ADD COLUMN paid INT");
  mysql("source", "ALTER TABLE shop.items ADD COLUMN stock INT");
  tracker_.start("target", {"catch-5", "db", spec("catch-up").dump()});
  ASSERT_TRUE(pump([&] { return tracker_.done("catch-5"); }));
  const proto::JobFinished& done = finished(events_["catch-5"]);
  EXPECT_EQ(done.state, proto::JobState::kFailed);
  EXPECT_NE(done.error.find("schema differs"), std::string::npos) << done.error;
  EXPECT_NE(done.error.find("shop.items (columns on the source: sku varchar(20), price int(11), "
                            "stock int(11); on the target: sku varchar(20), price int(11))"),
            std::string::npos)
      << done.error;
  EXPECT_EQ(done.error.find("shop.orders"), std::string::npos) << done.error;
  EXPECT_NE(done.error.find("the replication goes on"), std::string::npos) << done.error;
  EXPECT_EQ(databases("shop"), 0u);
  EXPECT_EQ(leftovers(), "1 1");
  tracker_.cancel("rep-5");
  ASSERT_TRUE(pump([&] { return tracker_.done("rep-5"); }));
  EXPECT_EQ(leftovers(), "0 0");
  EXPECT_EQ(databases("shop%"), 0u);
}

TEST_F(MariaReplicate, PreflightNamesEveryProblemAndChangesNothing) {
  // The target's server as the source: no binary log, binlog_format MIXED, the target's own
  // server_id, a MyISAM table, a user that may not create users.
  mysql("target",
        "CREATE DATABASE app; CREATE TABLE app.notes (body TEXT) ENGINE = MyISAM; CREATE USER "
        "plain@'127.0.0.1' IDENTIFIED BY 'x'; GRANT SELECT ON app.* TO plain@'127.0.0.1'");
  Json s = spec("replicate");
  s.erase("peer");
  s["from"] = endpoint("target", "app");
  s["from"]["user"] = "plain";
  s["from"]["password"] = "x";
  s["to"] = endpoint("target", "app");
  tracker_.start("target", {"pre-4", "db", s.dump()});
  ASSERT_TRUE(pump([&] { return tracker_.done("pre-4"); }));
  const std::string error = finished(events_["pre-4"]).error;
  for (const char* said :
       {"the source database app cannot be replicated", "log_bin is off on the source",
        "binlog_format is MIXED on the source", "server_id is 1 on both the source and the target",
        "plain@127.0.0.1 on the source may not create", "CREATE USER",
        "REPLICATION SLAVE WITH GRANT OPTION", "app.notes (MyISAM)", "; nothing was changed"})
    EXPECT_NE(error.find(said), std::string::npos) << said << " in: " << error;
  EXPECT_TRUE(error.ends_with("; nothing was changed")) << error;
  EXPECT_EQ(databases("app%"), 1u);
  EXPECT_EQ(mysql("target", "SHOW ALL SLAVES STATUS"), "");
  EXPECT_EQ(count("target", "mysql.user WHERE user LIKE 'cutpilot%'"), 0u);
}

TEST_F(MariaReplicate, AMistypedSourcePasswordFailsSayingSoAndTouchesNothing) {
  mysql("target",
        "CREATE DATABASE shop; CREATE TABLE shop.keep (id INT); INSERT INTO shop.keep "
        "VALUES (7)");
  Json s = spec("replicate");
  s["from"]["password"] = "typo";
  const auto events = run("target", {"typo-1", "db", s.dump()});
  const proto::JobFinished& done = finished(events);
  EXPECT_EQ(done.state, proto::JobState::kFailed);
  EXPECT_NE(done.error.find("Access denied"), std::string::npos) << done.error;
  EXPECT_TRUE(done.error.ends_with("; nothing was changed")) << done.error;
  EXPECT_EQ(mysql("target", "SELECT id FROM shop.keep"), "7\n");
  EXPECT_EQ(databases("shop%"), 1u);
  EXPECT_EQ(leftovers(), "0 0");
  EXPECT_EQ(lines(events).find("typo"), std::string::npos) << "the password shown";
}

}  // namespace
}  // namespace cutpilot::transport
