// The downtime prediction: every step of the window with a predicted duration and where
// that number comes from, the window's machine time along its critical path (steps that run
// side by side count once), and the operator's time at its gates, apart.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "plans/plan.h"
#include "run/journal.h"

namespace cutpilot::plans {

// What an earlier step of this run measured: its action and each host's job result (JSON).
struct StepHistory {
  const Step* step = nullptr;
  std::vector<std::string> results;
  std::vector<std::string> rounds;  // a hot pre-sync's earlier rounds' results
};

// One number an earlier run of the plan measured, and the run it comes from.
struct PastSample {
  double seconds = 0;
  std::string run;
};

// What earlier runs of this plan measured, by step id (the newest run that has it).
struct PastRuns {
  std::map<std::string, PastSample> step_seconds;      // a succeeded, unchanged step's time
  std::map<std::string, PastSample> changed_seconds;   // the same id's time before it changed
  std::map<std::string, PastSample> approval_seconds;  // how long its gate waited for approval
  size_t runs = 0;                                     // the earlier runs read
};

// Reads the earlier runs' journals (oldest first): a step's time counts as the step's where
// its fingerprint then equals fingerprints[step] now (the step did the same thing), else as
// the time of a step of that id before it changed (a rehearsal on other hosts or paths);
// skip_run is left out.
PastRuns past_runs(const std::vector<const JournalState*>& journals,
                   const std::map<std::string, std::string>& fingerprints,
                   const std::string& skip_run);

// The window's steps' state while it runs (all empty before it starts).
struct WindowProgress {
  double elapsed_s = 0;                    // seconds in the window so far
  std::map<std::string, double> finished;  // step → seconds it took (succeeded or skipped)
  std::map<std::string, double> running;   // step → seconds it has run so far
  std::set<std::string> approved;          // gates approved (ahead, or already passed)
  std::set<std::string> will_skip;         // steps an optional step's failure will skip
};

// One step's prediction.
struct StepForecast {
  const Step* step = nullptr;
  std::optional<double> seconds;  // nullopt: no source knows
  std::string source;             // where the number comes from ("unknown" when none does)
  bool gate = false;              // the operator approves it inside the window
  std::optional<double> approval_s;
  std::string approval_source;  // for a gate: "earlier run RUN", "approved ahead", ...
};

// The prediction of the whole window (or of its rest, once it runs).
struct WindowForecast {
  std::vector<StepForecast> steps;  // the window's, in plan order
  double elapsed_s = 0;             // the window so far (0 before it starts)
  double machine_s = 0;             // the rest's critical path over the steps that are known
  double operator_s = 0;            // the rest's approvals that are known
  bool at_least = false;            // a step or gate left to do has no source: "at least"
  bool known = false;               // some step has a source (else there is no prediction)

  // The predicted length of the window.
  double total_s() const { return elapsed_s + machine_s + operator_s; }
};

// What a change watch has recorded so far: the final copy of its transfer moves just that.
struct WatchedChanges {
  uint64_t paths = 0;
  uint64_t bytes = 0;
};

// What the forecast needs besides the steps.
struct ForecastInput {
  const std::vector<const Step*>* window = nullptr;   // downtime_window(plan)
  const std::vector<StepHistory>* history = nullptr;  // this run's finished steps, in order
  const PastRuns* past = nullptr;
  std::optional<double> approval_default_s;       // [plan] approval_time
  std::set<std::string> approved_ahead;           // gates --approve / --approve-all already passed
  std::map<std::string, WatchedChanges> watches;  // armed watches by SyncAction::track_key
  WindowProgress progress;
};

// The input every forecast of plan's window starts from (window, history and past are
// referred to, not copied); the caller adds what is approved ahead and the progress.
ForecastInput forecast_input(const Plan& plan, const std::vector<const Step*>& window,
                             const std::vector<StepHistory>& history, const PastRuns& past);

// Predicts the window: a sync from this run's pre-sync (a watch's changes at the rate and
// per-entry time of its last round, else estimate ÷ rate, else the last round), a db copy from a
// rehearsal, a catch-up from its replicate step's estimate, a wait from its length; any of them,
// and an exec, file or health step, from an earlier run of the same step, else its `expect`, else
// an earlier run of the step before it changed; a health wait with none of them from its interval.
// Finished steps count as they took, running ones for what is left of their prediction.
WindowForecast forecast_window(const ForecastInput& input);

// Seconds for a prediction: "0.4s", "9.5s" under ten seconds, else as format_seconds.
std::string format_estimate(double seconds);

// How far a prediction was from what happened, in percent of the actual time (negative: it
// promised less); nullopt when nothing was measured.
std::optional<double> prediction_error_pct(double predicted_s, double actual_s);

// "9s (18% short)", "12s (9% over)": a prediction against what happened.
std::string prediction_error_text(double predicted_s, double actual_s);

// "machine 6s + approvals ~10s", "at least 4s (2 steps unknown)": the forecast in words.
std::string describe_forecast(const WindowForecast& forecast);

}  // namespace cutpilot::plans
