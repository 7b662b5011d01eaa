// `cutpilot plan PLAN`: the resolved steps, phase by phase, and what each runs where.
// `cutpilot plan --ids PLAN` and `--hosts PLAN`: one step id (host name) a line, for shell
// completion and scripts.
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/run_state.h"
#include "plans/load.h"
#include "plans/show.h"
#include "run/downtime.h"
#include "run/executor.h"
#include "run/prediction.h"

namespace cutpilot::cli {
namespace {

// The step ids or host names of the plan at path, one a line, in file order. A plan with
// errors still lists what it could read (completion is asked while a plan is being written);
// the exit code says whether it loaded cleanly.
int list_names(const std::string& path, bool hosts) {
  const plans::LoadResult loaded = plans::load_plan(path);
  if (hosts) {
    for (const plans::HostSpec& host : loaded.plan.hosts)
      std::printf("%s\n", host.name.c_str());
  } else {
    for (const plans::Step& step : loaded.plan.steps)
      if (!step.id.empty()) std::printf("%s\n", step.id.c_str());
  }
  return loaded.ok() ? kOk : kFailed;
}

// The downtime window as the plan and its earlier runs predict it before a run: what each
// step is expected to take and why, and what only the run itself will measure.
void print_prediction(const std::string& path) {
  const plans::LoadResult loaded = plans::load_plan(path);
  if (!loaded.ok()) return;
  const plans::Plan& plan = loaded.plan;
  const auto window = plans::downtime_window(plan);
  if (window.empty()) return;
  const plans::PastRuns past = past_of(plan_state_dir(plan.path), plan, "");
  const std::vector<plans::StepHistory> history;  // no run yet: no pre-sync, no rehearsal
  const plans::ForecastInput in = plans::forecast_input(plan, window, history, past);
  const plans::WindowForecast forecast = plans::forecast_window(in);
  std::printf(
      "\ndowntime window, predicted before the run (from %zu earlier run%s and expect): %s\n",
      past.runs, past.runs == 1 ? "" : "s", plans::describe_forecast(forecast).c_str());
  for (const auto& f : forecast.steps) {
    std::string line = "  " + f.step->id + ": ";
    if (f.seconds) {
      line += plans::format_estimate(*f.seconds) + " (" + f.source + ")";
    } else if (const auto* sync = std::get_if<plans::SyncAction>(&f.step->action);
               sync && sync->mode == plans::SyncMode::kCopy) {
      line += "unknown until a pre-sync of the same transfer runs, or give it expect";
    } else if (const auto* db = std::get_if<plans::DbAction>(&f.step->action);
               db && db->op == plans::DbOp::kCopy) {
      line += "unknown until a rehearsal copy of " + plans::printable(db->from.database) +
              " runs, or give it expect";
    } else {
      line += "unknown: give it expect";
    }
    if (f.gate)
      line += f.approval_s ? ", approval " + plans::format_estimate(*f.approval_s) + " (" +
                                 f.approval_source + ")"
                           : ", approval unknown: [plan] approval_time";
    std::printf("%s\n", line.c_str());  // step ids are letters, digits, - and _
  }
}

}  // namespace

int plan(const std::vector<std::string>& args) {
  if (args.size() == 2 && (args[0] == "--ids" || args[0] == "--hosts") && !args[1].empty())
    return list_names(args[1], args[0] == "--hosts");
  if (args.size() != 1 || args[0].empty() || args[0][0] == '-') {
    std::fprintf(stderr, "usage: cutpilot plan PLAN | plan --ids PLAN | plan --hosts PLAN\n");
    return kUsage;
  }
  if (plans::show_plan(args[0], stdout, stderr) != 0) return kFailed;
  print_prediction(args[0]);
  return kOk;
}

}  // namespace cutpilot::cli
