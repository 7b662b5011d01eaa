#include "tui/keys.h"

#include <curses.h>

#include <algorithm>

namespace cutpilot::tui {
namespace {

using plans::CommandKind;
using plans::StepState;

constexpr int kNone = -1;
constexpr int kCtrlC = 3;
constexpr int kCtrlL = 12;
constexpr int kEscape = 27;

constexpr KeyBinding kKeys[] = {
    {{KEY_UP, 'k', kNone}, "Up k", KeyAction::kUp, "previous step / host / job / older line"},
    {{KEY_DOWN, 'j', kNone}, "Down j", KeyAction::kDown, "next step / host / job / newer line"},
    {{KEY_PPAGE, 'b', kNone}, "PgUp b", KeyAction::kPageUp, "a page up"},
    {{KEY_NPAGE, ' ', kNone}, "PgDn Space", KeyAction::kPageDown, "a page down"},
    {{KEY_HOME, 'g', kNone}, "Home g", KeyAction::kFirst, "first row (log: oldest line)"},
    {{KEY_END, 'G', kNone}, "End G", KeyAction::kLast, "last row (log: newest, follow)"},
    {{'\t', KEY_RIGHT, 'l'}, "Tab Right l", KeyAction::kNextPane, "next pane"},
    {{KEY_BTAB, KEY_LEFT, 'h'}, "S-Tab Left h", KeyAction::kPrevPane, "previous pane"},
    {{'a', kNone, kNone}, "a", KeyAction::kApprove, "approve the gated step (asks first)"},
    {{'s', kNone, kNone}, "s", KeyAction::kSkip, "skip the selected step (asks first)"},
    {{'r', kNone, kNone}, "r", KeyAction::kRetry, "retry the selected failed step (asks)"},
    {{'x', kNone, kNone}, "x", KeyAction::kAbort, "abort the run with rollback (asks)"},
    {{'/', kNone, kNone}, "/", KeyAction::kFilter, "filter the log (empty: no filter)"},
    {{'f', kNone, kNone},
     "f",
     KeyAction::kFollow,
     "follow the run (current step, newest line) on/off"},
    {{'L', kNone, kNone}, "L", KeyAction::kAllLines, "log: every line / the selection's"},
    {{'?', KEY_F(1), kNone}, "? F1", KeyAction::kHelp, "this table"},
    {{kCtrlL, kNone, kNone}, "C-l", KeyAction::kRedraw, "redraw the screen"},
    {{'q', kCtrlC, kNone}, "q C-c", KeyAction::kLeave, "leave; the run's jobs keep going"},
};

bool is_enter(int key) {
  return key == '\n' || key == '\r' || key == KEY_ENTER;
}
bool is_backspace(int key) {
  return key == KEY_BACKSPACE || key == 127 || key == 8;
}

const StepView* selected_step(const UiState& ui, const Model& model) {
  return ui.step < model.steps().size() ? &model.steps()[ui.step] : nullptr;
}

// The step `a` approves: the selected one when it waits, else the first that waits.
const StepView* approval_target(const UiState& ui, const Model& model) {
  const StepView* selected = selected_step(ui, model);
  if (selected && selected->state == StepState::kAwaitingApproval) return selected;
  for (const StepView& step : model.steps())
    if (step.state == StepState::kAwaitingApproval) return &step;
  return nullptr;
}

plans::Command command(CommandKind kind, std::string step, const UiState& ui) {
  return plans::Command{.kind = kind, .step = std::move(step), .by = ui.by};
}

void ask(UiState& ui, std::string question, plans::Command cmd) {
  ui.prompt = Prompt{
      .kind = Prompt::Kind::kYesNo, .question = std::move(question), .command = std::move(cmd)};
}

void approve(UiState& ui, const Model& model) {
  const StepView* step = approval_target(ui, model);
  if (!step) {
    ui.message = "no step is awaiting approval";
    return;
  }
  plans::Command cmd = command(CommandKind::kApprove, step->id, ui);
  if (step->step && step->step->confirm) {
    ui.prompt = Prompt{.kind = Prompt::Kind::kTypeConfirm,
                       .question = "Approve " + step->id + ": type \"" + *step->step->confirm +
                                   "\" and Enter (Esc cancels): ",
                       .command = std::move(cmd),
                       .expected = *step->step->confirm};
    return;
  }
  const bool ponr = step->step && step->step->point_of_no_return;
  ask(ui,
      "Approve " + step->id + (ponr ? " (POINT OF NO RETURN)" : "") + " on " + step->hosts +
          "? [y/N] ",
      std::move(cmd));
}

void skip(UiState& ui, const Model& model) {
  const StepView* step = selected_step(ui, model);
  if (!step || (step->state != StepState::kPending && step->state != StepState::kAwaitingApproval &&
                step->state != StepState::kFailed)) {
    ui.message = step ? step->id + " cannot be skipped now" : "no step selected";
    return;
  }
  ask(ui, "Skip " + step->id + "? [y/N] ", command(CommandKind::kSkip, step->id, ui));
}

void retry(UiState& ui, const Model& model) {
  const StepView* step = selected_step(ui, model);
  if (!step || step->state != StepState::kFailed) {
    ui.message = step ? step->id + " has not failed: nothing to retry" : "no step selected";
    return;
  }
  ask(ui, "Retry " + step->id + "? [y/N] ", command(CommandKind::kRetry, step->id, ui));
}

void abort_run(UiState& ui) {
  ask(ui, "Abort the run and roll back the finished steps? [y/N] ",
      command(CommandKind::kAbort, "", ui));
}

// A key while a prompt is open: the prompt takes it.
std::optional<plans::Command> answer(UiState& ui, int key) {
  Prompt& prompt = *ui.prompt;
  std::optional<plans::Command> out;
  if (prompt.kind == Prompt::Kind::kYesNo) {
    if ((key == 'y' || key == 'Y') && prompt.leave) {
      ui.leave = true;
    } else if (key == 'y' || key == 'Y') {
      out = prompt.command;
      ui.message = std::string(plans::command_name(out->kind)) + " sent" +
                   (out->step.empty() ? "" : " for " + out->step);
    } else {
      ui.message = "cancelled";
    }
    ui.prompt.reset();
    return out;
  }
  if (key == kEscape || key == kCtrlC) {
    ui.message = "cancelled";
    ui.prompt.reset();
  } else if (is_backspace(key)) {
    if (!prompt.typed.empty()) prompt.typed.pop_back();
  } else if (is_enter(key)) {
    if (prompt.kind == Prompt::Kind::kFilter) {
      ui.filter = prompt.typed;
      ui.message = ui.filter.empty() ? "filter cleared" : "filter: " + ui.filter;
    } else if (prompt.typed == prompt.expected) {
      out = prompt.command;
      out->confirm = prompt.typed;
      ui.message = "approve sent for " + out->step;
    } else {
      ui.message = "the text does not match: not approved";
    }
    ui.prompt.reset();
  } else if (key >= 0x20 && key < 0x7f && prompt.typed.size() < 200) {
    prompt.typed.push_back(static_cast<char>(key));
  }
  return out;
}

void move_selection(UiState& ui, Model& model, long delta) {
  const auto moved = [&](size_t at, size_t count) {
    if (count == 0) return size_t{0};
    const long next =
        std::clamp<long>(static_cast<long>(at) + delta, 0, static_cast<long>(count) - 1);
    return static_cast<size_t>(next);
  };
  // A list pane: its selection moves, and the log shows that selection's lines.
  const auto select = [&](size_t& at, size_t count, uint32_t parts) {
    at = moved(at, count);
    ui.log_source = ui.focus;
    ui.log_all = false;
    model.touch(parts | part::kLog);
  };
  switch (ui.focus) {
    case Pane::kSteps:
      ui.step_follows = false;
      select(ui.step, model.steps().size(), part::kSteps);
      break;
    case Pane::kHosts:
      select(ui.host, model.hosts().size(), part::kHosts);
      break;
    case Pane::kJobs:
      ui.job_top = moved(ui.job_top, model.jobs().size());
      model.touch(part::kJobs);
      break;
    case Pane::kLog: {
      const LogQuery query = ui.log_query(model);
      const uint64_t from = ui.follow ? model.log().last_seq() : ui.log_end;
      ui.log_end = model.log().move(query, from, delta);
      // Scrolling back to the newest line follows again.
      ui.follow = delta > 0 && model.log().move(query, ui.log_end, 1) == ui.log_end;
      model.touch(part::kLog);
      break;
    }
  }
}

void switch_pane(UiState& ui, Model& model, int delta) {
  ui.focus = static_cast<Pane>((static_cast<int>(ui.focus) + 4 + delta) % 4);
  model.touch(part::kSteps | part::kHosts | part::kJobs | part::kLog);
}

}  // namespace

std::span<const KeyBinding> key_table() {
  return kKeys;
}

std::optional<KeyAction> action_for_key(int key) {
  for (const KeyBinding& binding : kKeys)
    if (std::find(binding.keys.begin(), binding.keys.end(), key) != binding.keys.end())
      return binding.action;
  return std::nullopt;
}

void follow_run(UiState& ui, Model& model) {
  if (!ui.step_follows) return;
  const std::optional<size_t> current = model.current_step();
  if (!current || *current == ui.step) return;
  ui.step = *current;
  model.touch(part::kSteps | part::kLog);
}

LogQuery UiState::log_query(const Model& model) const {
  LogQuery query{.text = filter};
  if (log_all) return query;
  if (log_source == Pane::kHosts && host < model.hosts().size())
    query.host = model.hosts()[host].name;
  else if (log_source == Pane::kSteps && step < model.steps().size())
    query.step = model.steps()[step].id;
  return query;
}

std::optional<plans::Command> handle_key(UiState& ui, Model& model, int key) {
  model.touch(part::kStatus);
  if (ui.prompt) {
    const bool filter = ui.prompt->kind == Prompt::Kind::kFilter;
    auto out = answer(ui, key);
    if (filter) model.touch(part::kLog);
    return out;
  }
  ui.message.clear();
  if (ui.help) {
    // Any key closes the table; the panes under it are drawn again.
    ui.help = false;
    model.touch(part::kAll);
    return std::nullopt;
  }
  const std::optional<KeyAction> action = action_for_key(key);
  if (!action) return std::nullopt;
  const bool ended = model.ended().has_value();
  switch (*action) {
    case KeyAction::kUp:
      move_selection(ui, model, -1);
      break;
    case KeyAction::kDown:
      move_selection(ui, model, 1);
      break;
    case KeyAction::kPageUp:
      move_selection(ui, model, -ui.page);
      break;
    case KeyAction::kPageDown:
      move_selection(ui, model, ui.page);
      break;
    case KeyAction::kFirst:
      move_selection(ui, model, -1000000000L);
      break;
    case KeyAction::kLast:
      move_selection(ui, model, 1000000000L);
      break;
    case KeyAction::kNextPane:
      switch_pane(ui, model, 1);
      break;
    case KeyAction::kPrevPane:
      switch_pane(ui, model, -1);
      break;
    case KeyAction::kApprove:
    case KeyAction::kSkip:
    case KeyAction::kRetry:
    case KeyAction::kAbort:
      if (ended) {
        ui.message = "the run has ended";
      } else if (*action == KeyAction::kApprove) {
        approve(ui, model);
      } else if (*action == KeyAction::kSkip) {
        skip(ui, model);
      } else if (*action == KeyAction::kRetry) {
        retry(ui, model);
      } else {
        abort_run(ui);
      }
      break;
    case KeyAction::kFilter:
      ui.prompt =
          Prompt{.kind = Prompt::Kind::kFilter, .question = "Filter the log: ", .typed = ui.filter};
      break;
    case KeyAction::kFollow:
      ui.follow = !ui.follow;
      ui.step_follows = ui.follow;
      ui.log_end = model.log().last_seq();
      ui.message = ui.follow ? "following the run" : "log paused";
      follow_run(ui, model);
      model.touch(part::kLog);
      break;
    case KeyAction::kAllLines:
      ui.log_all = !ui.log_all;
      ui.message = ui.log_all ? "log: every line" : "log: the selection's lines";
      model.touch(part::kLog);
      break;
    case KeyAction::kHelp:
      ui.help = true;
      model.touch(part::kAll);
      break;
    case KeyAction::kRedraw:
      model.touch(part::kAll | part::kLayout);
      break;
    case KeyAction::kLeave:
      // Inside the downtime window the service is down: leaving must be meant.
      if (!ended && model.downtime().state == DowntimeView::State::kStarted) {
        ui.prompt = Prompt{.kind = Prompt::Kind::kYesNo,
                           .question =
                               "The downtime window is open. Leave the cockpit anyway "
                               "(the run's jobs keep going)? [y/N] ",
                           .leave = true};
        break;
      }
      ui.leave = true;
      break;
  }
  return std::nullopt;
}

}  // namespace cutpilot::tui
