// MariaDB copies through real SSH between lab hosts: mysqldump streamed into the side
// database, its tables moved into place with one RENAME TABLE, kept and put back.
#include <gtest/gtest.h>
#include <signal.h>

#include "tests/transport/db_lab.h"

namespace cutpilot::transport {
namespace {

using namespace std::chrono_literals;
using namespace db_lab;
using Json = nlohmann::json;
namespace fs = std::filesystem;

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
  Json endpoint(const std::string& host) {
    return Json{{"socket", my_[host]["MYSQL_UNIX_PORT"]}, {"database", "shop"}, {"user", "root"}};
  }
  Json copy() {
    return {{"engine", "mariadb"},      {"peer", peer()}, {"from", endpoint("source")},
            {"to", endpoint("target")}, {"create", true}, {"run", kRun}};
  }
  // A target database shop with a table only it has (three rows): what must survive.
  void target_of_its_own() {
    mysql("target",
          "CREATE DATABASE shop; CREATE TABLE shop.only_here (n INT); "
          "INSERT INTO shop.only_here VALUES (1), (2), (3)");
  }
  // The target's shop* databases and their tables; only_here's rows where it is.
  std::string target_state() {
    return mysql("target",
                 "SELECT CONCAT(table_schema, ': ', GROUP_CONCAT(table_name ORDER BY table_name)) "
                 "FROM information_schema.tables WHERE table_schema LIKE 'shop%' GROUP BY "
                 "table_schema ORDER BY table_schema") +
           mysql("target",
                 "SELECT CONCAT('only_here=', COUNT(*)) FROM information_schema.tables t JOIN "
                 "shop.only_here WHERE t.table_schema = 'shop' AND t.table_name = 'only_here'");
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
  auto events = run("target", {"my-copy", "db", copy().dump()});
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

TEST_F(MariaCopy, TheTablesReplacedAreKeptAndPutBack) {
  target_of_its_own();
  mysql("source",
        "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY); "
        "INSERT INTO shop.orders VALUES (1), (2)");
  Json spec = copy();
  spec["drop"] = true;
  auto events = run("target", {"my-keeps", "db", spec.dump()});
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error << "\n"
                                                                 << lines(events);
  EXPECT_NE(lines(events).find("one RENAME TABLE"), std::string::npos) << lines(events);
  EXPECT_EQ(target_state(), "shop: orders\nshop_old_run_test: only_here\n");
  events = run(
      "target",
      {"my-put-back", "db",
       Json{
           {"engine", "mariadb"}, {"action", "put-back"}, {"to", endpoint("target")}, {"run", kRun}}
           .dump()});
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error;
  EXPECT_EQ(target_state(), "shop: only_here\nshop_undone_run_test: orders\nonly_here=3\n");
}

TEST_F(MariaCopy, WrongSourcePasswordLeavesTheTargetUnchanged) {
  target_of_its_own();
  mysql("source", std::string("CREATE DATABASE shop; CREATE USER mover@localhost IDENTIFIED BY '") +
                      kSecret + "'; GRANT ALL ON *.* TO mover@localhost");
  Json spec = copy();
  spec["drop"] = true;
  spec["from"]["user"] = "mover";
  spec["from"]["password"] = "a-typo-in-password-env";
  auto events = run("target", {"my-bad-pw", "db", spec.dump()});
  const proto::JobFinished& done = finished(events);
  EXPECT_EQ(done.state, proto::JobState::kFailed);
  EXPECT_NE(done.error.find("measuring the source database on the source"), std::string::npos)
      << done.error;
  EXPECT_NE(done.error.find("Access denied"), std::string::npos) << done.error;
  EXPECT_EQ(target_state(), "shop: only_here\nonly_here=3\n");
}

TEST_F(MariaCopy, KilledRestoreLeavesTheTargetUnchanged) {
  target_of_its_own();
  mysql("source",
        "CREATE DATABASE shop; USE shop; CREATE TABLE shop.big AS SELECT seq AS n, REPEAT('x', "
        "200) AS pad FROM seq_1_to_300000");
  bool killed = false;
  auto events = run("target", {"my-killed", "db", copy().dump()}, [&](const proto::Message& m) {
    const auto* p = std::get_if<proto::Progress>(&m);
    if (killed || !p || p->bytes < (8u << 20)) return;
    killed = true;
    sh("pkill -KILL -f -- 'mysql --batch --socket=" + my_["target"]["MYSQL_UNIX_PORT"] + "'");
  });
  ASSERT_TRUE(killed) << "the copy ended before the restore could be killed";
  EXPECT_EQ(finished(events).state, proto::JobState::kFailed);
  EXPECT_NE(finished(events).error.find("the restore on the target failed"), std::string::npos)
      << finished(events).error;
  EXPECT_EQ(target_state(), "shop: only_here\nonly_here=3\n");
}

TEST_F(MariaCopy, RowsWrittenDuringTheDumpDoNotMakeTheCountsDiffer) {
  mysql("source",
        "CREATE DATABASE shop; USE shop; CREATE TABLE shop.big AS SELECT seq AS n, REPEAT('x', "
        "200) AS pad FROM seq_1_to_300000; CREATE TABLE shop.delayed_jobs (id INT "
        "AUTO_INCREMENT PRIMARY KEY)");
  expect_counts_agree_while_writing(
      "mysql -uroot --socket=" + my_["source"]["MYSQL_UNIX_PORT"] +
          " -e 'INSERT INTO shop.delayed_jobs VALUES ()'",
      lab_.dir() + "/stop-writing",
      [&] { return std::stoull("0" + mysql("source", "SELECT COUNT(*) FROM shop.delayed_jobs")); },
      [&] {
        auto events = run("target", {"my-live", "db", copy().dump()});
        return std::pair(finished(events), lines(events));
      },
      "shop.delayed_jobs",
      [&] { return mysql("target", "SELECT COUNT(*) FROM shop.delayed_jobs"); });
}

}  // namespace
}  // namespace cutpilot::transport
