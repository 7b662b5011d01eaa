// Where a plan's runs live and who holds them: the plan's state directory (keyed by the
// plan's identity, never by its file name alone), the locks a live cockpit holds, and the
// rule that a new run never starts over an earlier one by accident.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "plans/plan.h"
#include "run/journal.h"
#include "run/prediction.h"

namespace cutpilot::cli {

// The directory holding every run of the plan at plan_path: the file's name without its
// extension, a dash and the first 12 hex digits of the SHA-256 of its absolute path
// (`shop-1a2b3c4d5e6f`). Two plan.toml files in two folders never share it.
std::string plan_state_dir(const std::string& plan_path);

// The locks of one live cockpit: one on the plan (a second cockpit on the same plan meets
// it, whatever its state directory) and one on the run's directory. Released on destruction.
class RunLocks {
 public:
  RunLocks() = default;
  ~RunLocks();
  RunLocks(const RunLocks&) = delete;
  RunLocks& operator=(const RunLocks&) = delete;

  // Takes the plan's lock in plan_dir; false with error naming the cockpit that holds it.
  bool lock_plan(const std::string& plan_dir, std::string& error);
  // Takes the run's lock on state_dir and notes the holder in the plan's lock; false with
  // error set when another process holds it.
  bool lock_run(const std::string& state_dir, const std::string& run_id, std::string& error);

 private:
  int plan_fd_ = -1;
  int run_fd_ = -1;
};

// True when a live cockpit holds the run in state_dir (its lock is taken).
bool run_is_live(const std::string& state_dir);

// One earlier run of a plan, as its journal tells it.
struct EarlierRun {
  std::string dir;
  plans::JournalState journal;
  bool live = false;
  std::vector<std::string> past_no_return;  // point-of-no-return steps that ran
};

// Every run under plan_dir (directories and links to --state-dir runs), oldest first.
std::vector<EarlierRun> earlier_runs(const std::string& plan_dir, const plans::Plan& plan);

// What the plan's runs under plan_dir measured (each step unchanged since), skip_run left out:
// the downtime prediction's history.
plans::PastRuns past_of(const std::string& plan_dir, const plans::Plan& plan,
                        const std::string& skip_run);

// Why a new run of plan may not start over the latest earlier run; "" when it may.
// new_run: --new-run was given; confirmed_name: the plan's name typed with it
// (--new-run=NAME), needed once a run has gone past a point of no return.
std::string new_run_refusal(const plans::Plan& plan, const std::vector<EarlierRun>& runs,
                            bool new_run, const std::string& confirmed_name);

// Records a run kept outside plan_dir (--state-dir) as a link in plan_dir, so `--resume`,
// `runs` and the rule above find it. Returns a warning, or "".
std::string link_run(const std::string& plan_dir, const std::string& run_id,
                     const std::string& state_dir);

}  // namespace cutpilot::cli
