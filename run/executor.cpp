#include "run/executor.h"

#include <algorithm>
#include <cmath>

#include "plans/show.h"
#include "transport/sha256.h"

namespace cutpilot::plans {
namespace {

// What identifies a step's meaning: when it changes, a journalled result no longer applies.
std::string fingerprint(const Plan& plan, const Step& step) {
  std::string text = step.id + "\n" + std::string(action_kind(step.action)) + "\n";
  for (const auto& host : step.on)
    text += host + ": " + describe_action(plan, step, step.action, host) + "\n";
  if (step.rollback)
    for (const auto& host : step.on)
      text += "rollback " + host + ": " + describe_action(plan, step, *step.rollback, host) + "\n";
  for (const auto& need : step.needs)
    text += "needs " + need + "\n";
  text += "gate " + std::to_string(static_cast<int>(step.gate)) + " confirm " +
          step.confirm.value_or("") + " when " + (step.when ? step.when->text : "") + " retries " +
          std::to_string(step.retries) + " timeout " +
          std::to_string(step.timeout ? step.timeout->count() : -1) + " optional " +
          std::to_string(step.optional);
  return transport::sha256_hex(text).substr(0, 16);
}

bool satisfied(StepState state) {
  return state == StepState::kSucceeded || state == StepState::kSkipped;
}

}  // namespace

std::map<std::string, std::string> step_fingerprints(const Plan& plan) {
  std::map<std::string, std::string> prints;
  for (const auto& step : plan.steps)
    prints[step.id] = fingerprint(plan, step);
  return prints;
}

Executor::Executor(const Plan& plan, ExecutorOptions options, JobPort& port, Journal& journal,
                   EventSink sink, EnvLookup secrets)
    : plan_(plan),
      options_(std::move(options)),
      port_(port),
      journal_(journal),
      sink_(std::move(sink)) {
  context_.run_key = options_.run_id;
  context_.peer = [this](std::string_view host) { return port_.peer_access(host); };
  context_.secrets = std::move(secrets);
  for (const size_t i : ordered_steps(plan_.steps))
    runs_.push_back(StepRun{&plan_.steps[i]});
  for (const auto& link : peer_links(plan_))
    peers_.push_back(PeerSetup{link});
  if (plan_.settings.downtime_budget)
    downtime_.set_budget(static_cast<double>(plan_.settings.downtime_budget->count()));
}

Executor::StepRun* Executor::find(std::string_view id) {
  for (auto& run : runs_)
    if (run.step->id == id) return &run;
  return nullptr;
}

const Executor::StepRun* Executor::find(std::string_view id) const {
  return const_cast<Executor*>(this)->find(id);
}

bool Executor::journal(nlohmann::json record) {
  if (!fatal_.empty()) return false;
  if (journal_.append(std::move(record))) return true;
  fatal_ = journal_.error() + " — the run stops starting steps (it could not be resumed)";
  log("", "", fatal_);
  return false;
}

void Executor::log(const std::string& step, const std::string& host, const std::string& line) {
  sink_(LogEvent{.step = step, .host = host, .stream = "agent", .line = line, .at = unix_now()});
}

void Executor::set_state(StepRun& run, StepState state, std::string detail, bool journalled) {
  run.state = state;
  run.detail = std::move(detail);
  if (journalled) {
    nlohmann::json record = {{"r", "step"},
                             {"step", run.step->id},
                             {"state", state_name(state)},
                             {"attempt", run.attempt},
                             {"round", run.round},
                             {"detail", run.detail}};
    if (state == StepState::kSucceeded) record["seconds"] = run.seconds;  // for later predictions
    journal(std::move(record));
  }
  sink_(StepEvent{run.step->id, state, run.detail, run.approved && state == StepState::kPending});
}

std::string Executor::job_id(const StepRun& run, const std::string& host, bool rollback) const {
  std::string id = options_.run_id + "/" + run.step->id + "/" + host + "/";
  if (rollback) return id + "rollback";
  id += std::to_string(run.attempt);
  if (run.round > 0) id += "." + std::to_string(run.round);
  return id;
}

std::string check_approvals(const Plan& plan, const ExecutorOptions& options) {
  for (const auto& id : options.approve) {
    const Step* step = plan.find_step(id);
    if (!step) return "--approve " + id + ": the plan has no step \"" + id + "\"";
    if (!gated(*step)) return "--approve " + id + ": " + id + " has no gate to approve";
    // A confirm text is typed, never implied by naming the step: --approve 'STEP=TEXT'.
    const auto typed = options.approve_confirm.find(id);
    if (step->confirm &&
        (typed == options.approve_confirm.end() || typed->second != *step->confirm))
      return "--approve " + id + ": " + id +
             " asks for its confirmation text typed exactly: " + "--approve '" + id + "=" +
             *step->confirm + "'";
  }
  return "";
}

bool Executor::approve_from_options(std::string& error) {
  error = check_approvals(plan_, options_);
  if (!error.empty()) return false;
  for (auto& run : runs_) {
    if (run.approved || !gated(*run.step)) continue;
    if (run.state != StepState::kPending && run.state != StepState::kAwaitingApproval) continue;
    const bool named = options_.approve.count(run.step->id) > 0;
    if (!named && !options_.approve_all) continue;
    run.approved = true;
    run.approved_how = named ? "--approve" : "--approve-all";
    run.approved_by = options_.operator_name;
    operator_did("approve", run.step->id, options_.operator_name + " (" + run.approved_how + ")",
                 {{"how", run.approved_how}});
    sink_(StepEvent{run.step->id, run.state, run.detail, run.state == StepState::kPending});
  }
  return fatal_.empty();
}

bool Executor::begin(RunClock::time_point now, std::string& error) {
  // Refused options change nothing: not even the journal's first record.
  error = check_approvals(plan_, options_);
  if (!error.empty()) return false;
  nlohmann::json prints = nlohmann::json::object();
  for (const auto& step : plan_.steps)
    prints[step.id] = fingerprint(plan_, step);
  begun_ = now;
  if (!journal({{"r", "run"},
                {"run", options_.run_id},
                {"plan", plan_.path},
                {"sha256", plan_.sha256},
                {"fingerprints", prints}})) {
    error = fatal_;
    return false;
  }
  for (auto& run : runs_)
    sink_(StepEvent{run.step->id, StepState::kPending, ""});
  if (!approve_from_options(error)) return false;
  update_prediction(now);
  return fatal_.empty();
}

bool Executor::resume(const JournalState& state, RunClock::time_point now, std::string& error) {
  // A failed run waits for its retry; one that succeeded or was aborted is over.
  if (state.ended && *state.ended != "failed") {
    error = "run " + state.run_id + " already ended (" + *state.ended + "); start a new run";
    return false;
  }
  std::vector<std::string> changed;
  for (auto& run : runs_) {
    const auto it = state.steps.find(run.step->id);
    // A failed step is pending again on resume: fixing it in the plan is what a retry is for.
    const bool touched = it != state.steps.end() && it->second.state != "pending" &&
                         it->second.state != "awaiting-approval" && it->second.state != "failed";
    const auto print = state.fingerprints.find(run.step->id);
    const bool same =
        print != state.fingerprints.end() && print->second == fingerprint(plan_, *run.step);
    if (touched && !same) changed.push_back(run.step->id);
  }
  for (const auto& [id, step] : state.steps)
    if (!find(id) && step.state != "pending" && step.state != "awaiting-approval")
      changed.push_back(id + " (removed)");
  if (!changed.empty()) {
    error = "the plan changed in steps that already ran: ";
    for (size_t i = 0; i < changed.size(); ++i)
      error += (i ? ", " : "") + changed[i];
    error += "; resume only while changed steps are still pending, or start a new run";
    return false;
  }
  error = check_approvals(plan_, options_);
  if (!error.empty()) return false;
  // The run's time counts from its start, not from this resume ("run succeeded after ...").
  const double before = state.started_unix > 0 ? std::max(0.0, unix_now() - state.started_unix) : 0;
  begun_ =
      now - std::chrono::duration_cast<RunClock::duration>(std::chrono::duration<double>(before));
  resumed_ = true;
  nlohmann::json prints = nlohmann::json::object();
  for (const auto& step : plan_.steps)
    prints[step.id] = fingerprint(plan_, step);
  if (!journal({{"r", "resume"}, {"sha256", plan_.sha256}, {"fingerprints", prints}})) {
    error = fatal_;
    return false;
  }
  if (state.predicted_s) downtime_.set_predicted(state.predicted_s);
  if (state.downtime_started_unix) {
    // The views learn the clock from events: a resumed cockpit shows it as status does.
    downtime_.start(*state.downtime_started_unix);
    if (state.downtime_ended_unix) downtime_.end(*state.downtime_ended_unix);
    sink_(downtime_.event(downtime_.ended() ? "ended" : "started", unix_now()));
  }
  for (auto& run : runs_) {
    const auto it = state.steps.find(run.step->id);
    if (it == state.steps.end()) {
      if (state.in_doubt(run.step->id)) {
        probe(run, 1, false, now);
        continue;
      }
      sink_(StepEvent{run.step->id, StepState::kPending, ""});
      continue;
    }
    const JournalStep& was = it->second;
    if (state.in_doubt(run.step->id) &&
        (was.state == "pending" || was.state == "awaiting-approval")) {
      probe(run, was.attempt + 1, was.approved, now);
      continue;
    }
    run.attempt = was.attempt;
    run.round = was.round;
    run.approved = was.approved;
    if (was.seconds)
      run.seconds = *was.seconds;
    else if (was.started_unix > 0 && was.ended_unix >= was.started_unix)
      run.seconds = was.ended_unix - was.started_unix;
    for (const auto& result : was.results)
      run.results.push_back(result.is_null() ? "" : result.dump());
    const StepState journalled = parse_state(was.state).value_or(StepState::kPending);
    if (journalled == StepState::kSucceeded) completed_.push_back(run.step->id);
    if (journalled != StepState::kRunning) {
      // A failed step stays failed: it waits for the operator's retry, skip or abort, never
      // starts again by itself because a cockpit came back.
      const StepState now_state =
          journalled == StepState::kAwaitingApproval ? StepState::kPending : journalled;
      run.state = now_state;
      sink_(StepEvent{run.step->id, now_state, was.detail,
                      run.approved && now_state == StepState::kPending});
      continue;
    }
    // Running when the cockpit died: re-attach to each job, never start a second one.
    run.state = StepState::kRunning;
    run.started = now;
    sink_(StepEvent{run.step->id, StepState::kRunning, "re-attaching"});
    const bool rollback = was.detail == "rolling back";
    const Action* action =
        rollback && run.step->rollback ? &*run.step->rollback : &run.step->action;
    if (std::holds_alternative<WaitAction>(*action)) {
      run.wait_until = now + std::get<WaitAction>(*action).duration;
      continue;
    }
    run.rolling_back = rollback;
    for (const auto& job : state.jobs) {
      if (job.step != run.step->id || job.rollback != rollback) continue;
      if (job.job_id != job_id(run, job.host, rollback)) continue;  // an older attempt
      HostJob host_job{job.host, job.job_id};
      if (job.finished) {
        host_job.done = true;
        host_job.ok = job.finished->value("state", "") == "succeeded";
        const auto result = job.finished->find("result");
        if (result != job.finished->end() && !result->is_null()) host_job.result = result->dump();
      } else {
        host_job.reattach = true;
        job_step_[job.job_id] = run.step->id;
      }
      run.jobs.push_back(host_job);
    }
    if (run.jobs.empty() && state.in_doubt(run.step->id) && !rollback) {
      // The job record may be the unreadable line: ask for this attempt's jobs, never guess.
      run.jobs.clear();
      probe(run, std::max<uint32_t>(was.attempt, 1), run.approved, now);
    } else if (run.jobs.empty()) {
      // Journalled as running but no job went out: nothing ran; start it afresh.
      run.state = StepState::kPending;
      sink_(StepEvent{run.step->id, StepState::kPending, ""});
    } else if (std::all_of(run.jobs.begin(), run.jobs.end(),
                           [](const HostJob& j) { return j.done; })) {
      step_jobs_done(run, now);
    }
  }
  host_ids_ = state.hosts;
  restore_trackers(state);
  if (!approve_from_options(error)) return false;
  if (state.aborting) start_abort(now);
  update_prediction(now);
  return fatal_.empty();
}

void Executor::probe(StepRun& run, uint32_t attempt, bool approved, RunClock::time_point now) {
  // The journal cannot say whether this attempt started: its job ids are asked for (attach
  // only). An agent that has one is followed; one that has none says "unknown", and the
  // operator decides. Never started afresh on a guess.
  run.attempt = attempt;
  run.round = 0;
  run.approved = approved;
  run.state = StepState::kRunning;
  run.started = now;
  for (const auto& host : run.step->on) {
    const std::string id = job_id(run, host, false);
    run.jobs.push_back(HostJob{host, id, false, false, false, "", true});
    job_step_[id] = run.step->id;
  }
  log(run.step->id, "",
      "the journal is damaged where it may speak of " + run.step->id +
          ": asking the agents whether it started");
  sink_(StepEvent{run.step->id, StepState::kRunning, "outcome unknown: asking the agents"});
}

void Executor::on_host_ready(const std::string& host, const std::string& endpoint,
                             const std::string& key) {
  const auto known = host_ids_.find(host);
  if (known == host_ids_.end()) {
    host_ids_[host] = {endpoint, key};
    journal({{"r", "host"}, {"host", host}, {"endpoint", endpoint}, {"key", key}});
    return;
  }
  if (known->second == std::make_pair(endpoint, key)) return;
  // Only a host that started steps used matters: elsewhere nothing of this run happened yet.
  bool used = false;
  for (const auto& run : runs_) {
    if (run.state == StepState::kPending || run.state == StepState::kAwaitingApproval) continue;
    used = used || std::count(run.step->on.begin(), run.step->on.end(), host) > 0;
    for (const auto& link : peer_links_of(plan_, *run.step, true))
      used = used || link.host == host || link.peer == host;
  }
  if (!used) {
    host_ids_[host] = {endpoint, key};
    journal({{"r", "host"}, {"host", host}, {"endpoint", endpoint}, {"key", key}});
    return;
  }
  const bool moved = known->second.first != endpoint;
  fatal_ = host + " now resolves to " + (moved ? endpoint : "a host with another key") +
           ", but this run's started steps ran on it at " + known->second.first +
           (moved ? "" : " with another key") +
           ": refusing to touch it. Put the plan's host back, or abort the run and start a new one";
  log("", host, fatal_);
}

const std::string* Executor::failed_optional_need(const StepRun& run) const {
  for (const auto& need : run.step->needs) {
    const StepRun* dep = find(need);
    if (dep && dep->step->optional && dep->state == StepState::kFailed) return &dep->step->id;
  }
  return nullptr;
}

bool Executor::ready_to_start(const StepRun& run) const {
  for (const auto& need : run.step->needs) {
    const StepRun* dep = find(need);
    if (!dep || !satisfied(dep->state)) return false;
  }
  if (run.step->when) {
    const StepRun* dep = find(run.step->when->step);
    if (!dep || !is_settled(dep->state)) return false;
  }
  return true;
}

void Executor::reattach(StepRun& run, RunClock::time_point) {
  // Attach only: an agent that does not know the job says so; it is never started again.
  for (auto& job : run.jobs) {
    if (!job.reattach) continue;
    job.reattach = false;
    log(run.step->id, job.host, "asking the agent for job " + job.job_id + " again");
    port_.attach(job.host, job.job_id);
  }
}

void Executor::tick(RunClock::time_point now) {
  if (ended_) return;
  for (auto& run : runs_) {
    if (run.state != StepState::kRunning) continue;
    if (std::any_of(run.jobs.begin(), run.jobs.end(), [](const HostJob& j) { return j.reattach; }))
      reattach(run, now);
    if (run.wait_until && now >= *run.wait_until) {
      run.wait_until.reset();
      run.jobs.clear();
      step_jobs_done(run, now);
    } else if (run.retry_at && now >= *run.retry_at && !aborting_) {
      run.retry_at.reset();
      start_step(run, now);
    }
  }
  if (tearing_down_) {
    teardown_or_end(now);
    return;
  }
  if (aborting_ || !fatal_.empty()) {
    if (aborting_ && std::none_of(runs_.begin(), runs_.end(),
                                  [](const StepRun& r) { return r.state == StepState::kRunning; }))
      next_rollback(now);
    return;
  }
  const bool halted = std::any_of(runs_.begin(), runs_.end(), [](const StepRun& r) {
    return r.state == StepState::kFailed && !r.step->optional;
  });
  size_t running = std::count_if(runs_.begin(), runs_.end(),
                                 [](const StepRun& r) { return r.state == StepState::kRunning; });
  for (auto& run : runs_) {
    if (run.state != StepState::kPending && run.state != StepState::kAwaitingApproval) continue;
    if (const auto* failed = failed_optional_need(run)) {
      set_state(run, StepState::kSkipped, "needs " + *failed + ", which failed (optional)");
      continue;
    }
    if (!ready_to_start(run)) continue;
    if (run.step->when) {
      const auto lookup = [this](std::string_view id) -> std::optional<StepOutcome> {
        const StepRun* dep = find(id);
        if (!dep || !is_settled(dep->state)) return std::nullopt;
        return StepOutcome{state_name(dep->state), dep->results};
      };
      if (!evaluate(*run.step->when, lookup)) {
        set_state(run, StepState::kSkipped, "when \"" + run.step->when->text + "\" is false");
        continue;
      }
    }
    if (gated(*run.step) && !run.approved) {
      if (run.state != StepState::kAwaitingApproval) {
        set_state(run, StepState::kAwaitingApproval,
                  run.step->point_of_no_return ? "point of no return" : "");
        if (run.step->downtime == Downtime::kStart) update_prediction(now);
      }
      continue;
    }
    if (halted || running >= options_.max_parallel) continue;
    if (!links_ready(run, now)) continue;
    start_step(run, now);
    if (run.state == StepState::kRunning) ++running;
  }
  const bool busy = std::any_of(runs_.begin(), runs_.end(),
                                [](const StepRun& r) { return r.state == StepState::kRunning; });
  if (busy) return;
  const bool waiting = std::any_of(runs_.begin(), runs_.end(), [](const StepRun& r) {
    return r.state == StepState::kAwaitingApproval;
  });
  if (halted) {
    if (options_.on_failure == OnFailure::kExit) {
      end_state_ = "failed";
      teardown_or_end(now);
    } else if (options_.on_failure == OnFailure::kRollback && !failure_handled_) {
      failure_handled_ = true;
      log("", "", "a step failed and --on-failure is rollback: aborting");
      start_abort(now);
    }
    return;
  }
  const bool open = std::any_of(runs_.begin(), runs_.end(),
                                [](const StepRun& r) { return r.state == StepState::kPending; });
  if (!open && !waiting) {
    end_state_ = "succeeded";
    teardown_or_end(now);
  }
}

void Executor::start_step(StepRun& run, RunClock::time_point now) {
  // Every start is a new attempt (new job ids); hot pre-sync rounds do not come here.
  ++run.attempt;
  run.round = 0;
  run.results.clear();
  run.round_results.clear();
  run.started = now;
  run.job_started.reset();
  run.jobs.clear();
  for (const auto& host : run.step->on)
    if (host_state_[host] == "failed") {
      set_state(run, StepState::kFailed, host + " is unreachable");
      return;
    }
  set_state(run, StepState::kRunning,
            run.attempt > 1 ? "attempt " + std::to_string(run.attempt) : "");
  if (run.step->downtime == Downtime::kStart && !downtime_.started()) {
    downtime_.start(unix_now());
    journal({{"r", "downtime"},
             {"state", "started"},
             {"predicted_s",
              downtime_.predicted() ? nlohmann::json(*downtime_.predicted()) : nullptr}});
    sink_(downtime_.event("started", unix_now()));
    update_prediction(now);
  }
  if (const auto* wait = std::get_if<WaitAction>(&run.step->action)) {
    run.wait_until = now + wait->duration;
    return;
  }
  run.seals.clear();
  if (sync_ready(run)) start_jobs(run, run.step->action, false);
}

std::optional<RunClock::time_point> Executor::next_timer() const {
  std::optional<RunClock::time_point> next;
  for (const auto& run : runs_)
    for (const auto& t : {run.wait_until, run.retry_at})
      if (t && (!next || *t < *next)) next = t;
  return next;
}

int Executor::exit_code() const {
  if (!ended_) return 1;
  if (*ended_ == "succeeded") return 0;
  if (*ended_ == "aborted") return 3;
  return 1;
}

}  // namespace cutpilot::plans
