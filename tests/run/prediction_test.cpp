// The downtime prediction: each step's source, the critical path, the operator's time apart,
// the live rest of a running window, what earlier runs measured, and the executor's use of it
// on a fake port (issue 21).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "run/prediction.h"
#include "tests/run/executor_steps.h"

namespace cutpilot::plans::test {
namespace {

using ::testing::HasSubstr;

// A plan loaded from text (the test fails on errors).
Plan plan_of(const std::string& text) {
  LoadResult loaded = load_plan_text(text, "test.toml", default_env());
  std::string errors;
  for (const auto& d : loaded.diagnostics)
    errors += format_diagnostic(d) + "\n";
  EXPECT_TRUE(loaded.ok()) << errors;
  return std::move(loaded.plan);
}

const Step* step_of(const Plan& plan, const std::string& id) {
  for (const auto& s : plan.steps)
    if (s.id == id) return &s;
  ADD_FAILURE() << "no step " << id;
  return nullptr;
}

// Forecasts plan's window with this run's history, earlier runs and progress.
struct Forecaster {
  explicit Forecaster(const std::string& text)
      : plan(plan_of(text)), window(downtime_window(plan)) {
    input.window = &window;
    input.history = &history;
    input.past = &past;
  }
  WindowForecast run() { return forecast_window(input); }
  const StepForecast& of(const WindowForecast& f, const std::string& id) {
    for (const auto& s : f.steps)
      if (s.step->id == id) return s;
    ADD_FAILURE() << "no forecast for " << id;
    return f.steps.front();
  }

  Plan plan;
  std::vector<const Step*> window;
  std::vector<StepHistory> history;
  PastRuns past;
  ForecastInput input;
};

// start → (a ‖ b) → end, each with an expect.
std::string diamond() {
  return plan_head() + exec_step("start", "source", "downtime = \"start\"\nexpect = \"1s\"\n") +
         exec_step("a", "target", needs("\"start\"") + "expect = \"5s\"\n") +
         exec_step("b", "source", needs("\"start\"") + "expect = \"3s\"\n") +
         exec_step("end", "target",
                   needs("\"a\", \"b\"") + "downtime = \"end\"\nexpect = \"1s\"\n");
}

TEST(Prediction, StepsSideBySideCountOnceOnTheCriticalPath) {
  Forecaster f(diamond());
  const auto forecast = f.run();
  ASSERT_EQ(forecast.steps.size(), 4u);
  EXPECT_DOUBLE_EQ(forecast.machine_s, 1 + 5 + 1) << "a and b run side by side";
  EXPECT_FALSE(forecast.at_least);
  EXPECT_TRUE(forecast.known);
  EXPECT_EQ(f.of(forecast, "b").source, "expect");
  EXPECT_EQ(describe_forecast(forecast), "~7.0s (machine 7.0s)");
}

TEST(Prediction, AChainCountsEveryStep) {
  Forecaster f(plan_head() + exec_step("s", "source", "downtime = \"start\"\nexpect = \"2s\"\n") +
               exec_step("m", "source", needs("\"s\"") + "expect = \"3s\"\n") +
               exec_step("e", "source", needs("\"m\"") + "downtime = \"end\"\nexpect = \"4s\"\n"));
  EXPECT_DOUBLE_EQ(f.run().machine_s, 9);
}

TEST(Prediction, EachKindTakesItsOwnSource) {
  const std::string sync = "sync = { from = \"/a/\", to = \"/b/\" }\n";
  const std::string db =
      "db = { engine = \"postgres\", from = { host = \"source\", database = \"shop\" }, to = { "
      "database = \"DB\" } }\n";
  auto with_db = [&](const std::string& name) {
    std::string text = db;
    text.replace(text.find("DB"), 2, name);
    return text;
  };
  Forecaster f(
      plan_head() + "[[steps]]\nid = \"presync\"\non = \"target\"\n" + sync +
      "[[steps]]\nid = \"rehearse\"\non = \"target\"\n" + with_db("rehearsal") +
      exec_step("stop", "source", needs("\"presync\", \"rehearse\"") + "downtime = \"start\"\n") +
      "[[steps]]\nid = \"final\"\non = \"target\"\nneeds = [\"stop\"]\n" + sync +
      "[[steps]]\nid = \"copy\"\non = \"target\"\nneeds = [\"stop\"]\n" + with_db("shop") +
      "[[steps]]\nid = \"pause\"\non = \"target\"\nneeds = [\"final\", \"copy\"]\n"
      "wait = \"7s\"\n" +
      "[[steps]]\nid = \"up\"\non = \"target\"\nneeds = [\"pause\"]\n"
      "health = { tcp = \"127.0.0.1:80\", interval = \"2s\", timeout = \"5m\" }\n" +
      exec_step("smoke", "target", needs("\"up\"") + "downtime = \"end\"\n"));
  f.history.push_back({step_of(f.plan, "presync"), {R"({"bytes": 1000, "seconds": 12})"}});
  f.history.push_back({step_of(f.plan, "rehearse"), {R"({"seconds": 40})"}});
  f.past.step_seconds["stop"] = {3, "r0"};
  const auto forecast = f.run();
  EXPECT_EQ(f.of(forecast, "final").source, "last round of presync");
  EXPECT_EQ(f.of(forecast, "final").seconds, 12);
  EXPECT_EQ(f.of(forecast, "copy").source, "rehearsal rehearse");
  EXPECT_EQ(f.of(forecast, "copy").seconds, 40);
  EXPECT_EQ(f.of(forecast, "pause").source, "its length");
  EXPECT_EQ(f.of(forecast, "pause").seconds, 7);
  EXPECT_EQ(f.of(forecast, "up").source, "its interval") << "not its 5m timeout";
  EXPECT_EQ(f.of(forecast, "up").seconds, 2);
  EXPECT_EQ(f.of(forecast, "stop").source, "earlier run r0");
  EXPECT_EQ(f.of(forecast, "smoke").source, "unknown");
  EXPECT_FALSE(f.of(forecast, "smoke").seconds);
  EXPECT_TRUE(forecast.at_least) << "smoke has no source";
  EXPECT_DOUBLE_EQ(forecast.machine_s, 3 + 40 + 7 + 2) << "copy is the longer branch";
  EXPECT_THAT(describe_forecast(forecast), HasSubstr("at least 52s"));
  EXPECT_THAT(describe_forecast(forecast), HasSubstr("no source for smoke"));
}

TEST(Prediction, ACatchUpGoesAtItsReplicasEstimateBeforeItsExpect) {
  Forecaster f(plan_head() +
               "[[steps]]\nid = \"replicate\"\nphase = \"prepare\"\non = \"target\"\n"
               "db = { engine = \"postgres\", mode = \"replicate\", from = { host = "
               "\"source\", database = \"shop\" }, to = { database = \"shop\" } }\n" +
               exec_step("stop", "source",
                         needs("\"replicate\"") + "downtime = \"start\"\nexpect = \"1s\"\n") +
               "[[steps]]\nid = \"catch\"\non = \"target\"\nneeds = [\"stop\"]\n"
               "downtime = \"end\"\nexpect = \"9s\"\n"
               "db = { engine = \"postgres\", action = \"catch-up\", of = \"replicate\" }\n");
  // Before the replica streams: its expect.
  EXPECT_EQ(f.of(f.run(), "catch").source, "expect");
  f.history.push_back(
      {step_of(f.plan, "replicate"), {R"({"streaming": true, "lag": "", "catch_up_s": 2.5})"}});
  const auto forecast = f.run();
  EXPECT_EQ(f.of(forecast, "catch").source, "a count of the copy in replicate");
  EXPECT_DOUBLE_EQ(*f.of(forecast, "catch").seconds, 2.5);
  EXPECT_DOUBLE_EQ(forecast.machine_s, 1 + 2.5);
}

// A pre-sync, an estimate of the same transfer, and its final sync opening the window.
std::string presync_then_final() {
  const std::string sync = "sync = { from = \"/a/\", to = \"/b/\" }\n";
  return plan_head() + "[[steps]]\nid = \"presync\"\non = \"target\"\n" + sync +
         "[[steps]]\nid = \"delta\"\non = \"target\"\nneeds = [\"presync\"]\n"
         "sync = { from = \"/a/\", to = \"/b/\", mode = \"estimate\" }\n" +
         "[[steps]]\nid = \"final\"\non = \"target\"\nneeds = [\"delta\"]\n"
         "downtime = \"start\"\n" +
         sync +
         exec_step("end", "target", needs("\"final\"") + "downtime = \"end\"\nexpect = \"1s\"\n");
}

TEST(Prediction, AnEstimateAfterThePresyncGoesAtItsRate) {
  Forecaster f(presync_then_final());
  f.history.push_back({step_of(f.plan, "presync"), {R"({"bytes": 1000, "seconds": 10})"}});
  f.history.push_back({step_of(f.plan, "delta"), {R"({"bytes": 300})"}});
  const auto forecast = f.run();
  EXPECT_EQ(f.of(forecast, "final").source, "estimate at the rate of presync");
  EXPECT_DOUBLE_EQ(*f.of(forecast, "final").seconds, 3);
}

TEST(Prediction, ATrackedFinalSyncGoesAtTheWatchsPathsAndBytes) {
  // A tracked pre-sync: its first round moved 8 MB in 2 s (4 MB/s), its quiet last round looked
  // at 1000 entries in 0.5 s. The watch has 100 paths and 2 MB pending: 0.05 s + 0.5 s.
  Forecaster f(
      plan_head() +
      "[[steps]]\nid = \"presync\"\non = \"target\"\n"
      "sync = { from = \"source:/a/\", to = \"/b/\", track_changes = true }\n"
      "[[steps]]\nid = \"final\"\non = \"target\"\nneeds = [\"presync\"]\n"
      "downtime = \"start\"\nsync = { from = \"source:/a/\", to = \"/b/\" }\n" +
      exec_step("end", "target", needs("\"final\"") + "downtime = \"end\"\nexpect = \"1s\"\n"));
  f.history.push_back({step_of(f.plan, "presync"),
                       {R"({"bytes": 0, "seconds": 0.5, "files": 1000})"},
                       {R"({"bytes": 8000000, "seconds": 2, "files": 1000})"}});
  auto forecast = f.run();
  EXPECT_EQ(f.of(forecast, "final").source, "last round of presync") << "no watch armed yet";
  f.input.watches["source:/a/ > target:/b/"] = {100, 2000000};
  forecast = f.run();
  EXPECT_EQ(f.of(forecast, "final").source,
            "the watch's 100 changed paths, 1.9 MiB, at presync's rate");
  EXPECT_DOUBLE_EQ(*f.of(forecast, "final").seconds, 0.05 + 0.5);
  // Live: more changes, a longer final sync.
  f.input.watches["source:/a/ > target:/b/"] = {1000, 8000000};
  EXPECT_DOUBLE_EQ(*f.of(f.run(), "final").seconds, 0.5 + 2);
  // The connection is not in it: what the final sync took in an earlier run is its floor.
  f.past.step_seconds["final"] = {3, "r0"};
  forecast = f.run();
  EXPECT_DOUBLE_EQ(*f.of(forecast, "final").seconds, 3);
  EXPECT_THAT(f.of(forecast, "final").source, HasSubstr("at least earlier run r0"));
}

TEST(Prediction, AnEstimateAtTheRateIsAtLeastWhatTheFinalSyncTookBefore) {
  // The pre-sync moved 1000 bytes in 10 s; 3 bytes changed since: 0.03 s at that rate, but
  // the same final sync took 4 s in an earlier run (the walk and the connections).
  Forecaster f(presync_then_final());
  f.history.push_back({step_of(f.plan, "presync"), {R"({"bytes": 1000, "seconds": 10})"}});
  f.history.push_back({step_of(f.plan, "delta"), {R"({"bytes": 3})"}});
  f.past.changed_seconds["final"] = {4, "r1"};
  auto forecast = f.run();
  EXPECT_EQ(f.of(forecast, "final").source,
            "estimate at the rate of presync (0.0s), at least earlier run r1, before the step "
            "changed");
  EXPECT_DOUBLE_EQ(*f.of(forecast, "final").seconds, 4);
  // A delta whose bytes take longer than the floor goes at the rate.
  f.history.back() = {step_of(f.plan, "delta"), {R"({"bytes": 600})"}};
  forecast = f.run();
  EXPECT_EQ(f.of(forecast, "final").source, "estimate at the rate of presync");
  EXPECT_DOUBLE_EQ(*f.of(forecast, "final").seconds, 6);
}

TEST(Prediction, AnEarlierRunBeatsAnExpectAndAnExpectBeatsTheInterval) {
  Forecaster f(plan_head() + exec_step("s", "source", "downtime = \"start\"\nexpect = \"9s\"\n") +
               "[[steps]]\nid = \"e\"\non = \"target\"\nneeds = [\"s\"]\ndowntime = \"end\"\n"
               "expect = \"4s\"\nhealth = { tcp = \"127.0.0.1:80\" }\n");
  f.past.step_seconds["s"] = {2.5, "r7"};
  const auto forecast = f.run();
  EXPECT_EQ(f.of(forecast, "s").source, "earlier run r7");
  EXPECT_EQ(f.of(forecast, "s").seconds, 2.5);
  EXPECT_EQ(f.of(forecast, "e").source, "expect");
  EXPECT_DOUBLE_EQ(forecast.machine_s, 6.5);
}

TEST(Prediction, AChangedStepsEarlierTimeComesAfterItsExpectAndBeforeTheInterval) {
  Forecaster f(plan_head() + exec_step("s", "source", "downtime = \"start\"\nexpect = \"9s\"\n") +
               exec_step("m", "source", needs("\"s\"")) +
               "[[steps]]\nid = \"e\"\non = \"target\"\nneeds = [\"m\"]\ndowntime = \"end\"\n"
               "health = { tcp = \"127.0.0.1:80\", interval = \"10s\" }\n");
  f.past.changed_seconds["s"] = {1, "r3"};
  f.past.changed_seconds["m"] = {2, "r3"};
  f.past.changed_seconds["e"] = {0.5, "r3"};
  const auto forecast = f.run();
  EXPECT_EQ(f.of(forecast, "s").source, "expect") << "the plan's word beats a changed step's time";
  EXPECT_EQ(f.of(forecast, "m").source, "earlier run r3, before the step changed");
  EXPECT_EQ(f.of(forecast, "m").seconds, 2);
  EXPECT_EQ(f.of(forecast, "e").source, "earlier run r3, before the step changed")
      << "a measured look beats the interval";
  EXPECT_FALSE(forecast.at_least);
  EXPECT_DOUBLE_EQ(forecast.machine_s, 9 + 2 + 0.5);
  f.past.step_seconds["m"] = {4, "r2"};
  EXPECT_EQ(f.of(f.run(), "m").source, "earlier run r2") << "the unchanged step's own time first";
}

// start → g (gated) → end.
std::string gated_window(const std::string& plan_lines = "") {
  return plan_head(plan_lines) +
         exec_step("start", "source",
                   "downtime = \"start\"\ngate = \"approve\"\nexpect = \"1s\"\n") +
         exec_step("g", "target", needs("\"start\"") + "gate = \"approve\"\nexpect = \"2s\"\n") +
         exec_step("end", "target", needs("\"g\"") + "downtime = \"end\"\nexpect = \"1s\"\n");
}

TEST(Prediction, ApprovalsInsideTheWindowAreTheOperatorsTimeApart) {
  Forecaster unknown(gated_window());
  auto forecast = unknown.run();
  EXPECT_FALSE(unknown.of(forecast, "start").gate) << "its gate is passed before the clock runs";
  EXPECT_TRUE(unknown.of(forecast, "g").gate);
  EXPECT_EQ(unknown.of(forecast, "g").approval_source, "unknown");
  EXPECT_TRUE(forecast.at_least);
  EXPECT_DOUBLE_EQ(forecast.machine_s, 4);
  EXPECT_DOUBLE_EQ(forecast.operator_s, 0);
  EXPECT_THAT(describe_forecast(forecast), HasSubstr("no source for the approval of g"));

  Forecaster by_default(gated_window("approval_time = \"30s\"\n"));
  ASSERT_TRUE(by_default.plan.settings.approval_time);
  EXPECT_EQ(*by_default.plan.settings.approval_time, std::chrono::seconds(30));
  by_default.input.approval_default_s = 30;  // as the executor passes the plan's
  forecast = by_default.run();
  EXPECT_FALSE(forecast.at_least);
  EXPECT_DOUBLE_EQ(forecast.operator_s, 30);
  EXPECT_EQ(describe_forecast(forecast), "~34s (machine 4.0s + approvals ~30s)");

  Forecaster measured(gated_window());
  measured.input.approval_default_s = 30;
  measured.past.approval_seconds["g"] = {12, "r3"};
  forecast = measured.run();
  EXPECT_DOUBLE_EQ(forecast.operator_s, 12);
  EXPECT_EQ(measured.of(forecast, "g").approval_source, "earlier run r3");

  Forecaster ahead(gated_window());
  ahead.input.approved_ahead = {"g"};
  forecast = ahead.run();
  EXPECT_DOUBLE_EQ(forecast.operator_s, 0);
  EXPECT_FALSE(forecast.at_least);
  EXPECT_EQ(ahead.of(forecast, "g").approval_source, "approved ahead");
}

TEST(Prediction, WhileTheWindowRunsOnlyTheRestIsPredicted) {
  Forecaster f(diamond());
  f.input.progress.elapsed_s = 4;
  f.input.progress.finished = {{"start", 1.5}};
  f.input.progress.running = {{"a", 2}, {"b", 3.5}};
  const auto forecast = f.run();
  // a has 3 s left, b is over its 3 s (0 left), then end's 1 s.
  EXPECT_DOUBLE_EQ(forecast.machine_s, 3 + 1);
  EXPECT_DOUBLE_EQ(forecast.total_s(), 4 + 3 + 1);
  EXPECT_EQ(f.of(forecast, "start").source, "took");
  EXPECT_THAT(describe_forecast(forecast), HasSubstr("4.0s so far + machine 4.0s"));
}

TEST(Prediction, AStepThatWillBeSkippedTakesNoTime) {
  Forecaster f(diamond());
  f.input.progress.will_skip = {"a"};
  const auto forecast = f.run();
  EXPECT_DOUBLE_EQ(forecast.machine_s, 1 + 3 + 1) << "b is the only branch left";
  EXPECT_EQ(f.of(forecast, "a").source, "skipped: a step it needs failed");
}

// A journal state of one earlier run: step → (state, started, ended), fingerprints given.
JournalState earlier(const std::string& run, const std::map<std::string, std::string>& prints,
                     const std::string& step, double started, double ended) {
  JournalState state;
  state.run_id = run;
  state.fingerprints = prints;
  JournalStep s;
  s.state = "succeeded";
  s.started_unix = started;
  s.ended_unix = ended;
  state.steps[step] = s;
  return state;
}

TEST(Prediction, EarlierRunsCountAsTheStepsOnlyWhenUnchangedAndTheNewestWins) {
  const std::map<std::string, std::string> now = {{"a", "print-a"}, {"b", "print-b"}};
  const auto old = earlier("r1", now, "a", 100, 110);
  const auto newer = earlier("r2", now, "a", 200, 204);
  const auto changed = earlier("r3", {{"a", "print-a"}, {"b", "other"}}, "b", 300, 390);
  auto gated = earlier("r4", now, "b", 400, 401);
  gated.steps["b"].approved_how = "gate";
  gated.steps["b"].awaiting_unix = 380;
  gated.steps["b"].approved_unix = 395;
  const auto current = earlier("r5", now, "a", 500, 599);
  const auto past = past_runs({&old, &newer, &changed, &gated, &current}, now, "r5");
  ASSERT_EQ(past.step_seconds.count("a"), 1u);
  EXPECT_DOUBLE_EQ(past.step_seconds.at("a").seconds, 4) << "r2 is newer than r1; r5 is this run";
  EXPECT_EQ(past.step_seconds.at("a").run, "r2");
  ASSERT_EQ(past.step_seconds.count("b"), 1u) << "r3 ran another b";
  EXPECT_EQ(past.step_seconds.at("b").run, "r4");
  ASSERT_EQ(past.changed_seconds.count("b"), 1u) << "r3's b is the step before it changed";
  EXPECT_DOUBLE_EQ(past.changed_seconds.at("b").seconds, 90);
  EXPECT_EQ(past.changed_seconds.count("a"), 0u) << "a never changed";
  ASSERT_EQ(past.approval_seconds.count("b"), 1u);
  EXPECT_DOUBLE_EQ(past.approval_seconds.at("b").seconds, 15);
}

TEST(Prediction, TheErrorSaysWhichWayItWasOff) {
  EXPECT_EQ(prediction_error_text(9, 11), "9.0s (18% short)");
  EXPECT_EQ(prediction_error_text(12, 10), "12s (20% over)");
  EXPECT_EQ(prediction_error_text(10, 10), "10s (spot on)");
  EXPECT_FALSE(prediction_error_pct(3, 0));
  EXPECT_EQ(format_estimate(0.44), "0.4s");
  EXPECT_EQ(format_estimate(75), "1m 15s");
}

// The executor on a fake port: the window of diamond() with a sleepless clock.
TEST(ExecutorPrediction, TheRestIsPredictedLiveAndTheEndRecordsPredictedAgainstActual) {
  Bench b(
      plan_head("downtime_budget = \"1m\"\n") + exec_step("pre", "source") +
      exec_step("start", "source", needs("\"pre\"") + "downtime = \"start\"\nexpect = \"1s\"\n") +
      exec_step("a", "target", needs("\"start\"") + "expect = \"5s\"\n") +
      exec_step("b", "source", needs("\"start\"") + "expect = \"3s\"\n") +
      exec_step("end", "target", needs("\"a\", \"b\"") + "downtime = \"end\"\nexpect = \"1s\"\n"));
  b.begin();
  auto downtime = b.all_of<DowntimeEvent>();
  ASSERT_EQ(downtime.size(), 1u);
  EXPECT_EQ(downtime[0].state, "predicted");
  EXPECT_DOUBLE_EQ(*downtime[0].predicted_s, 7);
  EXPECT_FALSE(downtime[0].at_least);
  EXPECT_EQ(downtime[0].basis, "~7.0s (machine 7.0s)");
  b.finish("r1/pre/source/1");
  EXPECT_THAT(b.logs(), HasSubstr("predicted: a 5.0s (expect)"));
  b.advance(std::chrono::seconds(1));
  b.finish("r1/start/source/1");
  b.advance(std::chrono::seconds(3));
  b.finish("r1/b/source/1");
  // a has run 3 s of its 5: the rest is 2 s of a and 1 s of end (the window's wall clock
  // is real time here, near 0).
  downtime = b.all_of<DowntimeEvent>();
  ASSERT_EQ(downtime.back().state, "predicted");
  EXPECT_NEAR(*downtime.back().predicted_s, 3, 0.5);
  EXPECT_EQ(b.exec->status(b.now)["downtime"]["steps"][1]["source"], "expect");
  b.advance(std::chrono::seconds(2));
  b.finish("r1/a/target/1");
  b.finish("r1/end/target/1");
  EXPECT_EQ(b.all_of<DowntimeEvent>().back().state, "ended");
  EXPECT_DOUBLE_EQ(*b.all_of<DowntimeEvent>().back().predicted_at_start_s, 7);
  const auto records = b.records("downtime");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0]["predicted_s"], 7) << "the started record keeps the promise";
  EXPECT_EQ(records[1]["predicted_s"], 7) << "and so does the ended one";
  EXPECT_THAT(b.logs(), HasSubstr("the window's steps took (predicted): start 1.0s (1.0s) a 5.0s "
                                  "(5.0s) b 3.0s (3.0s) end 0.0s (1.0s)"));
  const auto status = b.exec->status(b.now)["downtime"];
  EXPECT_EQ(status["predicted_s"], 7);
  EXPECT_TRUE(status.contains("error_pct"));
}

TEST(ExecutorPrediction, EarlierRunsAndApprovalsAheadFeedIt) {
  ExecutorOptions options;
  options.past.step_seconds["start"] = {4, "r0"};
  options.approve_all = true;
  Bench b(gated_window(), options);
  b.begin();
  const auto downtime = b.all_of<DowntimeEvent>();
  ASSERT_FALSE(downtime.empty());
  EXPECT_DOUBLE_EQ(*downtime[0].predicted_s, 4 + 2 + 1);
  EXPECT_EQ(downtime[0].basis, "~7.0s (machine 7.0s + approvals ~0.0s)");
}

TEST(ExecutorPrediction, AWindowWithNoSourceAtAllPredictsNothing) {
  Bench b(plan_head() + exec_step("s", "source", "downtime = \"start\"\n") +
          exec_step("e", "source", needs("\"s\"") + "downtime = \"end\"\n"));
  b.begin();
  ASSERT_EQ(b.all_of<DowntimeEvent>().size(), 1u);
  EXPECT_EQ(b.all_of<DowntimeEvent>()[0].state, "started");
  EXPECT_THAT(b.logs(), HasSubstr("predicted: s unknown"));
  b.finish("r1/s/source/1");
  b.finish("r1/e/source/1");
  ASSERT_EQ(b.all_of<DowntimeEvent>().size(), 2u) << "started and ended, no prediction";
  EXPECT_EQ(b.all_of<DowntimeEvent>()[1].state, "ended");
  EXPECT_FALSE(b.all_of<DowntimeEvent>().back().predicted_at_start_s);
}

}  // namespace
}  // namespace cutpilot::plans::test
