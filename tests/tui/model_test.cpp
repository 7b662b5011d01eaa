// The cockpit's model: events in, what the screen shows out.
#include "tui/model.h"

#include <gtest/gtest.h>

#include "plans/load.h"
#include "tui/synthetic.h"

namespace cutpilot::tui {
namespace {

using plans::StepState;
using namespace std::chrono_literals;

class ModelTest : public ::testing::Test {
 protected:
  ModelTest() : loaded_(plans::load_plan_text(demo_plan_text(), "demo.toml")) {}
  void SetUp() override { ASSERT_TRUE(loaded_.ok()); }
  const plans::Plan& plan() const { return loaded_.plan; }
  static plans::Event step(const char* id, StepState state) {
    return plans::StepEvent{.step = id, .state = state};
  }
  static plans::Event progress(uint64_t bytes, uint64_t total = 1000) {
    return plans::ProgressEvent{
        .step = "presync", .host = "target", .bytes = bytes, .total = total};
  }
  plans::LoadResult loaded_;
  Clock::time_point t0_ = Clock::now();
};

TEST_F(ModelTest, StepsAreGroupedByPhaseInPlanOrder) {
  Model model(plan());
  std::vector<std::string> ids;
  for (const StepView& s : model.steps())
    ids.push_back(s.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"presync", "stop-app", "copy-db", "start-target",
                                           "healthy", "switch-dns"}));
  EXPECT_EQ(model.steps()[1].phase, "cutover");
  EXPECT_EQ(model.steps()[0].hosts, "target");
  EXPECT_EQ(model.phase(), "prepare");
  ASSERT_TRUE(model.downtime().budget_s);
  EXPECT_EQ(*model.downtime().budget_s, 300);
}

TEST_F(ModelTest, StepStateElapsedAndApprovalsFollowTheEvents) {
  Model model(plan());
  model.apply(step("presync", StepState::kRunning), t0_);
  EXPECT_DOUBLE_EQ(model.steps()[0].elapsed(t0_ + 3s), 3.0);
  model.apply(step("presync", StepState::kSucceeded), t0_ + 4s);
  // A finished step's time stops.
  EXPECT_DOUBLE_EQ(model.steps()[0].elapsed(t0_ + 60s), 4.0);
  model.apply(step("stop-app", StepState::kAwaitingApproval), t0_ + 4s);
  EXPECT_EQ(model.awaiting_approval(), 1u);
  EXPECT_EQ(model.phase(), "cutover");
  EXPECT_EQ(model.current_step(), 1u);
  model.apply(step("stop-app", StepState::kRunning), t0_ + 5s);
  EXPECT_EQ(model.awaiting_approval(), 0u);
  EXPECT_EQ(model.steps()[1].state, StepState::kRunning);
}

TEST_F(ModelTest, DirtyBitsNameOnlyWhatChanged) {
  Model model(plan());
  model.take_dirty();
  model.apply(progress(10), t0_);
  EXPECT_EQ(model.take_dirty(), part::kJobs);
  model.apply(plans::HostEvent{.host = "source", .state = "ready"}, t0_);
  EXPECT_EQ(model.take_dirty(), part::kHosts);
  model.apply(plans::LogEvent{.host = "source", .line = "hello"}, t0_);
  EXPECT_EQ(model.take_dirty(), part::kLog);
  EXPECT_EQ(model.take_dirty(), 0u);
}

TEST_F(ModelTest, ProgressNeverGoesBackwardsWithinAnAttempt) {
  Model model(plan());
  model.apply(step("presync", StepState::kRunning), t0_);
  model.apply(progress(600), t0_);
  model.apply(progress(400), t0_);  // a late, older report
  ASSERT_EQ(model.jobs().size(), 1u);
  EXPECT_EQ(model.jobs()[0]->bytes, 600u);
  EXPECT_DOUBLE_EQ(*model.jobs()[0]->fraction(), 0.6);
  // Success shows the job whole even if the last report was not.
  model.apply(step("presync", StepState::kSucceeded), t0_);
  EXPECT_EQ(model.jobs()[0]->state, JobState::kDone);
  EXPECT_DOUBLE_EQ(*model.jobs()[0]->fraction(), 1.0);
  EXPECT_EQ(model.running_jobs(), 0u);
}

TEST_F(ModelTest, ARetryStartsItsProgressAgain) {
  Model model(plan());
  model.apply(step("presync", StepState::kRunning), t0_);
  model.apply(progress(700), t0_);
  model.apply(step("presync", StepState::kFailed), t0_);
  EXPECT_EQ(model.jobs()[0]->state, JobState::kFailed);
  model.apply(progress(800), t0_);  // late report of the failed attempt: ignored
  EXPECT_EQ(model.jobs()[0]->bytes, 700u);
  model.apply(step("presync", StepState::kRunning), t0_);
  EXPECT_EQ(model.jobs()[0]->state, JobState::kRunning);
  EXPECT_EQ(model.jobs()[0]->bytes, 0u);
  model.apply(progress(100), t0_);
  EXPECT_EQ(model.jobs()[0]->bytes, 100u);
}

TEST_F(ModelTest, RunningJobsAreListedBeforeFinishedOnes) {
  Model model(plan());
  model.apply(plans::ProgressEvent{.step = "presync", .host = "target", .bytes = 1}, t0_);
  model.apply(plans::ProgressEvent{.step = "copy-db", .host = "target", .bytes = 1}, t0_);
  model.apply(step("presync", StepState::kSucceeded), t0_);
  const auto jobs = model.jobs();
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0]->step, "copy-db");
  EXPECT_EQ(jobs[1]->step, "presync");
}

TEST_F(ModelTest, FinishedJobsAreBounded) {
  const plans::Plan big = synthetic_plan(50, 1);
  Model model(big, ModelOptions{.finished_jobs_kept = 10});
  for (const auto& host : big.hosts)
    model.apply(plans::ProgressEvent{.step = "sync-0", .host = host.name, .bytes = 5}, t0_);
  EXPECT_EQ(model.running_jobs(), 50u);
  model.apply(plans::StepEvent{.step = "sync-0", .state = StepState::kSucceeded}, t0_);
  EXPECT_EQ(model.jobs().size(), 10u);
  // The index still finds the jobs that stayed.
  model.apply(plans::StepEvent{.step = "sync-0", .state = StepState::kRunning}, t0_);
  size_t listed_running = 0;
  for (const JobView* job : model.jobs())
    listed_running += job->state == JobState::kRunning;
  EXPECT_EQ(listed_running, 10u);
  // The step runs on its 50 hosts again, reported or not.
  EXPECT_EQ(model.running_jobs(), 50u);
}

TEST_F(ModelTest, TheJobsCountIsRedrawnWhenAStepWithoutProgressStartsAndEnds) {
  // A verify step reports no progress; the Jobs pane's "N running" counts it while it runs
  // and must be redrawn when it ends (it said "1 running" after the run had succeeded).
  Model model(plan());
  model.take_dirty();
  model.apply(step("healthy", StepState::kRunning), t0_);
  EXPECT_EQ(model.running_jobs(), 1u);
  EXPECT_TRUE(model.take_dirty() & part::kJobs);
  model.apply(step("healthy", StepState::kSucceeded), t0_);
  EXPECT_EQ(model.running_jobs(), 0u);
  EXPECT_TRUE(model.take_dirty() & part::kJobs);
  model.apply(step("copy-db", StepState::kAwaitingApproval), t0_);
  EXPECT_FALSE(model.take_dirty() & part::kJobs) << "a step that does not run changes no count";
}

TEST_F(ModelTest, ARunningStepCountsAsRunningJobsBeforeAnyProgress) {
  // An exec step never reports progress: the Jobs pane must not say "0 running" meanwhile.
  Model model(plan());
  EXPECT_EQ(model.running_jobs(), 0u);
  model.apply(step("stop-app", StepState::kRunning), t0_);
  EXPECT_EQ(model.running_jobs(), 1u);
  model.apply(step("stop-app", StepState::kSucceeded), t0_);
  EXPECT_EQ(model.running_jobs(), 0u);
}

TEST_F(ModelTest, ThePhaseIsTheEarliestOneStillAtWork) {
  Model model(plan());
  model.apply(step("presync", StepState::kRunning), t0_);
  model.apply(step("switch-dns", StepState::kAwaitingApproval), t0_);  // "after", ready early
  EXPECT_EQ(model.phase(), "prepare");
  model.apply(step("presync", StepState::kSucceeded), t0_);
  model.apply(step("stop-app", StepState::kRunning), t0_);
  EXPECT_EQ(model.phase(), "cutover") << "the cutover runs while a later gate waits";
  model.apply(step("stop-app", StepState::kSucceeded), t0_);
  model.apply(step("copy-db", StepState::kRunning), t0_);
  EXPECT_EQ(model.phase(), "cutover");
  model.apply(step("copy-db", StepState::kSucceeded), t0_);
  EXPECT_EQ(model.phase(), "after");
}

TEST_F(ModelTest, LogLinesKeepTheirTimeAndWhetherStderrIsANotice) {
  Model model(plan());
  model.apply(plans::LogEvent{.step = "copy-db",
                              .host = "target",
                              .stream = "stderr",
                              .line = "pg_dump: reading extensions",
                              .notice = true,
                              .at = 1700000000},
              t0_);
  const auto lines = model.log().page({}, model.log().last_seq(), 10);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(lines[0]->notice);
  EXPECT_DOUBLE_EQ(lines[0]->at, 1700000000);
  EXPECT_EQ(lines[0]->step, "copy-db");
}

TEST_F(ModelTest, HealthCountsGoodTargetsPerHost) {
  Model model(plan());
  auto health = [&](const char* target, const char* status) {
    model.apply(plans::HealthEvent{.host = "target", .target = target, .status = status}, t0_);
  };
  health("web", "starting");
  health("worker", "healthy");
  const HostView& host = model.hosts()[*model.host_index("target")];
  EXPECT_EQ(host.healthy, 1u);
  EXPECT_EQ(host.health.size(), 2u);
  health("web", "healthy");
  EXPECT_EQ(host.healthy, 2u);
  health("worker", "unhealthy");
  EXPECT_EQ(host.healthy, 1u);
  health("worker", "removed");
  EXPECT_EQ(host.health.size(), 1u);
  EXPECT_EQ(host.healthy, 1u);
}

TEST_F(ModelTest, AHostKeepsItsErrorUntilReadyAgain) {
  Model model(plan());
  model.apply(plans::HostEvent{.host = "source", .state = "lost", .error = "timeout"}, t0_);
  model.apply(plans::HostEvent{.host = "source", .state = "connecting"}, t0_);
  EXPECT_EQ(model.hosts()[0].error, "timeout");
  model.apply(plans::HostEvent{.host = "source", .state = "ready"}, t0_);
  EXPECT_EQ(model.hosts()[0].error, "");
  // A host the plan lacks is shown, not dropped.
  model.apply(plans::HostEvent{.host = "extra", .state = "ready"}, t0_);
  EXPECT_TRUE(model.host_index("extra"));
}

TEST_F(ModelTest, AHostsFactsArriveWithItsStateAndStayUntilNewOnes) {
  Model model(plan());
  model.apply(plans::HostEvent{.host = "source", .state = "ready"}, t0_);
  EXPECT_EQ(model.hosts()[0].facts, "");
  model.take_dirty();
  model.apply(
      plans::HostEvent{.host = "source", .state = "ready", .facts = "agent 0.1.0, load 0.50"}, t0_);
  EXPECT_EQ(model.hosts()[0].facts, "agent 0.1.0, load 0.50");
  EXPECT_NE(model.take_dirty() & part::kHosts, 0u);
  model.apply(plans::HostEvent{.host = "source", .state = "lost", .error = "timeout"}, t0_);
  EXPECT_EQ(model.hosts()[0].facts, "agent 0.1.0, load 0.50") << "a lost host keeps its facts";
}

TEST_F(ModelTest, DowntimeClockTicksOnlyWhileStarted) {
  Model model(plan());
  using State = DowntimeView::State;
  model.apply(plans::DowntimeEvent{.state = "predicted", .predicted_s = 90}, t0_);
  EXPECT_EQ(model.downtime().state, State::kPredicted);
  EXPECT_DOUBLE_EQ(model.downtime().elapsed(t0_ + 10s), 0);
  model.apply(plans::DowntimeEvent{.state = "started", .seconds = 2}, t0_);
  EXPECT_DOUBLE_EQ(model.downtime().elapsed(t0_ + 10s), 12);
  EXPECT_EQ(*model.downtime().predicted_s, 90);
  // A new prediction mid-window keeps the clock.
  model.apply(plans::DowntimeEvent{.state = "predicted", .predicted_s = 120}, t0_ + 5s);
  EXPECT_DOUBLE_EQ(model.downtime().elapsed(t0_ + 10s), 12);
  EXPECT_EQ(*model.downtime().predicted_s, 120);
  model.apply(plans::DowntimeEvent{.state = "ended", .seconds = 30}, t0_ + 28s);
  EXPECT_DOUBLE_EQ(model.downtime().elapsed(t0_ + 100s), 30);
}

TEST_F(ModelTest, DowntimeTurnsAmberNearTheBudgetAndRedPastIt) {
  Model model(plan());  // the demo plan's budget: 5m
  using Budget = DowntimeView::Budget;
  model.apply(plans::DowntimeEvent{.state = "started"}, t0_);
  const DowntimeView& d = model.downtime();
  EXPECT_EQ(d.budget_level(t0_ + 100s), Budget::kWithin);
  EXPECT_EQ(d.budget_level(t0_ + 239s), Budget::kWithin);
  EXPECT_EQ(d.budget_level(t0_ + 240s), Budget::kNear);
  EXPECT_EQ(d.budget_level(t0_ + 300s), Budget::kNear);
  EXPECT_EQ(d.budget_level(t0_ + 301s), Budget::kOver);
  // The run's own budget wins over the plan's.
  model.apply(plans::DowntimeEvent{.state = "started", .budget_s = 1000}, t0_);
  EXPECT_EQ(d.budget_level(t0_ + 301s), Budget::kWithin);
}

TEST_F(ModelTest, TickMarksTheClocksOncePerSecond) {
  Model model(plan());
  model.take_dirty();
  const Clock::time_point start = model.started();
  auto wait = model.tick(start + 100ms);
  EXPECT_EQ(model.take_dirty(), part::kTop);
  ASSERT_TRUE(wait);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(*wait).count(), 900);
  model.tick(start + 500ms);
  EXPECT_EQ(model.take_dirty(), 0u);
  model.apply(step("presync", StepState::kRunning), start);
  model.take_dirty();
  model.tick(start + 1100ms);
  EXPECT_EQ(model.take_dirty(), part::kTop | part::kSteps);
  model.apply(plans::RunEvent{.state = "succeeded", .seconds = 1}, start);
  EXPECT_FALSE(model.tick(start + 5s));  // nothing ticks after the end
}

TEST_F(ModelTest, PointOfNoReturnBannerWhileAwaiting) {
  Model model(plan());
  EXPECT_EQ(model.point_of_no_return(), nullptr);
  model.apply(step("stop-app", StepState::kAwaitingApproval), t0_);
  EXPECT_EQ(model.point_of_no_return(), nullptr);  // a gate, but not the point of no return
  model.take_dirty();
  model.apply(step("switch-dns", StepState::kAwaitingApproval), t0_);
  ASSERT_NE(model.point_of_no_return(), nullptr);
  EXPECT_EQ(model.point_of_no_return()->id, "switch-dns");
  EXPECT_TRUE(model.take_dirty() & part::kBanner);
  model.apply(step("switch-dns", StepState::kRunning), t0_);
  EXPECT_EQ(model.point_of_no_return(), nullptr);
}

TEST_F(ModelTest, LogKeepsTheNewestLinesAndTheStepsLastLines) {
  Model model(plan(), ModelOptions{.log_lines = 5});
  for (int i = 1; i <= 8; ++i)
    model.apply(plans::LogEvent{.step = i % 2 ? "presync" : "copy-db",
                                .host = "target",
                                .line = "line " + std::to_string(i) + "\x1b[31m"},
                t0_);
  EXPECT_EQ(model.log().size(), 5u);
  EXPECT_EQ(model.log().last_seq(), 8u);
  const auto all = model.log().page(LogQuery{}, model.log().last_seq(), 100);
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all.front()->seq, 4u);
  // Control bytes never reach the screen.
  EXPECT_EQ(all.back()->line, "line 8?[31m");
  const StepView& presync = model.steps()[0];
  ASSERT_EQ(presync.last_lines.size(), StepView::kLastLines);
  EXPECT_EQ(presync.last_lines.back(), "line 7?[31m");
}

TEST(LogBuffer, PageAndMoveFollowTheQuery) {
  LogBuffer log(100);
  for (int i = 1; i <= 20; ++i)
    log.push(
        LogLine{.step = i % 4 == 0 ? "db" : "sync", .host = "h", .line = "n" + std::to_string(i)});
  const LogQuery db{.step = "db"};
  const auto page = log.page(db, log.last_seq(), 3);
  ASSERT_EQ(page.size(), 3u);
  EXPECT_EQ(page[0]->line, "n12");
  EXPECT_EQ(page[2]->line, "n20");
  // Scrolling back: two matching lines older than 20 is 12; it stops at the oldest.
  EXPECT_EQ(log.move(db, 20, -2), 12u);
  EXPECT_EQ(log.move(db, 20, -100), 4u);
  EXPECT_EQ(log.move(db, 4, 100), 20u);
  const auto scrolled = log.page(db, 12, 2);
  ASSERT_EQ(scrolled.size(), 2u);
  EXPECT_EQ(scrolled[1]->line, "n12");
  const LogQuery text{.text = "n1"};
  EXPECT_EQ(log.page(text, log.last_seq(), 100).size(), 11u);  // n1, n10..n19
  EXPECT_EQ(log.page(LogQuery{.text = "nothing"}, log.last_seq(), 100).size(), 0u);
}

TEST(LogBuffer, StaysBoundedAndKeepsSeqs) {
  LogBuffer log(3);
  for (int i = 0; i < 1000; ++i)
    log.push(LogLine{.line = std::to_string(i)});
  EXPECT_EQ(log.size(), 3u);
  const auto page = log.page(LogQuery{}, 500, 10);  // long gone: nothing
  EXPECT_TRUE(page.empty());
  EXPECT_EQ(log.page(LogQuery{}, log.last_seq(), 10).front()->line, "997");
}

TEST(SyntheticEvents, FeedTheModelFast) {
  const plans::Plan plan = synthetic_plan(200, 2);
  Model model(plan);
  const auto events = synthetic_events(plan, 200000, 7);
  const auto start = Clock::now();
  for (const auto& e : events)
    model.apply(e, start);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_EQ(model.running_jobs(), 400u);
  EXPECT_EQ(model.events(), 200000u);
  // The bar is 100,000 events/s; a sanitizer build is slower, so only 10,000 here.
  EXPECT_GT(200000 / seconds, 10000.0);
}

TEST_F(ModelTest, AReportAfterItsStepEndedBringsBackNoRunningJob) {
  Model model(plan());
  model.apply(step("presync", StepState::kRunning), t0_);
  model.apply(progress(1000), t0_ + 1s);
  model.apply(step("presync", StepState::kSucceeded), t0_ + 2s);
  // The agent's last report crossed the step's end (seen in a resumed cockpit: "Jobs (1
  // running)" under a run that had succeeded).
  model.apply(progress(1000), t0_ + 3s);
  EXPECT_EQ(model.running_jobs(), 0u);
  // A step that never showed a job (a health check) and reports after it ended: still none.
  model.apply(step("healthy", StepState::kRunning), t0_ + 4s);
  model.apply(step("healthy", StepState::kSucceeded), t0_ + 5s);
  model.apply(plans::ProgressEvent{.step = "healthy", .host = "target"}, t0_ + 6s);
  EXPECT_EQ(model.running_jobs(), 0u);
  ASSERT_EQ(model.jobs().size(), 1u);
  EXPECT_EQ(model.jobs()[0]->state, JobState::kDone);
}

TEST_F(ModelTest, AResumedRunsClockGoesOnFromWhereItWas) {
  const Model fresh(plan());
  EXPECT_LE(Clock::now() - fresh.started(), 60s);
  const Model resumed(plan(), ModelOptions{.seconds_before = 3600});
  EXPECT_GE(Clock::now() - resumed.started(), 3600s);
}

}  // namespace
}  // namespace cutpilot::tui
