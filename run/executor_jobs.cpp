// The executor's side of agent jobs: starting them, their updates, the run's peer keys,
// abort and rollback, and the end of the run.
#include <algorithm>
#include <chrono>
#include <cmath>

#include "plans/size.h"
#include "run/executor.h"

namespace cutpilot::plans {
namespace {

nlohmann::json parsed(const std::string& text) {
  if (text.empty()) return nullptr;
  auto json = nlohmann::json::parse(text, nullptr, false);
  return json.is_discarded() ? nlohmann::json(text) : json;
}

std::string peer_spec(const std::string& action, const std::string& run_key,
                      const std::string& public_key = "",
                      const std::vector<std::string>& permit_open = {}) {
  nlohmann::json spec = {{"action", action}, {"name", run_key}};
  if (action == "authorize") {
    spec["public_key"] = public_key;
    if (!permit_open.empty()) spec["permit_open"] = permit_open;
  }
  return spec.dump();
}

// " (in FILE)" when a peer job's result names the authorized_keys file it edited.
std::string authorized_keys_of(const std::string& result) {
  const nlohmann::json json = parsed(result);
  if (!json.is_object() || !json.contains("authorized_keys") ||
      !json["authorized_keys"].is_string())
    return "";
  return " (in " + json["authorized_keys"].get<std::string>() + ")";
}

}  // namespace

bool Executor::start_jobs(StepRun& run, const Action& action, bool rollback) {
  std::vector<std::pair<std::string, JobSpec>> jobs;
  for (const auto& host : run.step->on) {
    const Translation t = job_for(plan_, *run.step, action, host, context_);
    if (!t.ok() || !t.job) {
      set_state(run, StepState::kFailed, t.ok() ? "no job for " + host : t.error);
      return false;
    }
    jobs.emplace_back(host, *t.job);
    if (!rollback) apply_seal(run, host, jobs.back().second);
  }
  for (auto& [host, job] : jobs) {
    const std::string id = job_id(run, host, rollback);
    // Journalled before it goes out: a cockpit that dies now re-attaches to it by id.
    if (!journal({{"r", "job"},
                  {"step", run.step->id},
                  {"host", host},
                  {"job", id},
                  {"kind", job.kind},
                  {"spec", parsed(job.redacted)},
                  {"rollback", rollback}}))
      return false;
    job_step_[id] = run.step->id;
    run.jobs.push_back(HostJob{host, id});
    port_.start(host, id, job);
  }
  return true;
}

void Executor::on_job(const std::string& id, const JobUpdate& update, RunClock::time_point now) {
  if (const auto peer = peer_jobs_.find(id); peer != peer_jobs_.end()) {
    on_peer_job(peers_[peer->second], update);
    return;
  }
  if (const auto watch = tracker_jobs_.find(id); watch != tracker_jobs_.end()) {
    on_tracker_job(trackers_[watch->second], update, now);
    if (tearing_down_) teardown_or_end(now);
    return;
  }
  if (const auto seal = seal_jobs_.find(id); seal != seal_jobs_.end()) {
    if (StepRun* run = find(seal->second)) on_seal_job(*run, id, update);
    return;
  }
  const auto owner = job_step_.find(id);
  if (owner == job_step_.end()) return;
  StepRun* run = find(owner->second);
  if (!run) return;
  const auto job = std::find_if(run->jobs.begin(), run->jobs.end(),
                                [&](const HostJob& j) { return j.job_id == id; });
  if (job == run->jobs.end() || job->done) return;  // an older attempt's late words
  const std::string& step = run->step->id;
  switch (update.kind) {
    case JobUpdate::Kind::kStarted:
      if (!update.existing && !run->job_started) run->job_started = now;
      if (update.existing)
        log(step, job->host,
            "re-attached to job " + id + " (already on the agent; not started again)");
      break;
    case JobUpdate::Kind::kProgress: {
      if (replica_streams(*run, *job, update, now)) break;
      // Never backwards: a re-attached job replays its log from the start.
      uint64_t& shown = shown_bytes_[id];
      if (update.progress.bytes < shown) break;
      shown = update.progress.bytes;
      ProgressEvent p = update.progress;
      p.step = step;
      p.host = job->host;
      if (std::holds_alternative<DbAction>(run->step->action)) p.unit = "tables";
      // rsync counts the entries of its file list, directories too; parallel chunks hold
      // the entries that differ, directories too.
      if (std::holds_alternative<SyncAction>(run->step->action)) p.unit = "entries";
      if (p.total && p.rate > 0 && *p.total >= p.bytes)
        p.eta_s = static_cast<double>(*p.total - p.bytes) / p.rate;
      sink_(p);
      break;
    }
    case JobUpdate::Kind::kLog:
      sink_(LogEvent{.step = step,
                     .host = job->host,
                     .stream = update.stream,
                     .line = update.line,
                     .notice = update.stream == "stderr" && stderr_is_notice(update.line),
                     .at = unix_now()});
      break;
    case JobUpdate::Kind::kHealth:
      sink_(HealthEvent{step, job->host, update.target, update.status});
      break;
    case JobUpdate::Kind::kFinished:
      finish_job(*run, *job, update, now);
      break;
    case JobUpdate::Kind::kUnknown: {
      // Asked for a job an earlier cockpit started, the agent has none: it may never have
      // started, or its record is gone. Not "not run": the operator decides.
      JobUpdate unknown = update;
      unknown.state = "unknown";
      if (unknown.error.empty()) unknown.error = job->host + " has no record of job " + id;
      unknown.error += " — it may never have started there, or its record is gone; check on " +
                       job->host + ", then retry or skip " + step;
      finish_job(*run, *job, unknown, now);
      break;
    }
  }
}

void Executor::finish_job(StepRun& run, HostJob& job, const JobUpdate& update,
                          RunClock::time_point now, bool acknowledge) {
  job.done = true;
  job.ok = update.state == "succeeded";
  job.unknown = update.state == "unknown";
  job.result = update.result;
  journal({{"r", "done"},
           {"job", job.job_id},
           {"step", run.step->id},
           {"host", job.host},
           {"state", update.state},
           {"exit", update.exit_code},
           {"error", update.error},
           {"result", parsed(update.result)}});
  if (!job.ok) {
    // The exit code once: the agent's error often names it already, and a job that never
    // exited (-1: cancelled, timed out, lost) has none to name.
    const bool named = update.error.find("exit code") != std::string::npos;
    log(run.step->id, job.host,
        update.state + (update.error.empty() ? "" : ": " + update.error) +
            (update.exit_code > 0 && !named
                 ? " (exit code " + std::to_string(update.exit_code) + ")"
                 : ""));
  }
  if (acknowledge) port_.acknowledge(job.job_id);
  if (std::all_of(run.jobs.begin(), run.jobs.end(), [](const HostJob& j) { return j.done; }))
    step_jobs_done(run, now);
}

void Executor::step_jobs_done(StepRun& run, RunClock::time_point now) {
  const bool ok =
      std::all_of(run.jobs.begin(), run.jobs.end(), [](const HostJob& j) { return j.ok; });
  std::string failed, unknown;
  for (const auto& j : run.jobs)
    if (!j.ok)
      (j.unknown ? unknown : failed) +=
          (j.unknown ? unknown : failed).empty() ? j.host : ", " + j.host;
  std::string why = failed.empty() ? "" : "failed on " + failed;
  if (!unknown.empty())
    why += (why.empty() ? "" : "; ") + std::string("outcome unknown on ") + unknown;
  if (run.rolling_back) {
    run.rolling_back = false;
    if (ok) {
      rolled_back_.push_back(run.step->id);
      set_state(run, StepState::kRolledBack, "");
      end_downtime_by_rollback(run);
    } else {
      rollback_failed(run, why);
    }
    return;
  }
  run.results.clear();
  for (const auto& j : run.jobs)
    run.results.push_back(j.result);
  if (aborting_) {
    // Interrupted by the abort: whatever it did is rolled back with the rest when it succeeded.
    if (ok) completed_.push_back(run.step->id);
    set_state(run, ok ? StepState::kSucceeded : StepState::kFailed, ok ? "" : "cancelled by abort");
    return;
  }
  const auto* sync = std::get_if<SyncAction>(&run.step->action);
  if (ok && sync && sync->until_below_bytes && run.round + 1 < sync->max_rounds) {
    uint64_t moved = 0;
    for (const auto& j : run.jobs) {
      const auto json = nlohmann::json::parse(j.result, nullptr, false);
      if (json.is_object() && json.contains("bytes") && json["bytes"].is_number_unsigned())
        moved = std::max(moved, json["bytes"].get<uint64_t>());
    }
    if (moved >= *sync->until_below_bytes) {
      ++run.round;
      run.round_results.insert(run.round_results.end(), run.results.begin(), run.results.end());
      log(run.step->id, "",
          "round " + std::to_string(run.round) + " moved " + format_size(moved) + " (not below " +
              format_size(*sync->until_below_bytes) + "): another round");
      run.jobs.clear();
      set_state(run, StepState::kRunning, "round " + std::to_string(run.round + 1));
      start_jobs(run, run.step->action, false);
      return;
    }
  }
  run.seconds = std::chrono::duration<double>(now - run.job_started.value_or(run.started)).count();
  if (ok) {
    completed_.push_back(run.step->id);
    set_state(run, StepState::kSucceeded, "");
    if (run.step->downtime == Downtime::kEnd && downtime_.started() && !downtime_.ended()) {
      downtime_.end(unix_now());
      const DowntimeEvent e = downtime_.event("ended", unix_now());
      if (!forecast_at_start_.steps.empty()) log("", "", took_against_predicted());
      journal({{"r", "downtime"},
               {"state", "ended"},
               {"seconds", e.seconds},
               {"predicted_s",
                e.predicted_at_start_s ? nlohmann::json(*e.predicted_at_start_s) : nullptr}});
      sink_(e);
    }
    update_prediction(now);
    return;
  }
  if (run.attempt <= run.step->retries) {
    const auto backoff = std::min<std::chrono::milliseconds>(
        options_.retry_backoff * (1 << std::min<uint32_t>(run.attempt - 1, 5)),
        std::chrono::seconds(30));
    run.retry_at = now + backoff;
    set_state(run, StepState::kRunning,
              "attempt " + std::to_string(run.attempt) + " " + why + "; retry " +
                  std::to_string(run.attempt) + "/" + std::to_string(run.step->retries) + " in " +
                  format_seconds(std::chrono::duration<double>(backoff).count()));
    return;
  }
  set_state(run, StepState::kFailed, why);
  on_step_failed(run);
}

bool Executor::links_ready(StepRun& run, RunClock::time_point) {
  bool ready = true;
  for (const auto& link : peer_links_of(plan_, *run.step, false)) {
    auto setup = std::find_if(peers_.begin(), peers_.end(), [&](const PeerSetup& s) {
      return s.link.host == link.host && s.link.peer == link.peer;
    });
    if (setup == peers_.end()) continue;
    if (setup->stage == PeerSetup::Stage::kNone) advance_peer(*setup);
    if (setup->stage == PeerSetup::Stage::kFailed) {
      set_state(run, StepState::kFailed, setup->error);
      return false;
    }
    ready = ready && setup->stage == PeerSetup::Stage::kReady;
  }
  return ready;
}

void Executor::start_peer_job(PeerSetup& setup, const std::string& host, const std::string& action,
                              const std::string& spec) {
  setup.job_id =
      options_.run_id + "/peer/" + setup.link.host + ">" + setup.link.peer + "/" + action;
  peer_jobs_[setup.job_id] = static_cast<size_t>(&setup - peers_.data());
  journal({{"r", "peer"}, {"host", host}, {"action", action}, {"job", setup.job_id}});
  port_.start(host, setup.job_id, JobSpec{"peer", spec, spec});
}

void Executor::advance_peer(PeerSetup& setup) {
  using Stage = PeerSetup::Stage;
  if (setup.stage == Stage::kNone) {
    setup.stage = Stage::kKeygen;
    log("", setup.link.host, "making the run's migration key (to reach " + setup.link.peer + ")");
    start_peer_job(setup, setup.link.host, "keygen", peer_spec("keygen", options_.run_id));
  }
}

void Executor::on_peer_job(PeerSetup& setup, const JobUpdate& update) {
  using Stage = PeerSetup::Stage;
  if (update.kind != JobUpdate::Kind::kFinished) return;
  port_.acknowledge(setup.job_id);
  const bool ok = update.state == "succeeded";
  if (setup.stage == Stage::kKeygen) {
    const auto json = nlohmann::json::parse(update.result, nullptr, false);
    const std::string key =
        json.is_object() && json.contains("public_key") && json["public_key"].is_string()
            ? json["public_key"].get<std::string>()
            : "";
    if (!ok || key.empty()) {
      setup.stage = Stage::kFailed;
      setup.error = setup.link.host + ": cannot make the migration key: " + update.error;
      return;
    }
    setup.stage = Stage::kAuthorize;
    start_peer_job(setup, setup.link.peer, "authorize",
                   peer_spec("authorize", options_.run_id, key, setup.link.permit_open));
  } else if (setup.stage == Stage::kAuthorize) {
    setup.stage = ok ? Stage::kReady : Stage::kFailed;
    if (!ok)
      setup.error = setup.link.peer + ": cannot authorise " + setup.link.host +
                    "'s migration key: " + update.error;
    else
      log("", setup.link.peer,
          setup.link.host + " may now reach this host for the run" +
              authorized_keys_of(update.result));
  } else if (setup.stage == Stage::kRevoke) {
    if (!ok)
      log("", setup.link.peer, "revoking the migration key failed: " + update.error);
    else
      log("", setup.link.peer,
          "revoked " + setup.link.host + "'s migration key" + authorized_keys_of(update.result));
    setup.stage = Stage::kDone;
    start_peer_job(setup, setup.link.host, "forget", peer_spec("forget", options_.run_id));
  } else if (setup.stage == Stage::kDone) {
    if (!ok) log("", setup.link.host, "deleting the migration key failed: " + update.error);
    setup.job_id.clear();
  }
}

void Executor::teardown_or_end(RunClock::time_point now) {
  using Stage = PeerSetup::Stage;
  if (!tearing_down_) {
    tearing_down_ = true;
    stop_trackers();
  }
  // A cancelled replica removes its replication on the source through the migration key:
  // the keys are revoked once the replicas have ended.
  const bool replicas = std::any_of(trackers_.begin(), trackers_.end(), [&](const Tracker& t) {
    const auto host = host_state_.find(t.host);
    return t.replica && t.state != Tracker::State::kGone &&
           (host == host_state_.end() || host->second != "failed");
  });
  if (!replicas && !revoking_) {
    revoking_ = true;
    for (auto& setup : peers_) {
      // An earlier cockpit of this run may have made any link: revoking is idempotent.
      const bool made = setup.stage != Stage::kNone && setup.stage != Stage::kKeygen;
      if (!made && !resumed_) continue;
      if (host_state_[setup.link.peer] == "failed" || host_state_[setup.link.host] == "failed") {
        log("", setup.link.peer,
            "cannot revoke " + setup.link.host +
                "'s migration key: the host is unreachable; remove the "
                "authorized_keys line marked cutpilot-migration:" +
                options_.run_id + " by hand");
        continue;
      }
      setup.stage = Stage::kRevoke;
      start_peer_job(setup, setup.link.peer, "revoke", peer_spec("revoke", options_.run_id));
    }
  }
  const bool pending =
      replicas ||
      std::any_of(peers_.begin(), peers_.end(),
                  [](const PeerSetup& s) {
                    return (s.stage == Stage::kRevoke || s.stage == Stage::kDone) &&
                           !s.job_id.empty();
                  }) ||
      stop_trackers();
  if (!pending) end_run(end_state_, now);
}

void Executor::end_run(const std::string& state, RunClock::time_point now) {
  if (ended_) return;
  ended_ = state;
  const double seconds = std::chrono::duration<double>(now - begun_).count();
  journal({{"r", "end"}, {"state", state}, {"seconds", seconds}});
  if (downtime_.started() && !downtime_.ended() && state != "succeeded")
    log("", "",
        "the downtime window never ended: " + format_seconds(downtime_.elapsed(unix_now())) +
            " so far");
  if (downtime_.ended() && downtime_.predicted_at_start())
    log("", "",
        "downtime " + format_estimate(downtime_.elapsed(unix_now())) + ", predicted " +
            prediction_error_text(*downtime_.predicted_at_start(), downtime_.elapsed(unix_now())) +
            " when it started");
  sink_(RunEvent{state, seconds});
}

void Executor::on_host(const std::string& host, const std::string& state, const std::string& error,
                       RunClock::time_point, const std::string& facts) {
  host_state_[host] = state;
  sink_(HostEvent{host, state, error, facts});
  if (state != "failed") return;
  for (auto& setup : peers_) {
    if (setup.job_id.empty()) continue;
    const bool on_it =
        (setup.stage == PeerSetup::Stage::kRevoke || setup.stage == PeerSetup::Stage::kAuthorize)
            ? setup.link.peer == host
            : setup.link.host == host;
    if (!on_it) continue;
    if (setup.stage == PeerSetup::Stage::kKeygen || setup.stage == PeerSetup::Stage::kAuthorize) {
      setup.stage = PeerSetup::Stage::kFailed;
      setup.error = host + " is unreachable: " + error;
    } else {
      log("", host, "the migration key could not be removed: the host is unreachable");
    }
    setup.job_id.clear();
  }
  // A job on a host that cannot be reached may still be running there: its outcome is
  // unknown, never "failed". The step waits until the agent can be asked (a resume, once the
  // host is back), or the operator aborts.
  for (auto& run : runs_) {
    if (run.state != StepState::kRunning) continue;
    for (const auto& job : run.jobs)
      if (job.host == host && !job.done) {
        set_state(run, StepState::kRunning,
                  "outcome unknown: " + host +
                      " is unreachable (its job may still be running "
                      "there); waiting to ask its agent",
                  false);
        log(run.step->id, host,
            host + " is unreachable: " + error + "; job " + job.job_id +
                " may still be running there. It is not started again: leave and --resume once "
                "the host is back, or abort");
        break;
      }
  }
}

std::string Executor::took_against_predicted() const {
  std::string line = "the window's steps took (predicted):";
  for (const auto& f : forecast_at_start_.steps) {
    const StepRun* run = find(f.step->id);
    if (!run) continue;
    line += " " + f.step->id + " " +
            (run->state == StepState::kSucceeded ? format_estimate(run->seconds)
                                                 : state_name(run->state)) +
            " (" + (f.seconds ? format_estimate(*f.seconds) : std::string("?")) + ")";
  }
  return line;
}

void Executor::update_prediction(RunClock::time_point now) {
  if (downtime_.ended()) return;
  const auto window = downtime_window(plan_);
  if (window.empty()) return;
  std::vector<StepHistory> history;
  for (const auto& run : runs_)
    if (run.state == StepState::kSucceeded)
      history.push_back(StepHistory{run.step, run.results, run.round_results});
  ForecastInput in = forecast_input(plan_, window, history, options_.past);
  for (const auto& tracker : trackers_)
    if (tracker.state == Tracker::State::kArmed)
      in.watches[tracker.key] = WatchedChanges{tracker.paths, tracker.bytes};
  for (const auto& run : runs_) {
    if (run.approved) in.approved_ahead.insert(run.step->id);
    if (run.state == StepState::kPending && failed_optional_need(run))
      in.progress.will_skip.insert(run.step->id);
  }
  if (downtime_.started()) {
    in.progress.elapsed_s = downtime_.elapsed(unix_now());
    for (const Step* step : window) {
      const StepRun* run = find(step->id);
      if (run->state == StepState::kSucceeded || run->state == StepState::kSkipped)
        in.progress.finished[step->id] = run->seconds;
      else if (run->state == StepState::kRunning)
        in.progress.running[step->id] = std::chrono::duration<double>(now - run->started).count();
    }
  }
  forecast_ = forecast_window(in);
  if (downtime_.started() && !forecast_told_) {
    // Once, as the window opens: what each of its steps is expected to take, and why.
    forecast_told_ = true;
    forecast_at_start_ = forecast_;
    for (const auto& f : forecast_.steps) {
      std::string line = "predicted: " + f.step->id + " " +
                         (f.seconds ? format_estimate(*f.seconds) : std::string("unknown")) +
                         (f.seconds ? " (" + f.source + ")" : "");
      if (f.gate && !f.approval_source.empty())
        line += ", its approval " +
                (f.approval_s ? format_estimate(*f.approval_s) + " (" + f.approval_source + ")"
                              : std::string("unknown"));
      log("", "", line);
    }
  }
  if (!forecast_.known) return;
  const double total = forecast_.total_s();
  const auto before = downtime_.predicted();
  if (before && std::abs(*before - total) < 0.5 && downtime_.at_least() == forecast_.at_least)
    return;
  downtime_.set_predicted(total, forecast_.at_least);
  DowntimeEvent e = downtime_.event("predicted", unix_now());
  e.basis = describe_forecast(forecast_);
  sink_(e);
  const auto budget = plan_.settings.downtime_budget;
  if (budget && total > static_cast<double>(budget->count()) &&
      !(before && *before > static_cast<double>(budget->count())))
    log("", "",
        "warning: predicted downtime " + format_seconds(total) + " exceeds the budget " +
            format_seconds(static_cast<double>(budget->count())));
}

nlohmann::json Executor::status(RunClock::time_point now) const {
  nlohmann::json steps = nlohmann::json::array();
  nlohmann::json awaiting = nlohmann::json::array();
  nlohmann::json pre_approved = nlohmann::json::array();
  for (const auto& run : runs_) {
    const bool ahead = run.approved && run.state == StepState::kPending;
    steps.push_back({{"step", run.step->id},
                     {"phase", run.step->phase},
                     {"state", state_name(run.state)},
                     {"detail", run.detail},
                     {"attempt", run.attempt},
                     {"approved", run.approved},
                     {"approved_by", run.approved ? nlohmann::json(run.approved_by) : nullptr},
                     {"approved_how", run.approved ? nlohmann::json(run.approved_how) : nullptr},
                     {"pre_approved", ahead}});
    if (run.state == StepState::kAwaitingApproval) awaiting.push_back(run.step->id);
    if (ahead) pre_approved.push_back(run.step->id);
  }
  nlohmann::json downtime = {{"started", downtime_.started()},
                             {"ended", downtime_.ended()},
                             {"seconds", downtime_.elapsed(unix_now())}};
  if (downtime_.predicted()) downtime["predicted_s"] = *downtime_.predicted();
  if (downtime_.predicted_at_start())
    downtime["predicted_at_start_s"] = *downtime_.predicted_at_start();
  if (downtime_.ended() && downtime_.predicted_at_start()) {
    // Over: what it was promised against what it took, as `cutpilot runs` shows it.
    downtime["predicted_s"] = *downtime_.predicted_at_start();
    if (const auto pct =
            prediction_error_pct(*downtime_.predicted_at_start(), downtime_.elapsed(unix_now())))
      downtime["error_pct"] = *pct;
  }
  if (downtime_.predicted()) {
    downtime["at_least"] = forecast_.at_least;
    downtime["machine_s"] = forecast_.machine_s;
    downtime["operator_s"] = forecast_.operator_s;
    nlohmann::json parts = nlohmann::json::array();
    for (const auto& f : forecast_.steps) {
      nlohmann::json part = {{"step", f.step->id},
                             {"predicted_s", f.seconds ? nlohmann::json(*f.seconds) : nullptr},
                             {"source", f.source}};
      if (f.gate && !f.approval_source.empty()) {
        part["approval_s"] = f.approval_s ? nlohmann::json(*f.approval_s) : nullptr;
        part["approval_source"] = f.approval_source;
      }
      parts.push_back(part);
    }
    downtime["steps"] = parts;
  }
  if (!downtime_ended_by_.empty()) downtime["ended_by"] = downtime_ended_by_;
  return {{"live", true},
          {"run", options_.run_id},
          {"plan", plan_.settings.name},
          {"state", ended_      ? *ended_
                    : aborting_ ? "aborting"
                                : "running"},
          {"seconds", std::chrono::duration<double>(now - begun_).count()},
          {"steps", steps},
          {"awaiting_approval", awaiting},
          {"pre_approved", pre_approved},
          {"downtime", downtime}};
}

}  // namespace cutpilot::plans
