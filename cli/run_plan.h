// Running a plan, shared by `cutpilot run` and `cutpilot demo`.
#pragma once

#include <signal.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "run/executor.h"
#include "run/run_events.h"

namespace cutpilot::cli {

// What `cutpilot run` was asked to do, plus the hooks a view on another thread uses.
struct RunOptions {
  std::string plan_path;
  bool headless = false;
  bool json = false;
  std::vector<std::string> approve;
  bool approve_all = false;
  std::map<std::string, std::string> approve_confirm;  // --approve STEP=TEXT
  bool resume = false;
  bool new_run = false;      // --new-run: start over although an earlier run would refuse it
  std::string new_run_name;  // --new-run=NAME: the plan's name, typed (past a point of no return)
  std::string state_dir;     // the run's directory; "" for the default (or, resuming, the latest)
  plans::OnFailure on_failure = plans::OnFailure::kWait;  // --on-failure
  bool abort_at_start = false;  // `cutpilot abort` of a run whose cockpit is gone
  std::string plan_dir;         // where the plan's runs and lock live; "" for plan_state_dir()
  // A view's hooks (the TUI): events go to sink instead of the printer; wake_fd is
  // readable when take_commands has commands; should_leave says the view is gone.
  plans::EventSink sink;
  int wake_fd = -1;
  std::function<std::vector<plans::Command>()> take_commands;
  std::function<bool()> should_leave;
};

// The signals that make a run (or the demo) stop: SIGINT, SIGTERM, SIGHUP. Blocked and read
// from a signalfd, so whatever runs afterwards (the demo's lab shutdown) always runs.
sigset_t stop_signals();

// Reads `cutpilot run` arguments; kOk, or kUsage after printing what is wrong.
int parse_run_options(const std::vector<std::string>& args, RunOptions& options);

// Runs (or resumes) the plan; the exit code per DESIGN.md (0, 1, 3).
int run_plan(const RunOptions& options);

// Where runs keep their state by default: $XDG_STATE_HOME/cutpilot or ~/.local/state/cutpilot.
std::string default_state_root();

// The plan file's name without its extension, made safe for a directory name (the start of
// plan_state_dir()'s name).
std::string plan_slug(const std::string& plan_path);

// `cutpilot abort` of a run whose cockpit is gone: takes the run in state_dir up from its
// journal, aborts it (rollbacks in reverse, up to a point of no return) and ends.
int abort_stopped_run(const std::string& state_dir);

}  // namespace cutpilot::cli
