// The executor's change watches: a hot sync with track_changes starts a watch on the source
// and waits for it to arm before its first round; the copy of the same from/to seals the
// watch and moves the sealed list, or scans and says why when the set is incomplete, the
// watch never armed or was lost; the watch ends with the run; a resumed cockpit follows it,
// never starts it again.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/run/executor_harness.h"
#include "tests/run/executor_steps.h"

namespace cutpilot::plans::test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;
using Json = nlohmann::json;

constexpr const char* kWatch = "r1/track/presync/target";
constexpr const char* kSeal = "r1/final/target/1/seal";

// A tracked pre-sync from source and the final copy of the same from/to.
std::string tracked_plan(const std::string& final_extra = "") {
  return plan_head() +
         "[[steps]]\nid = \"presync\"\non = \"target\"\n"
         "sync = { from = \"source:/srv/app/\", to = \"/srv/app/\", track_changes = true }\n"
         "[[steps]]\nid = \"final\"\non = \"target\"\nneeds = [\"presync\"]\n"
         "sync = { from = \"source:/srv/app/\", to = \"/srv/app/\", delete = true" +
         final_extra + " }\n";
}

// The watch reports itself armed (its first progress).
void arm(Bench& b) {
  JobUpdate armed;
  armed.kind = JobUpdate::Kind::kProgress;
  b.exec->on_job(kWatch, armed, b.now);
  b.exec->tick(b.now);
}

// Makes the run's migration key and authorises it (before the first pull).
void link(Bench& b) {
  b.finish("r1/peer/target>source/keygen", "succeeded", R"({"public_key": "ssh-ed25519 AAAApub"})");
  b.finish("r1/peer/target>source/authorize");
}

// Runs the pre-sync's round and hands the seal's answer; the final copy's spec.
Json final_spec_after_seal(Bench& b, const std::string& answer) {
  link(b);
  arm(b);
  b.finish("r1/presync/target/1");
  b.finish(kSeal, "succeeded", answer);
  const auto* start = b.port.find("r1/final/target/1");
  return start ? Json::parse(start->job.spec) : Json::object();
}

// The spec of the job called id, parsed.
Json spec_of(const Bench& b, const std::string& id) {
  const auto* start = b.port.find(id);
  return start ? Json::parse(start->job.spec) : Json();
}

TEST(ExecutorTracking, TheWatchArmsBeforeTheFirstRoundAndTheCopyMovesTheSealedList) {
  Bench b(tracked_plan());
  b.begin();
  link(b);
  // The watch on the source; the round waits for it.
  ASSERT_NE(b.port.find(kWatch), nullptr);
  EXPECT_EQ(b.port.find(kWatch)->host, "source");
  EXPECT_EQ(b.port.find(kWatch)->job.kind, "track");
  EXPECT_EQ(spec_of(b, kWatch)["path"], "/srv/app/");
  EXPECT_EQ(b.port.count("r1/presync/target/1"), 0u);
  arm(b);
  ASSERT_EQ(b.port.count("r1/presync/target/1"), 1u);
  EXPECT_FALSE(spec_of(b, "r1/presync/target/1").contains("tracked"));
  b.finish("r1/presync/target/1", "succeeded", R"({"bytes": 10})");
  // The copy asks the watch (on the source) before it starts.
  ASSERT_NE(b.port.find(kSeal), nullptr);
  EXPECT_EQ(b.port.find(kSeal)->host, "source");
  EXPECT_EQ(spec_of(b, kSeal)["seal"], kWatch);
  EXPECT_EQ(b.port.count("r1/final/target/1"), 0u);
  b.finish(kSeal, "succeeded",
           R"({"complete": true, "paths": 12, "bytes": 300, "hard_linked": 0,
               "list": "/home/u/.cache/cutpilot/jobs/w/sealed-1.list"})");
  ASSERT_EQ(b.port.count("r1/final/target/1"), 1u);
  const Json spec = spec_of(b, "r1/final/target/1");
  EXPECT_EQ(spec["tracked"]["list"], "/home/u/.cache/cutpilot/jobs/w/sealed-1.list");
  EXPECT_EQ(spec["tracked"]["remote"], true);  // the list is on the source; the copy pulls
  EXPECT_EQ(spec["tracked"]["paths"], 12);
  EXPECT_FALSE(spec.contains("scan_reason"));
  // The run's end stops the watch, and waits for it.
  b.finish("r1/final/target/1");
  EXPECT_THAT(b.port.cancels, ElementsAre(kWatch));
  b.finish("r1/peer/target>source/revoke");
  b.finish("r1/peer/target>source/forget");
  EXPECT_TRUE(b.all_of<RunEvent>().empty());
  b.finish(kWatch, "cancelled");
  ASSERT_EQ(b.all_of<RunEvent>().size(), 1u);
  EXPECT_EQ(b.exec->exit_code(), 0);
  EXPECT_THAT(b.logs(), Not(HasSubstr("change tracking was lost")));
}

TEST(ExecutorTracking, AnIncompleteSetMakesTheCopyScanAndSayWhy) {
  Bench b(tracked_plan());
  b.begin();
  const Json spec = final_spec_after_seal(
      b, R"({"complete": false, "lost": "the kernel's event queue overflowed"})");
  EXPECT_FALSE(spec.contains("tracked"));
  EXPECT_THAT(spec.value("scan_reason", ""), HasSubstr("the kernel's event queue overflowed"));
  EXPECT_THAT(b.logs(), HasSubstr("scanning the whole tree"));
}

TEST(ExecutorTracking, HardLinksInTheSetMakeAHardLinkCopyScan) {
  Bench b(tracked_plan(", hard_links = true"));
  b.begin();
  const Json spec =
      final_spec_after_seal(b, R"({"complete": true, "paths": 3, "hard_linked": 1, "list": "/l"})");
  EXPECT_FALSE(spec.contains("tracked"));
  EXPECT_THAT(spec.value("scan_reason", ""), HasSubstr("1 of the changed files have other hard"));
}

TEST(ExecutorTracking, AWatchThatCannotArmLetsTheRoundsRunAndTheCopyScans) {
  Bench b(tracked_plan());
  b.begin();
  link(b);
  b.finish(kWatch, "failed");
  ASSERT_EQ(b.port.count("r1/presync/target/1"), 1u);
  EXPECT_THAT(b.logs(), HasSubstr("change tracking is off"));
  b.finish("r1/presync/target/1");
  EXPECT_EQ(b.port.find(kSeal), nullptr);  // nothing to ask
  const Json spec = spec_of(b, "r1/final/target/1");
  EXPECT_FALSE(spec.contains("tracked"));
  EXPECT_THAT(spec.value("scan_reason", ""), HasSubstr("the watch ended"));
}

TEST(ExecutorTracking, ACopyBeforeThePresyncSucceededScans) {
  // The final copy does not wait for the pre-sync (no needs): while the pre-sync runs, the
  // watch holds what changed since it began, not what the pre-sync has yet to copy.
  Bench b(plan_head() +
          "[[steps]]\nid = \"presync\"\non = \"target\"\n"
          "sync = { from = \"source:/srv/app/\", to = \"/srv/app/\", track_changes = true }\n" +
          exec_step("x", "source") +
          "[[steps]]\nid = \"early\"\non = \"target\"\nneeds = [\"x\"]\n"
          "sync = { from = \"source:/srv/app/\", to = \"/srv/app/\" }\n");
  b.begin();
  link(b);
  arm(b);
  ASSERT_EQ(b.port.count("r1/presync/target/1"), 1u);
  b.finish("r1/x/source/1");  // the pre-sync still runs
  ASSERT_EQ(b.port.count("r1/early/target/1"), 1u);
  EXPECT_EQ(b.port.find("r1/early/target/1/seal"), nullptr);
  const Json spec = spec_of(b, "r1/early/target/1");
  EXPECT_FALSE(spec.contains("tracked"));
  EXPECT_THAT(spec.value("scan_reason", ""), HasSubstr("presync, whose watch this is, has not"));
}

TEST(ExecutorTracking, AResumedCockpitFollowsTheWatchAndALostOneMakesTheCopyScan) {
  Bench b(tracked_plan());
  b.begin();
  link(b);
  arm(b);
  ASSERT_EQ(b.port.count("r1/presync/target/1"), 1u);
  b.crash();
  ASSERT_EQ(b.resume(tracked_plan()), "");
  // Followed, never started again (its set would miss what changed before).
  EXPECT_THAT(b.port.attaches,
              ::testing::Contains(std::pair<std::string, std::string>("source", kWatch)));
  EXPECT_EQ(b.port.count(kWatch), 0u);  // the new cockpit's port
  JobUpdate gone;
  gone.kind = JobUpdate::Kind::kUnknown;
  b.exec->on_job(kWatch, gone, b.now);
  b.exec->tick(b.now);
  EXPECT_THAT(b.logs(), HasSubstr("change tracking was lost"));
  b.finish("r1/presync/target/1");
  link(b);                                 // a new cockpit links the hosts again
  EXPECT_EQ(b.port.find(kSeal), nullptr);  // nothing left to ask
  const Json spec = spec_of(b, "r1/final/target/1");
  EXPECT_FALSE(spec.contains("tracked"));
  EXPECT_THAT(spec.value("scan_reason", ""), HasSubstr("source has no record of the watch"));
}

// A replicate step on target from source, and a step after it.
std::string replica_plan() {
  return plan_head() +
         "[[steps]]\nid = \"replicate-db\"\non = \"target\"\n"
         "db = { engine = \"postgres\", mode = \"replicate\", from = { host = \"source\", "
         "database = \"shop\" }, to = { database = \"shop\" } }\n"
         "[[steps]]\nid = \"after\"\non = \"target\"\nneeds = [\"replicate-db\"]\n"
         "exec = { run = [\"true\"] }\n";
}

constexpr const char* kReplica = "r1/replicate-db/target/1";

// The replicate job's progress with detail (its lag) and its estimate of the catch-up.
void lag(Bench& b, const std::string& detail, std::optional<double> estimate_s = std::nullopt) {
  JobUpdate update;
  update.kind = JobUpdate::Kind::kProgress;
  update.progress.bytes = 100;
  update.progress.item = detail;
  update.estimate_s = estimate_s;
  b.exec->on_job(kReplica, update, b.now);
  b.exec->tick(b.now);
}

TEST(ExecutorReplica, TheStepSucceedsOnceItStreamsAndItsJobIsFollowedUntilTheRunEnds) {
  Bench b(replica_plan());
  b.begin();
  link(b);
  ASSERT_EQ(b.port.count(kReplica), 1u);
  EXPECT_EQ(spec_of(b, kReplica)["action"], "replicate");
  lag(b, "first copy: 1 of 4 tables ready");
  EXPECT_EQ(b.state("replicate-db"), "running");
  lag(b, "streaming: caught up", 2.75);
  EXPECT_EQ(b.state("replicate-db"), "succeeded");
  // Its estimate of the catch-up is in the step's result (the catch-up's prediction reads it).
  EXPECT_THAT(read_text(b.dir.path() + "/" + kJournalFile), HasSubstr("catch_up_s"));
  EXPECT_THAT(read_text(b.dir.path() + "/" + kJournalFile), HasSubstr("2.75"));
  EXPECT_THAT(b.port.acks, Not(::testing::Contains(std::string(kReplica))))
      << "the job goes on: its spool stays";
  ASSERT_EQ(b.port.count("r1/after/target/1"), 1u);
  // Its lag goes on showing under the step.
  lag(b, "streaming: 1.2 MiB behind (0.4 s)");
  const auto shown = b.all_of<ProgressEvent>();
  ASSERT_FALSE(shown.empty());
  EXPECT_EQ(shown.back().step, "replicate-db");
  EXPECT_EQ(shown.back().item, "streaming: 1.2 MiB behind (0.4 s)");
  // The run's end cancels it (which removes the replication) and waits for it.
  b.finish("r1/after/target/1");
  EXPECT_THAT(b.port.cancels, ElementsAre(kReplica));
  // Its cancel removes the replication on the source through the migration key: the key is
  // revoked only once it has ended.
  EXPECT_EQ(b.port.count("r1/peer/target>source/revoke"), 0u);
  b.finish(kReplica, "cancelled");
  ASSERT_EQ(b.port.count("r1/peer/target>source/revoke"), 1u);
  EXPECT_FALSE(b.exec->ended());
  b.finish("r1/peer/target>source/revoke");
  b.finish("r1/peer/target>source/forget");
  EXPECT_TRUE(b.exec->ended());
  EXPECT_EQ(b.exec->exit_code(), 0);
  EXPECT_THAT(b.logs(), Not(HasSubstr("the replication stopped")))
      << "a cancel the run asked for is not news";
}

// Begins the run and has its replicate job stream; false when its step did not succeed.
bool streaming(Bench& b) {
  b.begin();
  link(b);
  lag(b, "streaming: caught up");
  return b.state("replicate-db") == "succeeded";
}

TEST(ExecutorReplica, AResumedCockpitFollowsTheSameJobAndAStoppedOneIsSaid) {
  Bench b(replica_plan());
  ASSERT_TRUE(streaming(b));
  b.crash();
  ASSERT_EQ(b.resume(replica_plan()), "");
  EXPECT_THAT(b.port.attaches,
              ::testing::Contains(std::pair<std::string, std::string>("target", kReplica)));
  EXPECT_EQ(b.port.count(kReplica), 0u) << "never started again";
  lag(b, "streaming: 3 KiB behind (0.1 s)");
  ASSERT_FALSE(b.all_of<ProgressEvent>().empty());
  EXPECT_EQ(b.all_of<ProgressEvent>().back().step, "replicate-db");
  b.finish(kReplica, "failed");
  EXPECT_THAT(b.logs(), HasSubstr("the replication stopped"));
  EXPECT_THAT(b.logs(), HasSubstr("its catch-up fails"));
}

TEST(ExecutorReplica, ACockpitThatDiedBeforeTheStepsSuccessSucceedsItWhenTheJobStreams) {
  Bench b(replica_plan());
  ASSERT_TRUE(streaming(b));
  // The follow record made it to the journal, the step's end (and all after it) did not.
  b.crash();
  const std::string journal = read_text(b.dir.path() + "/" + kJournalFile);
  const size_t follow = journal.find("\"replica\":true");
  ASSERT_NE(follow, std::string::npos);
  const size_t after = static_cast<size_t>(
      std::count(journal.begin() + static_cast<std::ptrdiff_t>(follow), journal.end(), '\n'));
  ASSERT_GE(after, 2u);
  b.drop_journal_lines(after - 1);
  ASSERT_EQ(read_text(b.dir.path() + "/" + kJournalFile).find("\"r\":\"done\""), std::string::npos)
      << "the step's end is still in the journal: the test proves nothing";
  ASSERT_EQ(b.resume(replica_plan()), "");
  lag(b, "streaming: caught up");
  EXPECT_EQ(b.state("replicate-db"), "succeeded");
  EXPECT_EQ(b.port.count(kReplica), 0u) << "never started again";
}

}  // namespace
}  // namespace cutpilot::plans::test
