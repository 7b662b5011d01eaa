// The executor's side of the operator: approvals (at the gate or ahead) and their
// revocation, skip, retry, what a failure does, and abort with its rollbacks.
#include <algorithm>

#include "run/executor.h"

namespace cutpilot::plans {
namespace {

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items)
    out += (out.empty() ? "" : ", ") + item;
  return out;
}

}  // namespace

void Executor::operator_did(const std::string& verb, const std::string& step, const std::string& by,
                            nlohmann::json extra) {
  nlohmann::json record = {{"r", verb}, {"step", step}, {"by", by}};
  record.update(extra);
  journal(std::move(record));
  if (!journal_.audit(verb, step, by, plan_.sha256, options_.run_id))
    log("", "", "warning: " + journal_.error());
}

std::string Executor::approve(StepRun& run, const Command& command) {
  const std::string& id = run.step->id;
  const std::string is = state_name(run.state);
  if (!gated(*run.step)) return id + " has no gate to approve";
  if (run.approved)
    return id + " is already approved" +
           (run.state == StepState::kPending
                ? " (pre-approved; `cutpilot revoke " + id + "` takes it back)"
                : "");
  const bool waiting = run.state == StepState::kAwaitingApproval;
  if (!waiting && !(command.ahead && run.state == StepState::kPending))
    return id + " is not waiting for approval: it is " + is +
           (run.state == StepState::kPending ? " (to approve it before it is reached, say so: "
                                               "cutpilot approve " +
                                                   id + " --ahead)"
                                             : "");
  if (run.step->confirm && command.confirm != *run.step->confirm)
    return id + " needs its confirmation text typed exactly: " + *run.step->confirm;
  run.approved = true;
  run.approved_how = waiting ? "gate" : "ahead";
  run.approved_by = command.by;
  operator_did("approve", id, command.by + (waiting ? "" : " (ahead)"),
               {{"how", run.approved_how}});
  if (waiting) {
    log(id, "", "approved by " + command.by);
    set_state(run, StepState::kPending, "approved");
  } else {
    log(id, "", "pre-approved by " + command.by + " (it will not stop at its gate)");
    set_state(run, StepState::kPending, "pre-approved by " + command.by);
  }
  return "";
}

std::string Executor::revoke(StepRun& run, const Command& command) {
  const std::string& id = run.step->id;
  if (!run.approved) return id + " has no approval to take back";
  if (run.state != StepState::kPending)
    return id + " has already started: it is " + std::string(state_name(run.state));
  run.approved = false;
  run.approved_how.clear();
  run.approved_by.clear();
  operator_did("revoke", id, command.by);
  log(id, "", "approval taken back by " + command.by + "; it will wait at its gate");
  set_state(run, StepState::kPending, "approval revoked by " + command.by);
  return "";
}

std::string Executor::command(const Command& command, RunClock::time_point now) {
  if (ended_) return "the run has ended (" + *ended_ + ")";
  const char* verb = command_name(command.kind);
  if (command.kind == CommandKind::kAbort) {
    if (aborting_) return "already aborting";
    operator_did(verb, "", command.by);
    start_abort(now);
    return "";
  }
  StepRun* run = find(command.step);
  if (!run) return "the plan has no step \"" + command.step + "\"";
  if (aborting_) return "the run is aborting";
  const std::string is = std::string(" (it is ") + state_name(run->state) + ")";
  std::string refused;
  switch (command.kind) {
    case CommandKind::kApprove:
      refused = approve(*run, command);
      break;
    case CommandKind::kRevoke:
      refused = revoke(*run, command);
      break;
    case CommandKind::kSkip:
      if (run->state == StepState::kRunning ||
          (is_settled(run->state) && run->state != StepState::kFailed))
        return command.step + " cannot be skipped" + is;
      operator_did(verb, command.step, command.by);
      set_state(*run, StepState::kSkipped, "skipped by " + command.by);
      failure_handled_ = false;
      break;
    case CommandKind::kRetry:
      if (run->state != StepState::kFailed) return command.step + " has not failed" + is;
      operator_did(verb, command.step, command.by);
      set_state(*run, StepState::kPending, "retry asked by " + command.by);
      failure_handled_ = false;
      break;
    case CommandKind::kAbort:
      break;
  }
  if (!refused.empty()) return refused;
  tick(now);
  return "";
}

void Executor::on_step_failed(StepRun& run) {
  const std::string& id = run.step->id;
  // Inside the downtime window a retry is a new decision: the old approval does not carry.
  if (gated(*run.step) && run.approved && downtime_.started() && !downtime_.ended()) {
    run.approved = false;
    run.approved_how.clear();
    operator_did("revoke", id, "cutpilot (the step failed inside the downtime window)");
    log(id, "", "it failed inside the downtime window: a retry waits for a new approval");
  }
  if (aborting_ || run.step->optional) return;
  if (options_.on_failure == OnFailure::kWait)
    log(id, "",
        id + " failed; the run waits. From another pane: cutpilot retry " + id +
            options_.control_hint + " | cutpilot skip " + id + options_.control_hint +
            " | cutpilot abort" + options_.control_hint);
}

void Executor::start_abort(RunClock::time_point now) {
  aborting_ = true;
  journal({{"r", "abort"}});
  log("", "", "aborting: running steps are cancelled, then completed steps are rolled back");
  for (auto& run : runs_) {
    // An aborted run approves nothing more: steps at their gate are simply not run.
    if (run.state == StepState::kAwaitingApproval) {
      set_state(run, StepState::kPending, "not run (aborted)");
      continue;
    }
    // A rollback re-attached by a resumed abort is the abort's own work: never cancelled.
    if (run.state != StepState::kRunning || run.rolling_back) continue;
    const bool retry_wait = run.retry_at.has_value();
    run.retry_at.reset();
    if (run.wait_until || retry_wait || run.jobs.empty()) {
      run.wait_until.reset();
      set_state(run, StepState::kFailed, "cancelled by abort");
      continue;
    }
    std::string unreachable;
    for (const auto& job : run.jobs)
      if (!job.done && host_state_[job.host] == "failed") unreachable = job.host;
    if (!unreachable.empty()) {
      // Nobody can cancel or ask it: its outcome stays unknown, and it is not rolled back.
      left_.push_back(run.step->id + " (outcome unknown: " + unreachable + " is unreachable)");
      set_state(run, StepState::kFailed,
                "outcome unknown: " + unreachable +
                    " is unreachable (its job may still be running there); not rolled back");
    }
    for (const auto& job : run.jobs)
      if (!job.done) port_.cancel(job.job_id);
  }
  tick(now);
}

void Executor::next_rollback(RunClock::time_point now) {
  if (tearing_down_ || ended_) return;
  while (!completed_.empty()) {
    StepRun* run = find(completed_.back());
    completed_.pop_back();
    if (!run || run->state != StepState::kSucceeded) continue;
    const std::string& id = run->step->id;
    if (const auto blocked = rollback_blocked_.find(id); blocked != rollback_blocked_.end()) {
      left_.push_back(id + " (" + blocked->second + " needs it, and its rollback failed)");
      continue;
    }
    if (run->step->point_of_no_return) {
      log(id, "", "point of no return: the steps before it are not rolled back");
      left_.push_back(id + " (point of no return)");
      for (const auto& before : completed_)
        left_.push_back(before + " (before the point of no return)");
      completed_.clear();
      break;
    }
    if (!run->step->rollback) {
      log(id, "", "no rollback for " + id + "; it stays done");
      left_.push_back(id + " (no rollback)");
      continue;
    }
    run->rolling_back = true;
    run->jobs.clear();
    run->started = now;
    set_state(*run, StepState::kRunning, "rolling back");
    if (const auto* wait = std::get_if<WaitAction>(&*run->step->rollback)) {
      run->wait_until = now + wait->duration;
      return;
    }
    if (start_jobs(*run, *run->step->rollback, true)) return;
    run->rolling_back = false;
  }
  abort_summary();
  end_state_ = "aborted";
  teardown_or_end(now);
}

void Executor::rollback_failed(StepRun& run, const std::string& why) {
  const std::string& id = run.step->id;
  rollback_failed_.push_back(id);
  // Its change is still in effect: the step itself did succeed.
  set_state(run, StepState::kSucceeded,
            "its rollback " + why + " (the step's change is still in effect; check by hand)");
  // What it needs must stay as it is: undoing it under a step still in effect is how an
  // old worker starts beside a new one.
  std::vector<const Step*> todo = {run.step};
  while (!todo.empty()) {
    const Step* step = todo.back();
    todo.pop_back();
    for (const auto& need : step->needs)
      if (const StepRun* dep = find(need); dep && rollback_blocked_.emplace(need, id).second)
        todo.push_back(dep->step);
  }
  log(id, "",
      "rollback of " + id + " " + why +
          "; the rollbacks that do not depend on it still run, the steps it needs stay as they "
          "are");
}

void Executor::end_downtime_by_rollback(const StepRun& run) {
  if (run.step->downtime != Downtime::kStart || !downtime_.started() || downtime_.ended()) return;
  downtime_.end(unix_now());
  downtime_ended_by_ = "rollback";
  const DowntimeEvent e = downtime_.event("ended", unix_now());
  journal({{"r", "downtime"}, {"state", "ended"}, {"seconds", e.seconds}, {"how", "rollback"}});
  sink_(e);
  log(run.step->id, "",
      "downtime ended by rollback after " + format_seconds(e.seconds) + " (" + run.step->id +
          " is undone: the old service is back)");
}

void Executor::abort_summary() {
  log("", "",
      "abort finished. Rolled back: " + (rolled_back_.empty() ? "none" : joined(rolled_back_)));
  if (!rollback_failed_.empty())
    log("", "", "rollback failed (check by hand): " + joined(rollback_failed_));
  if (!left_.empty()) log("", "", "left as they are: " + joined(left_));
}

}  // namespace cutpilot::plans
