// What a run tells its views (headless lines, --json, the TUI) and what the operator
// tells the run. The event kinds are DESIGN.md's --json schema, one struct each.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>

namespace cutpilot::plans {

// A step's state, as DESIGN.md names it.
enum class StepState {
  kPending,
  kAwaitingApproval,
  kRunning,
  kSucceeded,
  kFailed,
  kSkipped,
  kRolledBack,
};

// The schema's name of a state ("awaiting-approval", ...).
const char* state_name(StepState state);
// The state called name; nullopt for anything else.
std::optional<StepState> parse_state(std::string_view name);
// True for states a step does not leave without an operator (succeeded, skipped, rolled-back).
bool is_final(StepState state);
// True for states a step has once it stopped: the final ones and failed.
bool is_settled(StepState state);

// A step changed state; detail says why when there is something to say (an error, "retry 2/3").
struct StepEvent {
  std::string step;
  StepState state = StepState::kPending;
  std::string detail;
  bool pre_approved = false;  // pending with an approval given ahead (views mark it)
};

// How far a job has come. total and eta_s are unknown when absent.
struct ProgressEvent {
  std::string step;
  std::string host;
  uint64_t bytes = 0;
  std::optional<uint64_t> total;
  double rate = 0;  // bytes per second
  std::optional<double> eta_s;
  std::optional<uint64_t> files;        // syncs' files, db copies' tables
  std::optional<uint64_t> files_total;  // syncs' files, db copies' tables
  std::string unit = "files";           // what files counts: "files", "entries" or "tables"
  std::string item;                     // the current table or file, when known
};

// A line of a job's output, or something the cockpit or agent says about a step.
struct LogEvent {
  std::string step;              // empty: about the run or a host, not a step
  std::string host;              // empty: the cockpit itself
  std::string stream = "agent";  // stdout, stderr or agent
  std::string line;
  bool notice = false;  // a stderr line known to be information (pg_dump -v, nginx [notice])
  double at = 0;        // the unix time it arrived (0: not known)
};

// Whether a command's stderr line is information rather than trouble: pg_dump's and
// pg_restore's -v progress, mysqldump's --verbose "-- " lines, nginx's [notice]/[info] and its
// "syntax is ok" / "test is successful".
bool stderr_is_notice(std::string_view line);

// A health target's status changed (a container, a URL, a port).
struct HealthEvent {
  std::string step;
  std::string host;
  std::string target;
  std::string status;
};

// A host's link changed state (connecting, ready, lost, failed), or its facts arrived.
struct HostEvent {
  std::string host;
  std::string state;
  std::string error;
  std::string facts;  // one line once the agent told them: agent version, load, free disk
};

// The downtime window started or ended, or its prediction changed (before or while it runs).
struct DowntimeEvent {
  std::string state;   // "predicted", "started" or "ended"
  double seconds = 0;  // elapsed so far (0 before it started)
  std::optional<double> predicted_s;
  std::optional<double> budget_s;
  bool at_least = false;  // a step or gate of the window has no source: predicted_s is a floor
  std::string basis;      // "predicted": the prediction in words (run/prediction.h)
  // "ended": what was predicted when the window started.
  std::optional<double> predicted_at_start_s;
};

// The run ended.
struct RunEvent {
  std::string state;  // succeeded, failed, aborted
  double seconds = 0;
};

// One thing that happened in a run.
using Event = std::variant<StepEvent, ProgressEvent, LogEvent, HealthEvent, HostEvent,
                           DowntimeEvent, RunEvent>;

// Where a run sends its events; called on the run's own loop, must not block.
using EventSink = std::function<void(const Event&)>;

// What the operator can ask of a run.
enum class CommandKind { kApprove, kSkip, kRetry, kAbort, kRevoke };

// One operator command. `by` is who (user@host) for the audit log.
struct Command {
  CommandKind kind = CommandKind::kApprove;
  std::string step;  // empty for abort
  std::string by;
  std::string confirm;  // the typed confirmation text of a destructive step
  bool ahead = false;   // approve: pre-approve a step that is not waiting yet (`--ahead`)
};

// The command's verb as the CLI and the control socket spell it.
const char* command_name(CommandKind kind);

}  // namespace cutpilot::plans
