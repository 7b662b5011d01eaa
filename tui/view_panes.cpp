#include <algorithm>
#include <cstdlib>
#include <string>

#include "plans/show.h"
#include "tui/format.h"
#include "tui/panes.h"

namespace cutpilot::tui {
namespace {

using plans::StepState;

// How a step state looks: a glyph (ASCII and UTF-8), a short label, a role.
struct StateLook {
  const char* ascii;
  const char* utf8;
  const char* label;
  const char* words;  // for the detail pane
  Role role;
};

const StateLook& look(StepState state) {
  static constexpr StateLook kLooks[] = {
      {".", "\u00b7", "", "pending", Role::kDim},
      {"?", "?", "APPROVE?", "awaiting approval", Role::kWarn},
      {">", "\u25b6", "running", "running", Role::kActive},
      {"+", "\u2713", "ok", "succeeded", Role::kGood},
      {"x", "\u2717", "FAILED", "failed", Role::kBad},
      {"-", "-", "skipped", "skipped", Role::kDim},
      {"<", "\u21b6", "rolled", "rolled back", Role::kWarn},
  };
  return kLooks[static_cast<int>(state)];
}

const char* glyph(const StateLook& l, const Style& style) {
  return style.utf8 ? l.utf8 : l.ascii;
}

// Non-ASCII bytes become '?' on a terminal that does not take UTF-8.
std::string for_terminal(std::string_view text, bool utf8) {
  std::string out(text);
  if (!utf8)
    for (char& c : out)
      if (static_cast<unsigned char>(c) >= 0x80) c = '?';
  return out;
}

// A pane's first row: its title, highlighted when the pane has the focus.
void header(WINDOW* win, const std::string& title, bool focused, const Style& style) {
  const attr_t attr = style(focused ? Role::kFocused : Role::kHeader);
  fill_row(win, 0, attr);
  put(win, 0, 0, " " + title, attr);
}

// The first row to show so that row `selected` of `count` is visible in `height` rows.
int scroll_top(int selected, int count, int height) {
  if (height <= 0 || count <= height) return 0;
  return std::clamp(selected - height / 2, 0, count - height);
}

std::string downtime_text(const DowntimeView& d, Clock::time_point now, Role& role) {
  using State = DowntimeView::State;
  const std::string predicted =
      d.predicted_s ? (d.at_least ? ">" : "~") + clock_text(*d.predicted_s) : "?";
  const std::string budget = d.budget_s ? clock_text(*d.budget_s) : "-";
  const double elapsed = d.elapsed(now);
  const DowntimeView::Budget level = d.budget_level(now);
  role = level == DowntimeView::Budget::kOver   ? Role::kBad
         : level == DowntimeView::Budget::kNear ? Role::kWarn
                                                : Role::kNormal;
  switch (d.state) {
    case State::kNone:
      return d.budget_s ? "budget " + budget : "";
    case State::kPredicted:
      role =
          d.predicted_s && d.budget_s && *d.predicted_s > *d.budget_s ? Role::kWarn : Role::kNormal;
      return "downtime " + predicted + "/" + budget;
    case State::kStarted:
      if (role == Role::kNormal) role = Role::kActive;
      return "DOWNTIME " + clock_text(elapsed) + "/" + predicted + "/" + budget;
    case State::kEnded:
      return "downtime was " + clock_text(elapsed) +
             (d.predicted_at_start_s ? " (predicted " + clock_text(*d.predicted_at_start_s) + ")"
                                     : "");
  }
  return "";
}

}  // namespace

int put(WINDOW* win, int y, int x, std::string_view text, attr_t attr, int width) {
  const int room = getmaxx(win) - x;
  if (width < 0 || width > room) width = room;
  if (width <= 0 || y < 0 || y >= getmaxy(win)) return x;
  // Text from the model is already printable; plan text goes through the same gate. Without
  // a UTF-8 locale ncurses would print a non-ASCII byte as several cells ("M-x").
  std::string shown = fit(printable(text), width);
  if (MB_CUR_MAX == 1)
    for (char& c : shown)
      if (static_cast<unsigned char>(c) >= 0x80) c = '?';
  wattrset(win, attr);
  mvwaddstr(win, y, x, shown.c_str());
  wattrset(win, A_NORMAL);
  return x + text_width(shown);
}

void fill_row(WINDOW* win, int y, attr_t attr) {
  wattrset(win, attr);
  wmove(win, y, 0);
  for (int x = 0; x < getmaxx(win); ++x)
    waddch(win, ' ');
  wattrset(win, A_NORMAL);
}

void draw_top(WINDOW* win, const Model& model, const Style& style, Clock::time_point now) {
  werase(win);
  const attr_t base = style(Role::kFocused);
  fill_row(win, 0, base);
  std::string run;
  Role run_role = Role::kFocused;
  if (const auto& ended = model.ended()) {
    run = ended->state + " " + clock_text(ended->seconds);
    run_role = ended->state == "succeeded" ? Role::kGood : Role::kBad;
  } else {
    run = "run " + clock_text(std::chrono::duration<double>(now - model.started()).count());
  }
  Role down_role = Role::kNormal;
  const std::string down = downtime_text(model.downtime(), now, down_role);
  const size_t waiting = model.awaiting_approval();
  const std::string approvals = waiting ? std::to_string(waiting) + " to approve" : "";
  const std::string sep = style.utf8 ? " \u2502 " : " | ";
  // Everything but the name first: the name gets the room that is left.
  const int fixed = text_width(model.phase()) + text_width(run) + text_width(down) +
                    text_width(approvals) + 4 * text_width(sep) + 1;
  const int name_room = std::max(8, getmaxx(win) - fixed);
  int x = put(win, 0, 0, " " + model.plan().settings.name, base, name_room + 1);
  x = put(win, 0, x, sep + model.phase() + sep, base);
  x = put(win, 0, x, run, run_role == Role::kFocused ? base : style(run_role) | A_REVERSE);
  if (!down.empty()) {
    x = put(win, 0, x, sep, base);
    x = put(win, 0, x, down, down_role == Role::kNormal ? base : style(down_role) | A_REVERSE);
  }
  if (!approvals.empty()) {
    x = put(win, 0, x, sep, base);
    put(win, 0, x, approvals, style(Role::kWarn) | A_REVERSE);
  }
}

void draw_banner(WINDOW* win, const Model& model, const Style& style) {
  werase(win);
  const StepView* step = model.point_of_no_return();
  if (!step) return;
  fill_row(win, 0, style(Role::kBanner));
  put(win, 0, 0,
      " POINT OF NO RETURN: " + step->id +
          " awaits approval. After it, abort no longer rolls back the steps before it.",
      style(Role::kBanner));
}

void draw_steps(WINDOW* win, const Model& model, const UiState& ui, const Style& style,
                Clock::time_point now) {
  werase(win);
  const auto& steps = model.steps();
  header(win, "Steps (" + std::to_string(steps.size()) + ")", ui.focus == Pane::kSteps, style);
  // Rows: a phase heading before each phase's first step, then the steps (index + 1).
  std::vector<long> rows;
  int selected_row = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (i == 0 || steps[i].phase != steps[i - 1].phase) rows.push_back(-static_cast<long>(i) - 1);
    if (i == ui.step) selected_row = static_cast<int>(rows.size());
    rows.push_back(static_cast<long>(i) + 1);
  }
  const int height = getmaxy(win) - 1;
  const int width = getmaxx(win);
  const int first = scroll_top(selected_row, static_cast<int>(rows.size()), height);
  for (int r = 0; r < height && first + r < static_cast<int>(rows.size()); ++r) {
    const long row = rows[first + r];
    const int y = r + 1;
    if (row < 0) {
      put(win, y, 0, "- " + steps[-row - 1].phase + " ", style(Role::kHeader));
      continue;
    }
    const StepView& step = steps[row - 1];
    const StateLook& l = look(step.state);
    const bool selected = static_cast<size_t>(row - 1) == ui.step;
    if (selected) fill_row(win, y, style(Role::kSelected));
    const attr_t extra = selected ? A_REVERSE : 0;
    put(win, y, 1, for_terminal(glyph(l, style), style.utf8), style(l.role) | extra);
    const double elapsed = step.elapsed(now);
    const std::string time =
        step.running_since || elapsed >= 1 ? clock_text(elapsed) : std::string();
    // " id  LABEL    12:34": the id takes what the label (8) and the time (6) leave.
    put(win, y, 3, step.id, style(Role::kNormal) | extra, width - 3 - 8 - 6 - 1);
    // A step approved ahead says so where its state is: it will not stop at its gate.
    if (step.pre_approved)
      put(win, y, width - 14, "pre-ok", style(Role::kWarn) | extra, 8);
    else
      put(win, y, width - 14, l.label, style(l.role) | extra, 8);
    put(win, y, width - 6, std::string(std::max<int>(0, 5 - text_width(time)), ' ') + time,
        style(Role::kNormal) | extra, 5);
  }
}

void draw_detail(WINDOW* win, const Model& model, const UiState& ui, const Style& style) {
  werase(win);
  if (ui.step >= model.steps().size()) {
    header(win, "Step", false, style);
    return;
  }
  const StepView& view = model.steps()[ui.step];
  const StateLook& l = look(view.state);
  header(win, "Step " + view.id, false, style);
  int x = put(win, 0, getmaxx(win) - 20, " ", style(Role::kHeader));
  put(win, 0, x, l.words, style(l.role) | A_REVERSE);
  const plans::Step* step = view.step;
  int y = 1;
  if (step) {
    std::string marks = step->title != step->id ? step->title + "  " : "";
    marks += "[" + step->phase + "]";
    if (step->gate == plans::Gate::kApprove) marks += "  gate";
    if (step->confirm) marks += "  confirm \"" + *step->confirm + "\"";
    if (step->downtime == plans::Downtime::kStart) marks += "  downtime starts";
    if (step->downtime == plans::Downtime::kEnd) marks += "  downtime ends";
    x = put(win, y, 0, marks, style(Role::kNormal));
    if (step->point_of_no_return) put(win, y, x, "  POINT OF NO RETURN", style(Role::kBad));
    ++y;
    const std::string host = step->on.empty() ? std::string() : step->on.front();
    const std::string more =
        step->on.size() > 1 ? " (+" + std::to_string(step->on.size() - 1) + " hosts)" : "";
    x = put(win, y, 0, "on " + (host.empty() ? "the cockpit" : host) + more + ": ",
            style(Role::kDim));
    put(win, y++, x, plans::describe_action(model.plan(), *step, step->action, host),
        style(Role::kNormal));
    x = put(win, y, 0, "rollback: ", style(Role::kDim));
    put(win, y++, x,
        step->rollback ? plans::describe_action(model.plan(), *step, *step->rollback, host)
                       : "none",
        style(Role::kNormal));
  }
  if (!view.detail.empty()) put(win, y++, 0, view.detail, style(l.role));
  const auto& lines = view.last_lines;
  const int room = getmaxy(win) - y;
  for (int i = std::max(0, static_cast<int>(lines.size()) - room);
       i < static_cast<int>(lines.size()); ++i)
    put(win, y++, 0, "| " + lines[i], style(Role::kDim));
}

void draw_hosts(WINDOW* win, const Model& model, const UiState& ui, const Style& style) {
  werase(win);
  const auto& hosts = model.hosts();
  header(win, "Hosts (" + std::to_string(hosts.size()) + ")", ui.focus == Pane::kHosts, style);
  const int height = getmaxy(win) - 1;
  const int first = scroll_top(static_cast<int>(ui.host), static_cast<int>(hosts.size()), height);
  size_t name_width = 4;
  for (const HostView& host : hosts)
    name_width = std::max(name_width, host.name.size());
  const int name_cols = std::min<int>(static_cast<int>(name_width), getmaxx(win) / 3);
  for (int r = 0; r < height && first + r < static_cast<int>(hosts.size()); ++r) {
    const HostView& host = hosts[first + r];
    const int y = r + 1;
    const bool selected = static_cast<size_t>(first + r) == ui.host && ui.focus == Pane::kHosts;
    const attr_t extra = selected ? A_REVERSE : 0;
    if (selected) fill_row(win, y, style(Role::kSelected));
    Role role = Role::kDim;
    const char* mark = ".";
    if (host.state == "ready") {
      role = Role::kGood;
      mark = style.utf8 ? "\u2713" : "+";
    } else if (host.state == "connecting") {
      role = Role::kWarn;
      mark = "~";
    } else if (host.state == "lost" || host.state == "failed") {
      role = Role::kBad;
      mark = "x";
    }
    put(win, y, 1, mark, style(role) | extra);
    put(win, y, 3, host.name, style(Role::kNormal) | extra, name_cols);
    int x =
        put(win, y, 4 + name_cols, host.state.empty() ? "-" : host.state, style(role) | extra, 10);
    x = 4 + name_cols + 11;
    if (!host.health.empty()) {
      const bool all = host.healthy == host.health.size();
      x = put(win, y, x,
              std::to_string(host.healthy) + "/" + std::to_string(host.health.size()) + " ok ",
              style(all ? Role::kGood : Role::kWarn) | extra);
    }
    if (!host.facts.empty()) x = put(win, y, x, host.facts + " ", style(Role::kDim) | extra);
    if (!host.error.empty()) put(win, y, x, host.error, style(Role::kBad) | extra);
  }
}

void draw_jobs(WINDOW* win, const Model& model, const UiState& ui, const Style& style) {
  werase(win);
  const std::vector<const JobView*> jobs = model.jobs();
  header(win, "Jobs (" + std::to_string(model.running_jobs()) + " running)",
         ui.focus == Pane::kJobs, style);
  const int height = getmaxy(win) - 1;
  const int width = getmaxx(win);
  const int first = std::min<int>(static_cast<int>(ui.job_top),
                                  std::max(0, static_cast<int>(jobs.size()) - height));
  int longest = 0;
  for (const JobView* job : jobs)
    longest = std::max(longest, text_width(job->step) + 1 + text_width(job->host));
  const int name_cols = std::clamp(longest, 8, std::max(8, width / 3));
  const int bar_cols = std::clamp(width / 5, 10, 40);
  for (int r = 0; r < height && first + r < static_cast<int>(jobs.size()); ++r) {
    const JobView& job = *jobs[first + r];
    const int y = r + 1;
    const Role role = job.state == JobState::kFailed ? Role::kBad
                      : job.state == JobState::kDone ? Role::kGood
                                                     : Role::kActive;
    put(win, y, 0, job.step + "@" + job.host, style(Role::kNormal), name_cols);
    int x = name_cols + 1;
    const std::optional<double> fraction = job.fraction();
    put(win, y, x, bar_text(fraction.value_or(0), bar_cols, style.utf8), style(role));
    x += bar_cols + 1;
    std::string text;
    if (fraction) {
      const int percent = static_cast<int>(*fraction * 100);  // down: 100 % only when whole
      text = std::string(percent < 10    ? "  "
                         : percent < 100 ? " "
                                         : "") +
             std::to_string(percent) + "% ";
    } else {
      text = "   ?% ";
    }
    text += bytes_text(job.bytes);
    if (job.total) text += "/" + bytes_text(*job.total);
    if (job.state == JobState::kRunning) {
      text += " " + rate_text(job.rate);
      if (job.eta_s) text += " ETA " + clock_text(*job.eta_s);
    } else {
      text += job.state == JobState::kDone ? " done" : " stopped";
    }
    if (job.files)
      text += " " + std::to_string(*job.files) +
              (job.files_total ? "/" + std::to_string(*job.files_total) : "") + " " + job.unit;
    if (!job.item.empty()) text += " " + job.item;
    put(win, y, x, text, style(job.state == JobState::kFailed ? Role::kBad : Role::kNormal));
  }
}

void draw_log(WINDOW* win, const Model& model, const UiState& ui, const Style& style) {
  werase(win);
  const LogQuery query = ui.log_query(model);
  std::string title = "Log";
  if (!query.step.empty()) title += " of step " + query.step;
  if (!query.host.empty()) title += " of host " + query.host;
  if (query.step.empty() && query.host.empty()) title += " (all)";
  if (!ui.filter.empty()) title += "  /" + ui.filter;
  title += ui.follow ? "  [follow]" : "  [paused]";
  header(win, title, ui.focus == Pane::kLog, style);
  const int height = getmaxy(win) - 1;
  const uint64_t end = ui.follow ? model.log().last_seq() : ui.log_end;
  const auto lines = model.log().page(query, end, static_cast<size_t>(std::max(0, height)));
  int y = 1;
  for (const LogLine* line : lines) {
    const Role role = line->stream == "stderr" && !line->notice             ? Role::kBad
                      : line->stream == "agent" || line->stream == "stderr" ? Role::kDim
                                                                            : Role::kNormal;
    // "02:14:07 db@target  line": when, and which step on which host, unless the pane is
    // already narrowed to that step or host.
    std::string who = line->at > 0 ? wall_clock_text(line->at) + " " : "";
    const bool step = !line->step.empty() && query.step.empty();
    const bool host = !line->host.empty() && query.host.empty();
    if (step || host)
      who += (step ? line->step : "") + (step && host ? "@" : "") + (host ? line->host : "") + " ";
    const int x = who.empty() ? 0 : put(win, y, 0, who, style(Role::kDim));
    put(win, y++, x, line->line, style(role));
  }
}

void draw_status(WINDOW* win, const Model& model, const UiState& ui, const Style& style) {
  werase(win);
  if (ui.prompt) {
    const int x = put(win, 0, 0, ui.prompt->question, style(Role::kWarn));
    put(win, 0, x, ui.prompt->typed + "_", style(Role::kNormal));
    return;
  }
  // The run's end outlasts any message: it is what the operator must see last.
  if (const auto& ended = model.ended()) {
    put(win, 0, 0,
        "The run " + ended->state + " after " + clock_text(ended->seconds) +
            ". q leaves the cockpit.",
        style(ended->state == "succeeded" ? Role::kGood : Role::kBad));
    return;
  }
  if (!ui.message.empty()) {
    put(win, 0, 0, ui.message, style(Role::kActive));
    return;
  }
  put(win, 0, 0,
      "? keys  Tab pane  a approve  s skip  r retry  x abort  / filter  f follow  q leave",
      style(Role::kDim));
}

void draw_help(WINDOW* win, const Style& style) {
  werase(win);
  wattrset(win, style(Role::kNormal));
  box(win, 0, 0);
  put(win, 0, 2, " Keys (any key closes) ", style(Role::kHeader));
  int y = 1;
  for (const KeyBinding& binding : key_table()) {
    if (y >= getmaxy(win) - 1) break;
    put(win, y, 2, binding.names, style(Role::kActive), 14);
    put(win, y++, 17, binding.help, style(Role::kNormal), getmaxx(win) - 19);
  }
}

}  // namespace cutpilot::tui
