// The downtime clock: from the start of the step marked `downtime = "start"` to the end
// of the step marked `downtime = "end"` (its prediction: run/prediction.h).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plans/plan.h"
#include "run/run_events.h"

namespace cutpilot::plans {

// The window's clock, in wall time (a resumed run continues the same window).
class DowntimeClock {
 public:
  // The plan's downtime_budget, when it has one.
  void set_budget(std::optional<double> budget_s) { budget_s_ = budget_s; }
  // The window started (unix seconds).
  void start(double unix_t) {
    started_ = unix_t;
    predicted_at_start_ = predicted_;
  }
  // The window ended (unix seconds).
  void end(double unix_t) { ended_ = unix_t; }
  // The current prediction of the window's length (a floor when at_least).
  void set_predicted(std::optional<double> seconds, bool at_least = false) {
    predicted_ = seconds;
    at_least_ = at_least;
  }
  // Whether the window started / ended.
  bool started() const { return started_.has_value(); }
  bool ended() const { return ended_.has_value(); }
  // Seconds in the window so far (or in all, once ended); 0 before it started.
  double elapsed(double unix_now) const;
  // The prediction, when there is one.
  std::optional<double> predicted() const { return predicted_; }
  // Whether the prediction is a floor (a step of the window has no source).
  bool at_least() const { return at_least_; }
  // What was predicted when the window started.
  std::optional<double> predicted_at_start() const { return predicted_at_start_; }
  // The event a view shows: state is "predicted", "started" or "ended".
  DowntimeEvent event(const char* state, double unix_now) const;

 private:
  std::optional<double> started_;
  std::optional<double> ended_;
  std::optional<double> predicted_;
  std::optional<double> predicted_at_start_;
  bool at_least_ = false;
  std::optional<double> budget_s_;
};

// The steps from the downtime start to its end, in the order the plan runs them.
std::vector<const Step*> downtime_window(const Plan& plan);

// Wall time in unix seconds: the window survives a cockpit restart, so it is not steady time.
double unix_now();

// Seconds as the operator reads them: "45s", "3m 20s", "1h 02m".
std::string format_seconds(double seconds);

}  // namespace cutpilot::plans
