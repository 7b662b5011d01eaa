// Runs after the fact: a run's status read from its journal when no cockpit answers, and the
// list of a plan's runs (`cutpilot status`, `cutpilot runs`).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cutpilot::cli {

// The status of the run in run_dir as its journal tells it, in the shape of a live cockpit's
// `status --json` plus "live": false; nullopt with error set when run_dir holds no journal.
std::optional<nlohmann::json> journal_status(const std::string& run_dir, double now_unix,
                                             std::string& error);

// Prints a status (live or from a journal) for people: the run, its downtime, a table of
// steps, each step's job results, and any journal damage.
void print_status(const nlohmann::json& status);

// The runs of the plan file at plan_path under the state root, oldest first: those in a plan
// directory named after it (plan_slug, alone or with a suffix) whose journal names that same
// file (a relative name in a journal cannot be checked and counts).
std::vector<std::string> runs_of_plan(const std::string& state_root, const std::string& plan_path);

// The run `cutpilot status` and `report` show: state_dir (or $CUTPILOT_STATE_DIR); else PLAN's
// newest run; else the one live cockpit; else the newest run of any plan. "" with error set
// when there is none.
std::string status_run_dir(const std::string& state_dir, const std::string& plan_path,
                           std::string& error);

// Every run directory under the state root (all plans), oldest first by start time.
std::vector<std::string> all_runs(const std::string& state_root);

}  // namespace cutpilot::cli
