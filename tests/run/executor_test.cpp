// The executor against a fake JobPort: starting steps, gates, failures, retries, abort and
// rollback, conditions, hot pre-syncs, status and a failing journal.
#include "run/executor.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "tests/run/executor_harness.h"
#include "tests/run/executor_steps.h"

namespace cutpilot::plans::test {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using Ids = std::vector<std::string>;

TEST(ExecutorBegin, AnnouncesEveryStepPendingAndStartsReadyStepsInParallel) {
  Bench b(plan_head() + exec_step("a", R"(["source", "target"])") + exec_step("b", "source") +
          exec_step("c", "target", needs("\"a\"")));
  b.begin();
  ASSERT_GE(b.events.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const auto* e = std::get_if<StepEvent>(&b.events[i]);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->state, StepState::kPending) << e->step;
  }
  EXPECT_THAT(b.port.ids(), ElementsAre("r1/a/source/1", "r1/a/target/1", "r1/b/source/1"));
  EXPECT_EQ(b.port.starts[1].host, "target");
  EXPECT_EQ(b.state("a"), "running");
  EXPECT_EQ(b.state("c"), "pending");

  b.finish("r1/a/source/1");
  EXPECT_EQ(b.port.count("r1/c/target/1"), 0u) << "a still runs on target";
  b.finish("r1/a/target/1");
  EXPECT_EQ(b.state("a"), "succeeded");
  EXPECT_EQ(b.port.count("r1/c/target/1"), 1u);
  EXPECT_THAT(b.port.acks, ElementsAre("r1/a/source/1", "r1/a/target/1"));
}

TEST(ExecutorBegin, StepWaitsForEveryNeedAndRunEndsSucceeded) {
  Bench b(plan_head() + exec_step("a", "source") + exec_step("b", "target") +
          exec_step("c", "target", needs("\"a\", \"b\"")));
  b.begin();
  b.finish("r1/a/source/1");
  EXPECT_EQ(b.port.count("r1/c/target/1"), 0u);
  b.finish("r1/b/target/1");
  EXPECT_EQ(b.port.count("r1/c/target/1"), 1u);
  EXPECT_FALSE(b.exec->ended());
  b.now += 90s;
  b.finish("r1/c/target/1");
  ASSERT_TRUE(b.exec->ended());
  EXPECT_EQ(b.exec->exit_code(), 0);
  const auto runs = b.all_of<RunEvent>();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].state, "succeeded");
  EXPECT_DOUBLE_EQ(runs[0].seconds, 90);
}

TEST(ExecutorBegin, MaxParallelBoundsRunningSteps) {
  ExecutorOptions options;
  options.max_parallel = 2;
  Bench b(
      plan_head() + exec_step("a", "source") + exec_step("b", "source") + exec_step("c", "source"),
      options);
  b.begin();
  EXPECT_THAT(b.port.ids(), ElementsAre("r1/a/source/1", "r1/b/source/1"));
  b.finish("r1/b/source/1");
  EXPECT_THAT(b.port.ids(), ElementsAre("r1/a/source/1", "r1/b/source/1", "r1/c/source/1"));
}

TEST(ExecutorBegin, ApprovingAnUnknownStepUpFrontIsRefused) {
  ExecutorOptions options;
  options.approve = {"nope"};
  Bench b(plan_head() + exec_step("a", "source"), options);
  std::string error;
  EXPECT_FALSE(b.exec->begin(b.now, error));
  EXPECT_THAT(error, HasSubstr("nope"));
  EXPECT_TRUE(b.port.starts.empty());
}

TEST(ExecutorFailure, StepFailsAfterAllItsHostsAndNothingNewStarts) {
  Bench b(plan_head() + exec_step("a", R"(["source", "target"])") + exec_step("b", "source") +
          exec_step("c", "source", needs("\"b\"")));
  b.begin();
  b.finish("r1/a/source/1", "failed");
  EXPECT_EQ(b.state("a"), "running") << "target has not finished";
  b.finish("r1/a/target/1");
  EXPECT_EQ(b.state("a"), "failed");
  EXPECT_EQ(b.all_of<StepEvent>().back().detail, "failed on source");
  b.finish("r1/b/source/1");
  EXPECT_EQ(b.state("b"), "succeeded");
  b.advance(1h);
  EXPECT_EQ(b.port.count("r1/c/source/1"), 0u);
  EXPECT_FALSE(b.exec->ended()) << "the operator decides: retry, skip or abort";
}

TEST(ExecutorFailure, RetriesWithBackoffUnderNewAttemptIds) {
  Bench b(plan_head() + exec_step("a", "source", "retries = 2\n"));
  b.begin();
  b.finish("r1/a/source/1", "failed");
  EXPECT_EQ(b.state("a"), "running");
  ASSERT_TRUE(b.exec->next_timer());
  EXPECT_EQ(*b.exec->next_timer(), b.now + 2s);
  b.advance(1999ms);
  EXPECT_EQ(b.port.starts.size(), 1u);
  b.advance(1ms);
  EXPECT_THAT(b.port.ids(), ElementsAre("r1/a/source/1", "r1/a/source/2"));
  b.finish("r1/a/source/1", "failed");  // an old attempt's late words change nothing
  EXPECT_EQ(b.state("a"), "running");
  b.finish("r1/a/source/2", "failed");
  ASSERT_TRUE(b.exec->next_timer());
  EXPECT_EQ(*b.exec->next_timer(), b.now + 4s);
  b.advance(4s);
  ASSERT_EQ(b.port.count("r1/a/source/3"), 1u);
  b.finish("r1/a/source/3");
  EXPECT_EQ(b.state("a"), "succeeded");
  EXPECT_EQ(b.exec->exit_code(), 0);
}

TEST(ExecutorFailure, RetryCommandRestartsAFailedStepWithANewAttempt) {
  Bench b(plan_head() + exec_step("a", "source") + exec_step("b", "source", needs("\"a\"")));
  b.begin();
  EXPECT_THAT(b.command(CommandKind::kRetry, "a"), HasSubstr("has not failed"));
  b.finish("r1/a/source/1", "failed");
  EXPECT_EQ(b.state("a"), "failed");
  EXPECT_FALSE(b.exec->next_timer());
  EXPECT_EQ(b.command(CommandKind::kRetry, "a"), "");
  EXPECT_EQ(b.port.count("r1/a/source/2"), 1u);
  b.finish("r1/a/source/2");
  EXPECT_EQ(b.port.count("r1/b/source/1"), 1u);
  EXPECT_THAT(b.audit(), HasSubstr("retry step=a by=alice@laptop"));
}

TEST(ExecutorFailure, SkipMarksTheStepSkippedAndDependentsRun) {
  Bench b(plan_head() + exec_step("a", "source") + exec_step("b", "source", needs("\"a\"")));
  b.begin();
  EXPECT_THAT(b.command(CommandKind::kSkip, "a"), HasSubstr("cannot be skipped"));
  b.finish("r1/a/source/1", "failed");
  EXPECT_EQ(b.command(CommandKind::kSkip, "a"), "");
  EXPECT_EQ(b.state("a"), "skipped");
  EXPECT_EQ(b.port.count("r1/b/source/1"), 1u);
  EXPECT_THAT(b.audit(), HasSubstr("skip step=a by=alice@laptop"));
}

TEST(ExecutorFailure, EndOnFailureEndsTheRunOnceNothingRuns) {
  ExecutorOptions options;
  options.on_failure = OnFailure::kExit;
  Bench b(plan_head() + exec_step("a", "source") + exec_step("b", "target"), options);
  b.begin();
  b.finish("r1/a/source/1", "failed");
  EXPECT_FALSE(b.exec->ended()) << "b still runs";
  b.finish("r1/b/target/1");
  ASSERT_TRUE(b.exec->ended());
  EXPECT_EQ(b.exec->exit_code(), 1);
  ASSERT_EQ(b.all_of<RunEvent>().size(), 1u);
  EXPECT_EQ(b.all_of<RunEvent>()[0].state, "failed");
}

TEST(ExecutorFailure, AFailedOptionalStepSkipsItsDependentsAndTheRunGoesOn) {
  ExecutorOptions options;
  options.on_failure = OnFailure::kExit;
  Bench b(plan_head() + exec_step("probe", "target", "optional = true\n") +
              exec_step("uses", "target", needs("\"probe\"")) + exec_step("other", "source"),
          options);
  b.begin();
  b.finish("r1/probe/target/1", "failed");
  EXPECT_EQ(b.state("probe"), "failed");
  EXPECT_EQ(b.state("uses"), "skipped") << "a step needing a failed optional step is skipped";
  EXPECT_EQ(b.port.count("r1/uses/target/1"), 0u);
  EXPECT_FALSE(b.exec->ended()) << "other still runs";
  b.finish("r1/other/source/1");
  ASSERT_TRUE(b.exec->ended());
  EXPECT_EQ(b.exec->exit_code(), 0) << "an optional failure does not fail the run";
}

TEST(ExecutorFailure, WaitIsTheDefaultAndNamesTheCommandsThatHelp) {
  ExecutorOptions options;
  options.control_hint = " --state-dir /s";
  Bench b(plan_head() + exec_step("a", "source"), options);
  b.begin();
  b.finish("r1/a/source/1", "failed");
  b.advance(1h);
  EXPECT_FALSE(b.exec->ended()) << "the run stays up for the operator";
  EXPECT_THAT(b.logs(), HasSubstr("cutpilot retry a --state-dir /s | cutpilot skip a "
                                  "--state-dir /s | cutpilot abort --state-dir /s"));
}

TEST(ExecutorFailure, OnFailureRollbackRollsTheFinishedStepsBack) {
  ExecutorOptions options;
  options.on_failure = OnFailure::kRollback;
  Bench b(
      plan_head() + exec_step("a", "source", undo("a")) + exec_step("b", "target", needs("\"a\"")),
      options);
  b.begin();
  b.finish("r1/a/source/1");
  b.finish("r1/b/target/1", "failed");
  EXPECT_EQ(b.port.count("r1/a/source/rollback"), 1u);
  b.finish("r1/a/source/rollback");
  ASSERT_TRUE(b.exec->ended());
  EXPECT_EQ(b.exec->exit_code(), 3);
  EXPECT_EQ(b.state("a"), "rolled-back");
}

TEST(ExecutorFailure, AnApprovalDoesNotCarryOverToARetryInsideTheDowntimeWindow) {
  Bench b(plan_head() + exec_step("stop", "source", "downtime = \"start\"\n") +
          exec_step("cut", "target", needs("\"stop\"") + "gate = \"approve\"\n") +
          exec_step("up", "target", needs("\"cut\"") + "downtime = \"end\"\n"));
  b.begin();
  b.finish("r1/stop/source/1");
  ASSERT_EQ(b.command(CommandKind::kApprove, "cut"), "");
  b.finish("r1/cut/target/1", "failed");
  ASSERT_EQ(b.command(CommandKind::kRetry, "cut"), "");
  EXPECT_EQ(b.state("cut"), "awaiting-approval");
  EXPECT_EQ(b.port.count("r1/cut/target/2"), 0u);
  EXPECT_EQ(b.command(CommandKind::kApprove, "cut"), "");
  EXPECT_EQ(b.port.count("r1/cut/target/2"), 1u);
}

TEST(ExecutorFailure, ALostHostLeavesItsJobUnknownNotFailed) {
  Bench b(plan_head() + exec_step("a", "source"));
  b.begin();
  b.exec->on_host("source", "failed", "connection timed out", b.now);
  b.exec->tick(b.now);
  EXPECT_EQ(b.state("a"), "running");
  EXPECT_TRUE(b.records("done").empty()) << "nothing journals the job as finished";
  EXPECT_THAT(b.logs(), HasSubstr("may still be running there"));
}

TEST(ExecutorAbort, RollsBackCompletedStepsInReverseOrder) {
  Bench b(rollback_plan());
  run_three(b);
  ASSERT_EQ(b.state("d"), "awaiting-approval");
  EXPECT_EQ(b.command(CommandKind::kAbort), "");
  EXPECT_THAT(b.command(CommandKind::kAbort), HasSubstr("already aborting"));
  EXPECT_EQ(b.port.starts.back().id, "r1/c/source/rollback");
  EXPECT_THAT(b.port.starts.back().job.spec, HasSubstr("undo-c"));
  b.finish("r1/c/source/rollback");
  EXPECT_EQ(b.port.starts.back().id, "r1/b/target/rollback");
  b.finish("r1/b/target/rollback");
  EXPECT_EQ(b.port.starts.back().id, "r1/a/source/rollback");
  EXPECT_FALSE(b.exec->ended());
  b.finish("r1/a/source/rollback");
  for (const char* step : {"a", "b", "c"})
    EXPECT_EQ(b.state(step), "rolled-back") << step;
  ASSERT_TRUE(b.exec->ended());
  EXPECT_EQ(b.exec->exit_code(), 3);
  EXPECT_EQ(b.all_of<RunEvent>().back().state, "aborted");
  EXPECT_THAT(b.audit(), HasSubstr("abort by=alice@laptop"));
}

TEST(ExecutorAbort, PointOfNoReturnStopsRollbackOfTheStepsBeforeIt) {
  Bench b(rollback_plan("point_of_no_return = true\n"));
  run_three(b);
  b.command(CommandKind::kAbort);
  EXPECT_EQ(b.port.starts.back().id, "r1/c/source/rollback");
  b.finish("r1/c/source/rollback");
  EXPECT_EQ(b.port.count("r1/a/source/rollback"), 0u);
  EXPECT_EQ(b.state("a"), "succeeded");
  EXPECT_TRUE(b.exec->ended());
  EXPECT_THAT(b.logs(), HasSubstr("point of no return"));
}

TEST(ExecutorAbort, AFailedRollbackLeavesWhatItNeedsAndTheOthersStillRollBack) {
  Bench b(plan_head() + exec_step("x", "source", undo("x")) +
          exec_step("y", "target", needs("\"x\"") + undo("y")) +
          exec_step("z", "source", undo("z")) +
          exec_step("w", "target", needs("\"y\", \"z\"") + "gate = \"approve\"\n"));
  b.begin();
  b.finish("r1/x/source/1");
  b.finish("r1/z/source/1");
  b.finish("r1/y/target/1");
  ASSERT_EQ(b.state("w"), "awaiting-approval");
  b.command(CommandKind::kAbort);
  EXPECT_EQ(b.state("w"), "pending") << "an aborted run shows no step awaiting approval";
  EXPECT_EQ(b.port.starts.back().id, "r1/y/target/rollback");
  b.finish("r1/y/target/rollback", "failed");
  EXPECT_EQ(b.state("y"), "succeeded");
  std::string y_detail;
  for (const auto& e : b.all_of<StepEvent>())
    if (e.step == "y") y_detail = e.detail;
  EXPECT_THAT(y_detail, HasSubstr("its rollback failed on target"));
  EXPECT_EQ(b.port.starts.back().id, "r1/z/source/rollback") << "z does not depend on y";
  b.finish("r1/z/source/rollback");
  EXPECT_EQ(b.port.count("r1/x/source/rollback"), 0u) << "y needs x and is still in effect";
  ASSERT_TRUE(b.exec->ended());
  EXPECT_EQ(b.state("z"), "rolled-back");
  EXPECT_EQ(b.state("x"), "succeeded");
  EXPECT_THAT(b.logs(), HasSubstr("Rolled back: z"));
  EXPECT_THAT(b.logs(), HasSubstr("rollback failed (check by hand): y"));
  EXPECT_THAT(b.logs(), HasSubstr("left as they are: x (y needs it"));
}

TEST(ExecutorAbort, TheRollbackOfTheDowntimeStartEndsTheDowntime) {
  Bench b(plan_head() + exec_step("stop", "source", "downtime = \"start\"\n" + undo("stop")) +
          exec_step("cut", "target", needs("\"stop\"")) +
          exec_step("up", "target", needs("\"cut\"") + "downtime = \"end\"\n"));
  b.begin();
  b.finish("r1/stop/source/1");
  b.finish("r1/cut/target/1", "failed");
  b.command(CommandKind::kAbort);
  b.finish("r1/stop/source/rollback");
  ASSERT_TRUE(b.exec->ended());
  EXPECT_THAT(b.logs(), HasSubstr("downtime ended by rollback after"));
  EXPECT_THAT(b.logs(), Not(HasSubstr("never ended")));
  const auto downtime = b.records("downtime");
  ASSERT_EQ(downtime.size(), 2u);
  EXPECT_EQ(downtime[1].value("how", ""), "rollback");
}

TEST(ExecutorAbort, CancelsTheRunningStepThenRollsBack) {
  Bench b(rollback_plan());
  b.begin();
  b.finish("r1/a/source/1");
  b.command(CommandKind::kAbort);
  EXPECT_THAT(b.port.cancels, ElementsAre("r1/b/target/1"));
  EXPECT_EQ(b.port.count("r1/a/source/rollback"), 0u) << "b is still being cancelled";
  b.finish("r1/b/target/1", "cancelled");
  EXPECT_EQ(b.state("b"), "failed");
  EXPECT_EQ(b.port.count("r1/b/target/rollback"), 0u);
  EXPECT_EQ(b.port.starts.back().id, "r1/a/source/rollback");
}

TEST(ExecutorAbort, AbortDuringARetryBackoffStillRollsBack) {
  Bench b(plan_head() + exec_step("a", "source", undo("a")) +
          exec_step("b", "target", needs("\"a\"") + "retries = 1\n"));
  b.begin();
  b.finish("r1/a/source/1");
  b.finish("r1/b/target/1", "failed");
  ASSERT_TRUE(b.exec->next_timer()) << "b waits for its retry";
  b.command(CommandKind::kAbort);
  b.advance(10s);
  EXPECT_EQ(b.port.count("r1/b/target/2"), 0u) << "no retry after abort";
  EXPECT_NE(b.state("b"), "running");
  EXPECT_EQ(b.port.count("r1/a/source/rollback"), 1u) << "the abort must not hang";
}

TEST(ExecutorWhen, AFalseStateConditionSkipsTheStep) {
  Bench b(plan_head() + exec_step("x", "source", "gate = \"approve\"\n") +
          exec_step("y", "target", "when = \"x.succeeded\"\n") +
          exec_step("z", "target", "when = \"not x.succeeded\"\n"));
  b.begin();
  EXPECT_EQ(b.state("y"), "pending") << "x has not settled";
  EXPECT_EQ(b.command(CommandKind::kSkip, "x"), "");
  EXPECT_EQ(b.state("y"), "skipped");
  EXPECT_EQ(b.port.count("r1/y/target/1"), 0u);
  EXPECT_EQ(b.port.count("r1/z/target/1"), 1u);
}

TEST(ExecutorWhen, AResultConditionReadsTheFinishedJobsResult) {
  Bench b(plan_head() + exec_step("x", "source") +
          exec_step("small", "target", "when = \"x.result.bytes < 100\"\n") +
          exec_step("big", "target", "when = \"x.result.bytes >= 100\"\n"));
  b.begin();
  b.finish("r1/x/source/1", "succeeded", R"({"bytes": 50})");
  EXPECT_EQ(b.port.count("r1/small/target/1"), 1u);
  EXPECT_EQ(b.state("big"), "skipped");
  EXPECT_EQ(b.port.count("r1/big/target/1"), 0u);
}

// A local hot pre-sync on target with until_below 1000 bytes and max_rounds.
std::string presync_plan(int max_rounds, const std::string& extra = "") {
  return plan_head() + "[[steps]]\nid = \"presync\"\non = \"target\"\n" +
         "sync = { from = \"/a/\", to = \"/b/\", until_below = \"1000B\", max_rounds = " +
         std::to_string(max_rounds) + " }\n" + extra;
}

TEST(ExecutorPresync, RepeatsWhileTheDeltaIsNotBelowTheThreshold) {
  Bench b(presync_plan(5));
  b.begin();
  b.finish("r1/presync/target/1", "succeeded", R"({"bytes": 5000})");
  EXPECT_EQ(b.state("presync"), "running");
  b.finish("r1/presync/target/1.1", "succeeded", R"({"bytes": 1000})");
  b.finish("r1/presync/target/1.2", "succeeded", R"({"bytes": 999})");
  EXPECT_THAT(b.port.ids(),
              ElementsAre("r1/presync/target/1", "r1/presync/target/1.1", "r1/presync/target/1.2"));
  EXPECT_EQ(b.state("presync"), "succeeded");
}

TEST(ExecutorPresync, StopsAtMaxRounds) {
  Bench b(presync_plan(2));
  b.begin();
  b.finish("r1/presync/target/1", "succeeded", R"({"bytes": 5000})");
  b.finish("r1/presync/target/1.1", "succeeded", R"({"bytes": 5000})");
  EXPECT_EQ(b.port.starts.size(), 2u);
  EXPECT_EQ(b.state("presync"), "succeeded");
}

TEST(ExecutorPresync, ARetryAfterAFailedRoundIsANewAttempt) {
  Bench b(presync_plan(5, "retries = 1\n"));
  b.begin();
  b.finish("r1/presync/target/1", "succeeded", R"({"bytes": 5000})");
  b.finish("r1/presync/target/1.1", "failed");
  b.advance(2s);
  ASSERT_EQ(b.port.starts.size(), 3u);
  // Reusing "r1/presync/target/1.1" would re-attach to the job that just failed.
  EXPECT_EQ(b.port.starts.back().id, "r1/presync/target/2");
}

TEST(ExecutorStatus, ListsStepsStatesAndAwaitingApprovals) {
  Bench b(gated_plan());
  b.begin();
  b.now += 5s;
  const auto status = b.exec->status(b.now);
  EXPECT_EQ(status["run"], "r1");
  EXPECT_EQ(status["state"], "running");
  EXPECT_DOUBLE_EQ(status["seconds"].get<double>(), 5);
  ASSERT_EQ(status["steps"].size(), 3u);
  EXPECT_EQ(status["steps"][0]["step"], "a");
  EXPECT_EQ(status["steps"][0]["state"], "running");
  EXPECT_EQ(status["steps"][0]["attempt"], 1);
  EXPECT_EQ(status["steps"][1]["state"], "pending");
  EXPECT_EQ(status["awaiting_approval"], nlohmann::json::array({"h"}));
}

// presync, then the downtime window: stop (start), final sync, up (end); budget 1m.
std::string downtime_plan() {
  const std::string sync = "sync = { from = \"/a/\", to = \"/b/\" }\n";
  return plan_head("downtime_budget = \"1m\"\n") +
         "[[steps]]\nid = \"presync\"\non = \"target\"\n" + sync +
         exec_step("stop", "target", needs("\"presync\"") + "downtime = \"start\"\n") +
         "[[steps]]\nid = \"final\"\non = \"target\"\nneeds = [\"stop\"]\n" + sync +
         exec_step("up", "target", needs("\"final\"") + "downtime = \"end\"\n");
}

TEST(ExecutorDowntime, PredictedFromThePresyncThenStartedAndEnded) {
  Bench b(downtime_plan());
  b.begin();
  EXPECT_TRUE(b.all_of<DowntimeEvent>().empty());
  b.finish("r1/presync/target/1", "succeeded", R"({"bytes": 1000, "seconds": 120})");
  auto downtime = b.all_of<DowntimeEvent>();
  ASSERT_EQ(downtime.size(), 2u);
  EXPECT_EQ(downtime[0].state, "predicted");
  ASSERT_TRUE(downtime[0].predicted_s);
  EXPECT_DOUBLE_EQ(*downtime[0].predicted_s, 120);
  EXPECT_EQ(downtime[0].budget_s, 60);
  EXPECT_THAT(b.logs(), HasSubstr("predicted downtime 2m 00s exceeds the budget 1m 00s"));
  EXPECT_EQ(downtime[1].state, "started") << "stop started";
  EXPECT_EQ(b.state("stop"), "running");
  b.finish("r1/stop/target/1");
  b.finish("r1/final/target/1");
  EXPECT_EQ(b.all_of<DowntimeEvent>().size(), 2u) << "not ended before up succeeded";
  b.finish("r1/up/target/1");
  downtime = b.all_of<DowntimeEvent>();
  ASSERT_EQ(downtime.size(), 3u);
  EXPECT_EQ(downtime[2].state, "ended");
  EXPECT_EQ(b.records("downtime").size(), 2u);
  EXPECT_EQ(b.records("downtime")[0]["predicted_s"], 120);
  EXPECT_EQ(b.exec->status(b.now)["downtime"]["ended"], true);
}

TEST(ExecutorDowntime, NoWarningWhenThePredictionFitsTheBudget) {
  Bench b(downtime_plan());
  b.begin();
  b.finish("r1/presync/target/1", "succeeded", R"({"bytes": 1000, "seconds": 30})");
  ASSERT_FALSE(b.all_of<DowntimeEvent>().empty());
  EXPECT_EQ(b.all_of<DowntimeEvent>()[0].predicted_s, 30);
  EXPECT_THAT(b.logs(), Not(HasSubstr("exceeds the budget")));
}

TEST(ExecutorPeers, KeyIsMadeAndAuthorisedBeforeThePullAndRemovedAtTheEnd) {
  Bench b(plan_head() + "[[steps]]\nid = \"pull\"\non = \"target\"\n" +
          "sync = { from = \"source:/x/\", to = \"/x/\" }\n");
  b.begin();
  ASSERT_THAT(b.port.ids(), ElementsAre("r1/peer/target>source/keygen"));
  EXPECT_EQ(b.port.starts[0].host, "target");
  b.finish("r1/peer/target>source/keygen", "succeeded", R"({"public_key": "ssh-ed25519 AAAApub"})");
  ASSERT_EQ(b.port.starts.size(), 2u);
  EXPECT_EQ(b.port.starts[1].id, "r1/peer/target>source/authorize");
  EXPECT_EQ(b.port.starts[1].host, "source");
  const auto spec = nlohmann::json::parse(b.port.starts[1].job.spec);
  EXPECT_EQ(spec["action"], "authorize");
  EXPECT_EQ(spec["public_key"], "ssh-ed25519 AAAApub");
  EXPECT_EQ(b.port.count("r1/pull/target/1"), 0u);
  b.finish("r1/peer/target>source/authorize");
  ASSERT_EQ(b.port.count("r1/pull/target/1"), 1u);
  EXPECT_THAT(b.port.find("r1/pull/target/1")->job.spec, HasSubstr("AAAAC3hostsource"));
  b.finish("r1/pull/target/1");
  EXPECT_EQ(b.port.starts.back().id, "r1/peer/target>source/revoke");
  EXPECT_EQ(b.port.starts.back().host, "source");
  EXPECT_TRUE(b.all_of<RunEvent>().empty());
  b.finish("r1/peer/target>source/revoke");
  EXPECT_EQ(b.port.starts.back().id, "r1/peer/target>source/forget");
  EXPECT_EQ(b.port.starts.back().host, "target");
  EXPECT_TRUE(b.all_of<RunEvent>().empty());
  b.finish("r1/peer/target>source/forget");
  ASSERT_EQ(b.all_of<RunEvent>().size(), 1u);
  EXPECT_EQ(b.exec->exit_code(), 0);
}

// The descriptor this process has open on path, or -1.
int open_fd_of(const std::string& path) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code error;
    const auto target = std::filesystem::read_symlink(entry.path(), error);
    if (!error && target == path) return std::stoi(entry.path().filename().string());
  }
  return -1;
}

TEST(ExecutorJournal, AJournalThatCannotBeWrittenStopsEveryStart) {
  Bench b(plan_head() + exec_step("a", "source") + exec_step("b", "source", needs("\"a\"")));
  b.begin();
  // The journal's descriptor now writes to /dev/full: every append fails with ENOSPC.
  const int fd = open_fd_of(b.dir.path() + "/" + kJournalFile);
  ASSERT_GE(fd, 0);
  const int full = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(full, 0);
  ASSERT_EQ(::dup2(full, fd), fd);
  ::close(full);
  EXPECT_FALSE(b.journal->append({{"r", "probe"}}));
  EXPECT_THAT(b.journal->error(), HasSubstr("journal.jsonl"));
  b.finish("r1/a/source/1");
  EXPECT_THAT(b.exec->fatal(), HasSubstr("No space left on device"));
  EXPECT_THAT(b.logs(), HasSubstr("stops starting steps"));
  b.advance(1h);
  EXPECT_EQ(b.port.count("r1/b/source/1"), 0u);
}

TEST(ExecutorJournal, AppendOnAClosedJournalFailsWithAClearError) {
  Journal journal;
  EXPECT_FALSE(journal.append({{"r", "step"}}));
  EXPECT_THAT(journal.error(), HasSubstr("not open"));
  std::string error;
  EXPECT_FALSE(journal.open("/nonexistent/dir", error));
  EXPECT_THAT(error, HasSubstr("/nonexistent/dir"));
}

}  // namespace
}  // namespace cutpilot::plans::test
