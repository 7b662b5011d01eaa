// The journal and resume: replaying a run, re-attaching to running jobs under their ids,
// keeping approvals, refusing a plan that changed where it already ran, torn lines.
#include <gtest/gtest.h>

#include <fstream>

#include "run/executor.h"
#include "run/journal.h"
#include "tests/run/executor_harness.h"
#include "tests/run/executor_steps.h"

namespace cutpilot::plans::test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// a, then b (left running); g1 after b and g2 after a are gated.
std::string resume_plan(const std::string& g2_command = "do-g2") {
  return plan_head() + exec_step("a", "source") + exec_step("b", "target", needs("\"a\"")) +
         exec_step("g1", "target", needs("\"b\"") + "gate = \"approve\"\n") +
         "[[steps]]\nid = \"g2\"\non = \"source\"\nneeds = [\"a\"]\ngate = \"approve\"\n" +
         "exec = { run = [\"" + g2_command + "\"] }\n";
}

// Runs resume_plan() until a succeeded, b runs, g1 is approved and g2 awaits approval.
void run_until_b_runs(Bench& b) {
  b.begin();
  b.finish("r1/a/source/1");
  ASSERT_EQ(b.port.count("r1/b/target/1"), 1u);
  Command ahead{CommandKind::kApprove, "g1", "alice@laptop"};
  ahead.ahead = true;  // g1 waits behind b: approving it now is approving ahead
  ASSERT_EQ(b.exec->command(ahead, b.now), "");
  ASSERT_EQ(b.state("g2"), "awaiting-approval");
}

TEST(ExecutorJournalReplay, RebuildsStepsJobsAndApprovals) {
  Bench b(resume_plan());
  run_until_b_runs(b);
  std::string error;
  const auto state = replay_journal(b.dir.path(), error);
  ASSERT_TRUE(state) << error;
  EXPECT_EQ(state->run_id, "r1");
  EXPECT_EQ(state->plan_sha256, b.plan.sha256);
  EXPECT_EQ(state->fingerprints.size(), 4u);
  EXPECT_EQ(state->steps.at("a").state, "succeeded");
  EXPECT_EQ(state->steps.at("b").state, "running");
  EXPECT_EQ(state->steps.at("b").attempt, 1u);
  EXPECT_TRUE(state->steps.at("g1").approved);
  EXPECT_FALSE(state->steps.at("g2").approved);
  ASSERT_EQ(state->jobs.size(), 2u);
  EXPECT_EQ(state->jobs[0].job_id, "r1/a/source/1");
  EXPECT_TRUE(state->jobs[0].finished);
  EXPECT_EQ(state->jobs[1].job_id, "r1/b/target/1");
  EXPECT_FALSE(state->jobs[1].finished);
  EXPECT_FALSE(state->ended);
  EXPECT_EQ(state->torn, 0u);
}

TEST(ExecutorJournalReplay, KeepsAFinishedJobsResult) {
  Bench b(plan_head() + exec_step("x", "source") + exec_step("y", "target"));
  b.begin();
  b.finish("r1/x/source/1", "succeeded", R"({"bytes": 50})");
  std::string error;
  std::optional<JournalState> state;
  ASSERT_NO_THROW(state = replay_journal(b.dir.path(), error));
  ASSERT_TRUE(state) << error;
  ASSERT_EQ(state->steps.at("x").results.size(), 1u);
  EXPECT_EQ(state->steps.at("x").results[0], nlohmann::json({{"bytes", 50}}));
  ASSERT_TRUE(state->jobs[0].finished);
  EXPECT_EQ((*state->jobs[0].finished)["result"]["bytes"], 50);
}

TEST(ExecutorResume, TheRunsTimeCountsFromItsStartNotFromTheResume) {
  Bench b(plan_head() + exec_step("a", "source") + exec_step("b", "target", needs("\"a\"")));
  b.begin();
  b.finish("r1/a/source/1");
  b.crash();
  // The run began an hour before this resume (its first record's time, as if the cockpit
  // had been away that long).
  const std::string path = b.dir.path() + "/" + kJournalFile;
  std::string text = read_text(path);
  auto record = nlohmann::json::parse(text.substr(0, text.find('\n')));
  record["t"] = record["t"].get<double>() - 3600;
  text.replace(0, text.find('\n'), record.dump());
  std::ofstream(path, std::ios::trunc) << text;
  ASSERT_EQ(
      b.resume(plan_head() + exec_step("a", "source") + exec_step("b", "target", needs("\"a\""))),
      "");
  b.finish("r1/b/target/1");
  const auto runs = b.all_of<RunEvent>();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].state, "succeeded");
  EXPECT_GE(runs[0].seconds, 3600.0) << "a resumed run's time went back to the resume";
}

TEST(ExecutorResume, ReattachesTheRunningJobUnderTheSameIdAndKeepsGates) {
  Bench b(resume_plan());
  run_until_b_runs(b);
  b.crash();
  ASSERT_EQ(b.resume(resume_plan()), "");
  EXPECT_TRUE(b.port.ids().empty()) << "nothing is started: a is done, b is only asked for";
  ASSERT_EQ(b.port.attaches.size(), 1u);
  EXPECT_EQ(b.port.attaches[0],
            std::make_pair(std::string("target"), std::string("r1/b/target/1")));
  EXPECT_EQ(b.state("a"), "succeeded");
  EXPECT_EQ(b.state("b"), "running");
  EXPECT_EQ(b.state("g2"), "awaiting-approval");
  EXPECT_EQ(b.port.count("r1/g2/source/1"), 0u);

  JobUpdate attached;
  attached.kind = JobUpdate::Kind::kStarted;
  attached.existing = true;
  b.exec->on_job("r1/b/target/1", attached, b.now);
  EXPECT_THAT(b.logs(), HasSubstr("re-attached to job r1/b/target/1"));
  b.finish("r1/b/target/1");
  EXPECT_EQ(b.state("b"), "succeeded");
  EXPECT_EQ(b.port.count("r1/b/target/1"), 0u) << "re-attached, never started again";
  EXPECT_EQ(b.port.attaches.size(), 1u);
  EXPECT_EQ(b.port.count("r1/g1/target/1"), 1u) << "g1's approval survived the crash";
  EXPECT_EQ(b.port.count("r1/g2/source/1"), 0u);
}

TEST(ExecutorResume, RefusesAPlanChangedInAStepThatAlreadyRan) {
  Bench b(resume_plan());
  run_until_b_runs(b);
  b.crash();
  std::string changed = resume_plan();
  changed.replace(changed.find("do-a"), 4, "do-A");
  const std::string error = b.resume(changed);
  EXPECT_THAT(error, HasSubstr("already ran: a;"));
  EXPECT_TRUE(b.port.starts.empty());
}

TEST(ExecutorResume, RefusesAPlanThatRemovedAStepThatRan) {
  Bench b(plan_head() + exec_step("a", "source") + exec_step("b", "target"));
  b.begin();
  b.finish("r1/a/source/1");
  b.crash();
  EXPECT_THAT(b.resume(plan_head() + exec_step("b", "target")), HasSubstr("a (removed)"));
}

TEST(ExecutorResume, AcceptsAChangeToAStepStillPending) {
  Bench b(resume_plan());
  run_until_b_runs(b);
  b.crash();
  ASSERT_EQ(b.resume(resume_plan("do-g2-better")), "");
  EXPECT_EQ(b.command(CommandKind::kApprove, "g2"), "");
  ASSERT_EQ(b.port.count("r1/g2/source/1"), 1u);
  EXPECT_THAT(b.port.find("r1/g2/source/1")->job.spec, HasSubstr("do-g2-better"));
}

TEST(ExecutorResume, ATornLastLineIsSkipped) {
  Bench b(resume_plan());
  run_until_b_runs(b);
  b.crash();
  std::string error;
  const size_t records = replay_journal(b.dir.path(), error)->records;
  std::ofstream(b.dir.path() + "/" + kJournalFile, std::ios::app)
      << R"({"r":"step","step":"b","state":"succ)";
  ASSERT_EQ(b.resume(resume_plan()), "");
  EXPECT_EQ(b.replayed.torn, 1u);
  EXPECT_EQ(b.replayed.records, records);
  EXPECT_EQ(b.replayed.steps.at("b").state, "running");
  ASSERT_EQ(b.port.attaches.size(), 1u);
  EXPECT_EQ(b.port.attaches[0].second, "r1/b/target/1");
}

TEST(ExecutorResume, AnEndedRunIsNotResumed) {
  Bench b(plan_head() + exec_step("a", "source"));
  b.begin();
  b.finish("r1/a/source/1");
  ASSERT_TRUE(b.exec->ended());
  b.crash();
  EXPECT_THAT(b.resume(plan_head() + exec_step("a", "source")), HasSubstr("already ended"));
  EXPECT_TRUE(b.port.starts.empty());
}

TEST(ExecutorResume, AStepJournalledRunningWithoutAJobStartsOnce) {
  const std::string plan = plan_head() + exec_step("a", "source");
  Bench b(plan);
  b.begin();
  b.crash();
  b.drop_journal_lines(1);  // the job record: the cockpit died before the job went out
  ASSERT_EQ(b.resume(plan), "");
  EXPECT_EQ(b.port.starts.size(), 1u);
  EXPECT_EQ(b.state("a"), "running");
}

TEST(ExecutorResume, AJobFinishedJustBeforeTheCrashKeepsItsResult) {
  const std::string plan = plan_head() + exec_step("x", "source") +
                           exec_step("y", "target", "when = \"x.result.bytes < 100\"\n");
  Bench b(plan);
  b.begin();
  JobUpdate done;
  done.kind = JobUpdate::Kind::kFinished;
  done.state = "succeeded";
  done.result = R"({"bytes": 50})";
  b.exec->on_job("r1/x/source/1", done, b.now);
  b.crash();
  b.drop_journal_lines(1);  // "x succeeded": the job's "done" record is the last one
  ASSERT_EQ(b.resume(plan), "");
  EXPECT_EQ(b.state("x"), "succeeded");
  EXPECT_EQ(b.port.count("r1/y/target/1"), 1u) << "x's result (bytes 50) must still count";
  EXPECT_NE(b.state("y"), "skipped");
}

TEST(ExecutorResume, AnInterruptedRollbackContinuesWithoutCancellingItsJob) {
  Bench b(rollback_plan());
  run_three(b);
  b.command(CommandKind::kAbort);
  ASSERT_EQ(b.port.starts.back().id, "r1/c/source/rollback");
  b.crash();
  ASSERT_EQ(b.resume(rollback_plan()), "");
  EXPECT_EQ(b.port.count("r1/c/source/rollback"), 0u) << "asked for, not started again";
  ASSERT_EQ(b.port.attaches.size(), 1u);
  EXPECT_EQ(b.port.attaches[0].second, "r1/c/source/rollback");
  EXPECT_TRUE(b.port.cancels.empty()) << "the rollback itself must not be cancelled";
  b.finish("r1/c/source/rollback");
  EXPECT_EQ(b.state("c"), "rolled-back");
  EXPECT_EQ(b.port.starts.back().id, "r1/b/target/rollback");
}

TEST(ExecutorResume, AFailedStepWaitsForTheOperatorInsteadOfStartingAgain) {
  const std::string plan =
      plan_head() + exec_step("a", "source") + exec_step("b", "target", needs("\"a\""));
  ExecutorOptions exit;
  exit.on_failure = OnFailure::kExit;
  Bench b(plan, exit);
  b.begin();
  b.finish("r1/a/source/1", "failed");
  ASSERT_TRUE(b.exec->ended());
  b.crash();
  ASSERT_EQ(b.resume(plan), "");
  b.advance(std::chrono::hours(1));
  EXPECT_EQ(b.state("a"), "failed");
  EXPECT_EQ(b.port.count("r1/a/source/2"), 0u) << "a resume is not a retry";
  ASSERT_EQ(b.command(CommandKind::kRetry, "a"), "");
  EXPECT_EQ(b.port.count("r1/a/source/2"), 1u);
}

TEST(ExecutorResume, ApproveOnResumeReachesAStepTheEarlierCockpitNeverReached) {
  Bench b(resume_plan());
  run_until_b_runs(b);
  b.crash();
  ExecutorOptions options;
  options.approve = {"g2"};
  ASSERT_EQ(b.resume(resume_plan(), options), "");
  EXPECT_EQ(b.port.count("r1/g2/source/1"), 1u);
  EXPECT_THAT(b.audit(), HasSubstr("approve step=g2 by=op@cockpit (--approve)"));
}

TEST(ExecutorResume, AJobTheAgentDoesNotKnowIsUnknownNeverStartedAfresh) {
  Bench b(resume_plan());
  run_until_b_runs(b);
  b.crash();
  ASSERT_EQ(b.resume(resume_plan()), "");
  JobUpdate unknown;
  unknown.kind = JobUpdate::Kind::kUnknown;
  unknown.error = "target has no job r1/b/target/1";
  b.exec->on_job("r1/b/target/1", unknown, b.now);
  b.exec->tick(b.now);
  EXPECT_EQ(b.state("b"), "failed");
  EXPECT_THAT(b.logs(), HasSubstr("it may never have started there"));
  EXPECT_TRUE(b.port.ids().empty()) << "no attempt 2 by itself";
  const auto done = b.records("done");
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[1].value("state", ""), "unknown");
}

}  // namespace
}  // namespace cutpilot::plans::test
