// The executor's change watches (agents/track_job.h): a hot sync with track_changes starts a
// watch of its source before its first round; the copy of the same from/to that follows asks
// the watch for its set (a seal) and moves those paths alone, or scans the whole tree and
// says why when the set is incomplete. The watches end with the run.
#include <algorithm>

#include "plans/size.h"
#include "run/executor.h"

namespace cutpilot::plans {
namespace {

nlohmann::json object_of(const std::string& text) {
  nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
  return json.is_object() ? json : nlohmann::json::object();
}

}  // namespace

void Executor::job_line(const std::string& step, const std::string& host, const JobUpdate& update) {
  sink_(LogEvent{.step = step,
                 .host = host,
                 .stream = update.stream,
                 .line = update.line,
                 .notice = false,
                 .at = unix_now()});
}

Executor::Tracker* Executor::tracker_for(const std::string& key) {
  const auto it = std::find_if(trackers_.begin(), trackers_.end(),
                               [&](const Tracker& t) { return t.key == key; });
  return it == trackers_.end() ? nullptr : &*it;
}

bool Executor::sync_ready(StepRun& run) {
  const auto* sync = std::get_if<SyncAction>(&run.step->action);
  if (!sync || sync->mode != SyncMode::kCopy) return true;
  bool ready = true;
  for (const auto& host : run.step->on) {
    const std::string key = sync->track_key(host);
    Tracker* tracker = tracker_for(key);
    if (sync->track_changes) {
      if (!tracker) {
        // Journalled before it goes out, like a step's job: a resumed cockpit follows it.
        Tracker started{key, sync->source_host(host), run.step->id,
                        options_.run_id + "/track/" + run.step->id + "/" + host};
        if (!journal({{"r", "track"},
                      {"key", key},
                      {"host", started.host},
                      {"step", run.step->id},
                      {"job", started.job_id}}))
          return false;
        trackers_.push_back(started);
        tracker_jobs_[started.job_id] = trackers_.size() - 1;
        const nlohmann::json spec = {{"path", sync->from_path}};
        port_.start(started.host, started.job_id, JobSpec{"track", spec.dump(), spec.dump()});
        log(run.step->id, started.host,
            "watching " + sync->from_path +
                " for changes; the first round starts once it is armed");
        ready = false;
      } else if (tracker->state == Tracker::State::kStarting) {
        ready = false;
      }
      continue;
    }
    // A watch only covers what changed after its pre-sync copied: not before that succeeded.
    const StepRun* began = tracker ? find(tracker->step) : nullptr;
    if (!tracker || tracker->state != Tracker::State::kArmed || !began ||
        began->state != StepState::kSucceeded)
      continue;  // apply_seal says why
    const auto seal = std::find_if(run.seals.begin(), run.seals.end(),
                                   [&](const HostJob& j) { return j.host == host; });
    if (seal == run.seals.end()) {
      // Not journalled: a seal changes nothing but a list in the watch's spool, and a resumed
      // cockpit seals again under the next attempt.
      const std::string id = job_id(run, host, false) + "/seal";
      const nlohmann::json spec = {{"seal", tracker->job_id}};
      seal_jobs_[id] = run.step->id;
      run.seals.push_back(HostJob{host, id});
      port_.start(tracker->host, id, JobSpec{"track", spec.dump(), spec.dump()});
      ready = false;
    } else if (!seal->done) {
      ready = false;
    }
  }
  run.waiting = !ready;
  return ready;
}

void Executor::start_waiting() {
  if (aborting_ || !fatal_.empty()) return;
  for (auto& run : runs_)
    if (run.state == StepState::kRunning && run.waiting && sync_ready(run))
      start_jobs(run, run.step->action, false);
}

void Executor::tracker_ended(Tracker& tracker, const JobUpdate& update, const std::string& why) {
  tracker.state = Tracker::State::kGone;
  tracker.lost = why;
  journal({{"r", "track"}, {"job", tracker.job_id}, {"ended", why}});
  if (update.kind == JobUpdate::Kind::kFinished) port_.acknowledge(tracker.job_id);
  tracker_jobs_.erase(tracker.job_id);
}

void Executor::show_replica(const std::string& step, const std::string& host,
                            const JobUpdate& update) {
  ProgressEvent p = update.progress;
  p.step = step;
  p.host = host;
  p.unit = "tables";
  sink_(p);
}

bool Executor::replica_streams(StepRun& run, HostJob& job, const JobUpdate& update,
                               RunClock::time_point now) {
  const auto* db = std::get_if<DbAction>(&run.step->action);
  if (!db || !db->replicate || run.rolling_back || job.done ||
      !update.progress.item.starts_with("streaming"))
    return false;
  if (!tracker_jobs_.count(job.job_id)) {
    // Journalled before the step's success: a resumed cockpit follows it (and, should it die
    // in between, finds the step's job streaming and succeeds it then).
    Tracker replica{"replica:" + run.step->id, job.host, run.step->id, job.job_id};
    replica.replica = true;
    replica.state = Tracker::State::kArmed;
    if (!journal({{"r", "track"},
                  {"key", replica.key},
                  {"host", replica.host},
                  {"step", replica.step},
                  {"job", replica.job_id},
                  {"replica", true}}))
      return true;
    trackers_.push_back(replica);
    tracker_jobs_[job.job_id] = trackers_.size() - 1;
  }
  log(run.step->id, job.host,
      "the replica streams (" + update.progress.item +
          "): the step is done; the replication goes on, its lag shown here, until its "
          "catch-up, the run's end or an abort removes it");
  show_replica(run.step->id, job.host, update);
  JobUpdate done;
  done.kind = JobUpdate::Kind::kFinished;
  done.state = "succeeded";
  nlohmann::json result = {{"streaming", true}, {"lag", update.progress.item}};
  if (update.estimate_s) result["catch_up_s"] = *update.estimate_s;
  done.result = result.dump();
  finish_job(run, job, done, now, /*acknowledge=*/false);
  return true;
}

void Executor::on_replica_job(Tracker& replica, const JobUpdate& update, RunClock::time_point now) {
  StepRun* run = find(replica.step);
  switch (update.kind) {
    case JobUpdate::Kind::kProgress: {
      // A resumed cockpit may find the step's job streaming before it said so here.
      const auto job =
          run ? std::find_if(run->jobs.begin(), run->jobs.end(),
                             [&](const HostJob& j) { return j.job_id == replica.job_id; })
              : std::vector<HostJob>::iterator{};
      if (run && job != run->jobs.end() && !job->done && run->state == StepState::kRunning) {
        replica_streams(*run, *job, update, now);
        return;
      }
      show_replica(replica.step, replica.host, update);
      return;
    }
    case JobUpdate::Kind::kLog:
      job_line(replica.step, replica.host, update);
      return;
    case JobUpdate::Kind::kFinished:
    case JobUpdate::Kind::kUnknown: {
      const std::string why = update.kind == JobUpdate::Kind::kUnknown
                                  ? replica.host + " has no record of the job " + replica.job_id
                              : update.error.empty() ? update.state
                                                     : update.state + ": " + update.error;
      if (!replica.stopping && update.state != "succeeded")
        log(replica.step, replica.host,
            "the replication stopped (" + why +
                "); its catch-up fails, and the step's rollback (detach) removes what is left");
      tracker_ended(replica, update, why);
      return;
    }
    default:
      return;
  }
}

void Executor::on_tracker_job(Tracker& tracker, const JobUpdate& update, RunClock::time_point now) {
  using State = Tracker::State;
  if (tracker.replica) return on_replica_job(tracker, update, now);
  switch (update.kind) {
    case JobUpdate::Kind::kProgress:
      tracker.paths = update.progress.files.value_or(0);
      tracker.bytes = update.progress.bytes;
      if (tracker.state == State::kStarting) {
        tracker.state = State::kArmed;
        journal({{"r", "track"}, {"job", tracker.job_id}, {"armed", true}});
        start_waiting();
      }
      // Live: what the final copy would take if the writers stopped now.
      update_prediction(now);
      return;
    case JobUpdate::Kind::kLog:
      job_line(tracker.step, tracker.host, update);
      return;
    case JobUpdate::Kind::kFinished:
    case JobUpdate::Kind::kUnknown: {
      const bool asked = tracker.stopping;
      std::string why = update.kind == JobUpdate::Kind::kUnknown
                            ? tracker.host + " has no record of the watch " + tracker.job_id
                        : update.error.empty() ? "the watch ended"
                                               : "the watch ended: " + update.error;
      if (!asked && tracker.state != State::kGone)
        log(tracker.step, tracker.host,
            (tracker.state == State::kStarting ? "change tracking is off (" + why + ")"
                                               : "change tracking was lost (" + why + ")") +
                "; the next copy of " + tracker.key + " scans the whole tree");
      tracker_ended(tracker, update, why);
      start_waiting();
      return;
    }
    default:
      return;
  }
}

void Executor::on_seal_job(StepRun& run, const std::string& id, const JobUpdate& update) {
  const auto seal = std::find_if(run.seals.begin(), run.seals.end(),
                                 [&](const HostJob& j) { return j.job_id == id; });
  if (seal == run.seals.end() || seal->done) return;
  if (update.kind == JobUpdate::Kind::kLog) {
    job_line(run.step->id, seal->host, update);
    return;
  }
  if (update.kind != JobUpdate::Kind::kFinished && update.kind != JobUpdate::Kind::kUnknown) return;
  seal->done = true;
  seal->ok = update.state == "succeeded";
  seal->result = seal->ok ? update.result : "";
  if (!seal->ok)
    seal->result =
        nlohmann::json{{"complete", false},
                       {"lost", "the watch could not be asked: " +
                                    (update.error.empty() ? update.state : update.error)}}
            .dump();
  if (update.kind == JobUpdate::Kind::kFinished) port_.acknowledge(id);
  seal_jobs_.erase(id);
  start_waiting();
}

void Executor::apply_seal(const StepRun& run, const std::string& host, JobSpec& job) {
  const auto* sync = std::get_if<SyncAction>(&run.step->action);
  if (!sync || sync->track_changes || sync->mode != SyncMode::kCopy) return;
  const Tracker* tracker = tracker_for(sync->track_key(host));
  if (!tracker) return;
  const auto seal = std::find_if(run.seals.begin(), run.seals.end(),
                                 [&](const HostJob& j) { return j.host == host && j.done; });
  nlohmann::json spec = object_of(job.spec);
  std::string why;
  const StepRun* began = find(tracker->step);
  if (seal == run.seals.end() && tracker->state == Tracker::State::kArmed) {
    why = tracker->step + ", whose watch this is, has not succeeded (" +
          (began ? state_name(began->state) : std::string("unknown")) +
          "): the watch holds what changed since it began, not what that copy has yet to copy";
  } else if (seal == run.seals.end() && tracker->state == Tracker::State::kStarting) {
    why = "the watch " + tracker->step + " began is not armed yet";
  } else if (seal == run.seals.end()) {
    why = tracker->lost.empty() ? "the watch never armed" : tracker->lost;
  } else {
    const nlohmann::json said = object_of(seal->result);
    const auto linked = said.value("hard_linked", uint64_t{0});
    if (!said.value("complete", false))
      why = said.value("lost", std::string("the watch gave no answer"));
    else if (sync->hard_links && linked > 0)
      why = std::to_string(linked) +
            " of the changed files have other hard links, which a list of changed paths "
            "cannot keep linked";
    else
      spec["tracked"] = {{"list", said.value("list", std::string())},
                         {"remote", tracker->host != host},
                         {"paths", said.value("paths", uint64_t{0})}};
  }
  if (!why.empty()) {
    spec["scan_reason"] = "change tracking was lost: " + why;
    log(run.step->id, host,
        "the watch's set cannot be used (" + why + "): scanning the whole tree");
  }
  job.spec = job.redacted = spec.dump();
}

void Executor::restore_trackers(const JournalState& state) {
  for (const auto& record : state.tracks) {
    const std::string id = record.value("job", std::string());
    if (record.contains("key")) {
      trackers_.push_back(Tracker{record.value("key", std::string()),
                                  record.value("host", std::string()),
                                  record.value("step", std::string()), id});
      trackers_.back().replica = record.value("replica", false);
      if (trackers_.back().replica) trackers_.back().state = Tracker::State::kArmed;
      continue;
    }
    const auto it = std::find_if(trackers_.begin(), trackers_.end(),
                                 [&](const Tracker& t) { return t.job_id == id; });
    if (it == trackers_.end()) continue;
    if (record.contains("armed") && it->state == Tracker::State::kStarting)
      it->state = Tracker::State::kArmed;
    if (record.contains("ended")) {
      it->state = Tracker::State::kGone;
      it->lost = record.value("ended", std::string());
    }
  }
  for (size_t i = 0; i < trackers_.size(); ++i) {
    if (trackers_[i].state == Tracker::State::kGone) continue;
    tracker_jobs_[trackers_[i].job_id] = i;
    port_.attach(trackers_[i].host, trackers_[i].job_id);  // followed, never started again
  }
}

bool Executor::stop_trackers() {
  bool pending = false;
  for (auto& tracker : trackers_) {
    if (tracker.state == Tracker::State::kGone) continue;
    if (host_state_[tracker.host] == "failed") {
      if (!tracker.stopping)
        log("", tracker.host,
            "cannot stop the watch " + tracker.job_id +
                ": the host is unreachable, so it may still run there (a cutpilot-agent "
                "process): stop it by hand");
      tracker.stopping = true;
      continue;
    }
    if (!tracker.stopping) port_.cancel(tracker.job_id);
    tracker.stopping = true;
    pending = true;
  }
  return pending;
}

}  // namespace cutpilot::plans
