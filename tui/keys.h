// The operator's keys: one table (shown by `?`), the UI state they move, and what a key
// asks of the run. No ncurses calls here, so the tests drive it with plain key codes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "run/run_events.h"
#include "tui/model.h"

namespace cutpilot::tui {

// The panes that take the focus, in Tab order.
enum class Pane { kSteps, kHosts, kJobs, kLog };

// What a key does.
enum class KeyAction {
  kUp,
  kDown,
  kPageUp,
  kPageDown,
  kFirst,
  kLast,
  kNextPane,
  kPrevPane,
  kApprove,
  kSkip,
  kRetry,
  kAbort,
  kFilter,
  kFollow,
  kAllLines,
  kHelp,
  kRedraw,
  kLeave,
};

// One row of the key table: up to three keys (ncurses codes), their names, what they do.
struct KeyBinding {
  std::array<int, 3> keys;
  const char* names;
  KeyAction action;
  const char* help;
};

// Every key the cockpit knows, in the order `?` lists them.
std::span<const KeyBinding> key_table();
// The action bound to key, or nullopt.
std::optional<KeyAction> action_for_key(int key);

// A question on the bottom line that the next keys answer.
struct Prompt {
  enum class Kind { kYesNo, kTypeConfirm, kFilter };
  Kind kind = Kind::kYesNo;
  std::string question;
  plans::Command command;  // what answering yes (or typing expected) sends
  bool leave = false;      // answering yes leaves the cockpit instead of sending command
  std::string expected;    // kTypeConfirm: the step's confirm text
  std::string typed;       // kTypeConfirm and kFilter: what the operator typed so far
};

// What the operator looks at and has asked for: selections, scroll, the open prompt.
struct UiState {
  Pane focus = Pane::kSteps;
  size_t step = 0;                 // the selected step, an index in Model::steps()
  bool step_follows = true;        // the selection follows the run until the operator moves it
  size_t host = 0;                 // the selected host, an index in Model::hosts()
  size_t job_top = 0;              // the first job row shown
  Pane log_source = Pane::kSteps;  // the log shows the selected step's lines, or the host's
  bool log_all = true;   // the log shows every line (until the operator picks a step or host)
  bool follow = true;    // the log sticks to its newest line
  uint64_t log_end = 0;  // when not following: the seq of the log's bottom line
  std::string filter;    // the log shows only lines containing it
  std::optional<Prompt> prompt;
  bool help = false;
  std::string message;  // a one-line notice on the status line until the next key
  bool leave = false;   // the operator asked to leave the cockpit
  int page = 10;        // rows a page key moves (the view sets it from the pane's height)
  std::string by;       // the operator, user@host, for commands

  // The log lines the log pane shows.
  LogQuery log_query(const Model& model) const;
};

// Moves the selection to the step the run is at, unless the operator took it elsewhere.
void follow_run(UiState& ui, Model& model);

// Applies key to ui; returns a command to send to the run, if the key (or the answer to
// a prompt) asked for one. Marks what it changed in model's dirty bits.
std::optional<plans::Command> handle_key(UiState& ui, Model& model, int key);

}  // namespace cutpilot::tui
