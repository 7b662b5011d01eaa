// The downtime clock: from the start of the step marked `downtime = "start"` to the end
// of the step marked `downtime = "end"`, and its prediction from what earlier steps
// measured (pre-sync rates, a rehearsal's database copy).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plans/plan.h"
#include "plans/run_events.h"

namespace cutpilot::plans {

// The window's clock, in wall time (a resumed run continues the same window).
class DowntimeClock {
 public:
  // The plan's downtime_budget, when it has one.
  void set_budget(std::optional<double> budget_s) { budget_s_ = budget_s; }
  // The window started (unix seconds).
  void start(double unix_t) { started_ = unix_t; }
  // The window ended (unix seconds).
  void end(double unix_t) { ended_ = unix_t; }
  // The current prediction of the window's length.
  void set_predicted(std::optional<double> seconds) { predicted_ = seconds; }
  // Whether the window started / ended.
  bool started() const { return started_.has_value(); }
  bool ended() const { return ended_.has_value(); }
  // Seconds in the window so far (or in all, once ended); 0 before it started.
  double elapsed(double unix_now) const;
  // The prediction, when there is one.
  std::optional<double> predicted() const { return predicted_; }
  // The event a view shows: state is "predicted", "started" or "ended".
  DowntimeEvent event(const char* state, double unix_now) const;

 private:
  std::optional<double> started_;
  std::optional<double> ended_;
  std::optional<double> predicted_;
  std::optional<double> budget_s_;
};

// What an earlier step measured: its action and each host's job result (JSON text).
struct StepHistory {
  const Step* step = nullptr;
  std::vector<std::string> results;
};

// The predicted length of the downtime window: the sum over the window's steps of a
// final sync (the latest estimate's bytes ÷ the rate its pre-sync measured, else the
// last pre-sync round's time), a database copy (a rehearsal's time), a wait (its length);
// other steps count as instant. nullopt when no step of the window has anything to go on.
std::optional<double> predict_downtime(const std::vector<const Step*>& window,
                                       const std::vector<StepHistory>& history);

// The steps from the downtime start to its end, in the order the plan runs them.
std::vector<const Step*> downtime_window(const Plan& plan);

// Wall time in unix seconds: the window survives a cockpit restart, so it is not steady time.
double unix_now();

// Seconds as the operator reads them: "45s", "3m 20s", "1h 02m".
std::string format_seconds(double seconds);

}  // namespace cutpilot::plans
