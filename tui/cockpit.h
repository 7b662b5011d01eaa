// The cockpit's loop: the operator's keys, the run's events and terminal resizes in one
// poll, a frame at most every ~100 ms and only when something changed. It never waits on
// the network: the run lives on its own thread behind a plans::RunLink.
#pragma once

#include <unistd.h>

#include <chrono>
#include <map>
#include <string>

#include "plans/plan.h"
#include "run/run_link.h"
#include "tui/model.h"

namespace cutpilot::tui {

// What run_cockpit returns when the operator left before the run ended (the run's jobs
// keep going on the agents; `cutpilot run --resume` comes back to them).
inline constexpr int kCockpitLeft = 4;
// What run_cockpit returns when the terminal cannot host it (ncurses does not know TERM):
// the caller falls back to line output.
inline constexpr int kCockpitNoTerminal = 5;

// How the cockpit runs.
struct CockpitOptions {
  int in_fd = STDIN_FILENO;    // the operator's keys
  int out_fd = STDOUT_FILENO;  // the terminal drawn on
  std::string by;              // the operator, user@host; empty: this process's user and host
  bool color = true;           // false, or NO_COLOR set, draws in monochrome
  bool wait_after_end = true;  // after the run ended, stay until the operator presses q
  std::chrono::milliseconds frame_interval{100};  // the shortest time between two frames
  ModelOptions model;                             // scrollback lines, finished jobs kept
  std::map<std::string, std::string> host_facts;  // host -> "agent 0.1 load 0.3 disk 40G free"
};

// Blocks SIGWINCH in the calling thread. Call it before starting the run's thread, so that
// the thread inherits the mask and every resize reaches the cockpit's signalfd.
void block_resize_signal();

// Shows the run of plan whose events arrive on link, and sends the operator's commands
// back on it. Returns when the operator leaves before the end (kCockpitLeft), or once the
// run ended and the operator dismissed it (at once with wait_after_end false): 0 when the
// run succeeded, 1 when it failed, 3 when aborted. It calls link.close_view() before it
// returns, and the terminal is restored by then.
int run_cockpit(const plans::Plan& plan, plans::RunLink& link, const CockpitOptions& options = {});

}  // namespace cutpilot::tui
