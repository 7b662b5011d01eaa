// What the executor says while a run goes: units, sizes, exit codes, stderr that is not trouble.
#include "tests/run/executor_harness.h"
#include "tests/run/executor_steps.h"

namespace cutpilot::plans::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Feeds one update of the given kind for job id, and ticks.
void feed(Bench& b, const std::string& id, JobUpdate update) {
  b.exec->on_job(id, update, b.now);
  b.exec->tick(b.now);
}

JobUpdate progress(uint64_t files, uint64_t total) {
  JobUpdate u;
  u.kind = JobUpdate::Kind::kProgress;
  u.progress.bytes = 1000;
  u.progress.files = files;
  u.progress.files_total = total;
  return u;
}

TEST(ExecutorWords, ADbCopyCountsTablesAndASyncCountsEntries) {
  Bench b(plan_head() +
          "[[steps]]\nid = \"copy\"\non = \"target\"\n"
          "db = { engine = \"postgres\", from = { host = \"source\", database = \"s\" }, "
          "to = { database = \"s\" } }\n"
          "[[steps]]\nid = \"files\"\non = \"target\"\n"
          "sync = { from = \"source:/a/\", to = \"/a/\" }\n"
          "[[steps]]\nid = \"buckets\"\non = \"target\"\n"
          "sync = { from = \"source:/b/\", to = \"/b/\", parallel = 4 }\n");
  b.begin();
  // Host to host: the migration key first.
  b.finish("r1/peer/target>source/keygen", "succeeded", R"({"public_key": "ssh-ed25519 AAAApub"})");
  b.finish("r1/peer/target>source/authorize");
  for (const char* id : {"r1/copy/target/1", "r1/files/target/1", "r1/buckets/target/1"})
    ASSERT_NE(b.port.find(id), nullptr) << id << " did not start";
  feed(b, "r1/copy/target/1", progress(2, 4));
  feed(b, "r1/files/target/1", progress(10, 30));
  feed(b, "r1/buckets/target/1", progress(10, 20));
  const auto shown = b.all_of<ProgressEvent>();
  ASSERT_EQ(shown.size(), 3u);
  EXPECT_EQ(shown[0].unit, "tables");
  EXPECT_EQ(shown[1].unit, "entries") << "one rsync's file list counts directories too";
  EXPECT_EQ(shown[2].unit, "entries") << "parallel chunks hold directories too";
}

TEST(ExecutorWords, TheExitCodeIsNamedOnceAndNeverAsMinusOne) {
  Bench b(plan_head() + exec_step("a", "source") + exec_step("c", "target"));
  b.begin();
  JobUpdate failed;
  failed.kind = JobUpdate::Kind::kFinished;
  failed.state = "failed";
  failed.exit_code = 2;
  failed.error = "command failed with exit code 2";
  feed(b, "r1/a/source/1", failed);
  JobUpdate cancelled;
  cancelled.kind = JobUpdate::Kind::kFinished;
  cancelled.state = "timed-out";
  cancelled.exit_code = -1;
  cancelled.error = "timed out after 5000 ms";
  feed(b, "r1/c/target/1", cancelled);
  const std::string logs = b.logs();
  EXPECT_THAT(logs, HasSubstr("failed: command failed with exit code 2\n"));
  EXPECT_THAT(logs, Not(HasSubstr("(exit code 2)")));
  EXPECT_THAT(logs, HasSubstr("timed-out: timed out after 5000 ms\n"));
  EXPECT_THAT(logs, Not(HasSubstr("exit code -1")));
}

TEST(ExecutorWords, APreSyncRoundSaysItsSizesInUnits) {
  Bench b(plan_head() + "[[steps]]\nid = \"presync\"\non = \"target\"\n" +
          "sync = { from = \"/a/\", to = \"/b/\", until_below = \"1MiB\" }\n");
  b.begin();
  b.finish("r1/presync/target/1", "succeeded", R"({"bytes": 19660800})");
  EXPECT_THAT(b.logs(), HasSubstr("round 1 moved 18.8 MiB (not below 1 MiB): another round"));
  const auto lines = b.all_of<LogEvent>();
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back().step, "presync");
  EXPECT_GT(lines.back().at, 0) << "a log line carries when it was said";
}

TEST(ExecutorWords, StderrThatIsInformationIsMarkedSo) {
  Bench b(plan_head() + exec_step("a", "source"));
  b.begin();
  for (const char* line : {"pg_dump: dumping contents of table \"public.orders\"",
                           "pg_dump: error: connection to server failed"}) {
    JobUpdate u;
    u.kind = JobUpdate::Kind::kLog;
    u.stream = "stderr";
    u.line = line;
    feed(b, "r1/a/source/1", u);
  }
  const auto lines = b.all_of<LogEvent>();
  ASSERT_GE(lines.size(), 2u);
  EXPECT_TRUE(lines[lines.size() - 2].notice);
  EXPECT_FALSE(lines.back().notice);
  EXPECT_EQ(lines.back().stream, "stderr") << "the --json stream stays what the schema says";
}

TEST(StderrIsNotice, KnowsProgressFromTrouble) {
  for (const char* line :
       {"pg_dump: last built-in OID is 16383", "pg_restore: creating TABLE \"public.orders\"",
        "pg_restore: processing data for table \"public.orders\"",
        "-- Retrieving table structure for table orders...",
        "nginx: [notice] signal process started",
        "nginx: the configuration file /etc/nginx/nginx.conf syntax is ok",
        "nginx: configuration file /etc/nginx/nginx.conf test is successful",
        "[source] -- Retrieving table structure for table orders...",
        "[target] NOTICE:  created replication slot \"cutpilot_shop_run\" on publisher"})
    EXPECT_TRUE(stderr_is_notice(line)) << line;
  for (const char* line :
       {"pg_dump: error: query failed", "pg_dump: warning: could not find",
        "pg_restore: while PROCESSING TOC:", "pg_restore: from TOC entry 3; 1259 16385 TABLE",
        "pg_dump: detail: Query was: SELECT", "nginx: [emerg] unknown directive \"servr\"",
        "nginx: [warn] conflicting server name", "rsync: connection unexpectedly closed",
        "ERROR 1045 (28000): Access denied", "[target] ERROR:  relation \"x\" does not exist",
        "NOTICE: not from a db job's side"})
    EXPECT_FALSE(stderr_is_notice(line)) << line;
}

}  // namespace
}  // namespace cutpilot::plans::test
