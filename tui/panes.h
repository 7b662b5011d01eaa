// Inside the view: the drawing of each pane, one function each, reading the model and the
// UI state. Private to tui/ (view.cpp lays the windows out; view_panes.cpp fills them).
#pragma once

#include <curses.h>

#include <string_view>

#include "tui/keys.h"
#include "tui/model.h"

namespace cutpilot::tui {

// What a piece of text means, which picks its colour (or, in monochrome, its attribute).
enum class Role {
  kNormal,
  kGood,
  kWarn,
  kBad,
  kActive,
  kDim,
  kHeader,
  kFocused,
  kBanner,
  kSelected
};

// How roles look on this terminal, and whether it takes UTF-8.
struct Style {
  bool utf8 = false;
  attr_t roles[10] = {};

  // The attribute for role.
  attr_t operator()(Role role) const { return roles[static_cast<int>(role)]; }
};

// Writes text at (y, x) in role, cut to width cells (to the window's edge when width < 0);
// returns the column after it.
int put(WINDOW* win, int y, int x, std::string_view text, attr_t attr, int width = -1);
// Fills row y of win with blanks in attr (for header rows and banners).
void fill_row(WINDOW* win, int y, attr_t attr);

// The top bar: plan name, phase, run state, downtime clock, approvals.
void draw_top(WINDOW* win, const Model& model, const Style& style, Clock::time_point now);
// The point-of-no-return banner.
void draw_banner(WINDOW* win, const Model& model, const Style& style);
// The step list, grouped by phase.
void draw_steps(WINDOW* win, const Model& model, const UiState& ui, const Style& style,
                Clock::time_point now);
// The selected step: host, command, rollback, last lines.
void draw_detail(WINDOW* win, const Model& model, const UiState& ui, const Style& style);
// The hosts: connection, health, facts, last error.
void draw_hosts(WINDOW* win, const Model& model, const UiState& ui, const Style& style);
// The jobs' progress bars.
void draw_jobs(WINDOW* win, const Model& model, const UiState& ui, const Style& style);
// The log of the selection, filtered, following or scrolled back.
void draw_log(WINDOW* win, const Model& model, const UiState& ui, const Style& style);
// The bottom line: a prompt, a message, the run's end, or key hints.
void draw_status(WINDOW* win, const Model& model, const UiState& ui, const Style& style);
// The `?` key table.
void draw_help(WINDOW* win, const Style& style);

}  // namespace cutpilot::tui
