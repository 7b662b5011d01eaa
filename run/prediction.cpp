#include "run/prediction.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "plans/size.h"
#include "plans/step.h"
#include "run/downtime.h"

namespace cutpilot::plans {
namespace {

// A number field of a job result, or nullopt.
std::optional<double> number(const std::string& result, const char* key) {
  const auto json = nlohmann::json::parse(result, nullptr, false);
  if (!json.is_object() || !json.contains(key) || !json[key].is_number()) return std::nullopt;
  return json[key].get<double>();
}

bool same_transfer(const SyncAction& a, const SyncAction& b) {
  return a.from_host == b.from_host && a.from_path == b.from_path && a.to_host == b.to_host &&
         a.to_path == b.to_path;
}

// The slowest host's value of key over a step's results.
std::optional<double> slowest(const StepHistory& h, const char* key) {
  std::optional<double> most;
  for (const auto& result : h.results)
    if (const auto v = number(result, key); v && (!most || *v > *most)) most = v;
  return most;
}

double seconds_of(Millis d) {
  return std::chrono::duration<double>(d).count();
}

// A duration and where it comes from.
struct Sourced {
  std::optional<double> seconds;
  std::string source;
  // Bytes at a rate only: a sync's fixed costs (the walk, the connections) are left out.
  bool bytes_only = false;
};

// The fastest bytes per second any round of a pre-sync moved (a quiet last round has none).
double best_rate(const StepHistory& h) {
  double best = 0;
  for (const auto* list : {&h.results, &h.rounds})
    for (const auto& result : *list) {
      const auto bytes = number(result, "bytes"), seconds = number(result, "seconds");
      if (bytes && seconds && *seconds > 0) best = std::max(best, *bytes / *seconds);
    }
  return best;
}

// A final sync whose transfer a watch tracks: the watch's bytes at the fastest rate a round of
// the pre-sync moved, and its paths at what the last round took per entry it looked at.
Sourced from_watch(const Step& step, const SyncAction& sync, const ForecastInput& in,
                   const StepHistory& round) {
  const double rate = best_rate(round);
  std::optional<WatchedChanges> most;
  for (const auto& host : step.on)
    if (const auto it = in.watches.find(sync.track_key(host)); it != in.watches.end())
      if (!most || it->second.bytes + it->second.paths > most->bytes + most->paths)
        most = it->second;
  const auto seconds = slowest(round, "seconds");
  const auto entries = slowest(round, "files");
  if (!most || !seconds || !entries || *entries <= 0) return {};
  double predicted = most->paths * (*seconds / *entries);
  if (most->bytes > 0 && rate <= 0) return {};  // no rate to move the bytes at
  if (most->bytes > 0) predicted += most->bytes / rate;
  // The connection and rsync's start are not in it (a tracked copy of nothing still pays
  // them): what the step took before, or its expect, is its floor (bytes_only).
  return {predicted,
          "the watch's " + std::to_string(most->paths) + " changed paths, " +
              format_size(most->bytes) + ", at " + round.step->id + "'s rate",
          true};
}

// A final sync from this run's pre-sync of the same transfer: what its watch recorded (when it
// has one), else the latest estimate's bytes at the rate its last round moved, else that
// round's time.
Sourced from_presync(const Step& step, const SyncAction& sync, const ForecastInput& in) {
  const std::vector<StepHistory>& history = *in.history;
  const StepHistory* last = nullptr;
  double rate = 0, estimate_bytes = -1;
  std::optional<double> last_round;
  std::string round_step;
  for (const auto& h : history) {
    const auto* earlier = std::get_if<SyncAction>(&h.step->action);
    if (!earlier || !same_transfer(*earlier, sync) || h.step->on != step.on) continue;
    if (earlier->mode == SyncMode::kEstimate) {
      estimate_bytes = slowest(h, "bytes").value_or(-1);
    } else if (earlier->mode == SyncMode::kCopy) {
      const double bytes = slowest(h, "bytes").value_or(0);
      last_round = slowest(h, "seconds");
      round_step = h.step->id;
      if (last_round && *last_round > 0 && bytes > 0) rate = bytes / *last_round;
      estimate_bytes = -1;  // an estimate older than this copy is stale
      last = &h;
    }
  }
  if (last && !sync.track_changes)
    if (Sourced watched = from_watch(step, sync, in, *last); watched.seconds) return watched;
  if (estimate_bytes >= 0 && rate > 0)
    return {estimate_bytes / rate, "estimate at the rate of " + round_step, true};
  if (last_round) return {last_round, "last round of " + round_step};
  return {};
}

// A database copy from this run's rehearsal of the same source database.
Sourced from_rehearsal(const DbAction& db, const std::vector<StepHistory>& history) {
  for (auto it = history.rbegin(); it != history.rend(); ++it) {
    const auto* earlier = std::get_if<DbAction>(&it->step->action);
    if (earlier && earlier->op == DbOp::kCopy && earlier->engine == db.engine &&
        earlier->from.database == db.from.database)
      if (const auto seconds = slowest(*it, "seconds"))
        return {seconds, "rehearsal " + it->step->id};
  }
  return {};
}

// A catch-up from what its replicate step's job estimated once it streamed (a count of the
// copy, its lag then).
Sourced from_replica(const DbAction& db, const std::vector<StepHistory>& history) {
  for (auto it = history.rbegin(); it != history.rend(); ++it)
    if (it->step->id == db.of)
      if (const auto seconds = slowest(*it, "catch_up_s"))
        return {seconds, "a count of the copy in " + db.of};
  return {};
}

// What this run measured for the step, when its kind has such a source.
Sourced from_this_run(const Step& step, const ForecastInput& in) {
  if (const auto* sync = std::get_if<SyncAction>(&step.action);
      sync && sync->mode == SyncMode::kCopy)
    return from_presync(step, *sync, in);
  if (const auto* db = std::get_if<DbAction>(&step.action); db && db->op == DbOp::kCopy)
    return from_rehearsal(*db, *in.history);
  if (const auto* db = std::get_if<DbAction>(&step.action); db && db->op == DbOp::kCatchUp)
    return from_replica(*db, *in.history);
  if (const auto* wait = std::get_if<WaitAction>(&step.action))
    return {seconds_of(wait->duration), "its length"};
  return {};
}

// The step's time from what is known of it beyond this run: an earlier run, expect, an
// earlier run of the step before it changed, a health wait's interval.
Sourced from_before(const Step& step, const ForecastInput& in) {
  if (const auto it = in.past->step_seconds.find(step.id); it != in.past->step_seconds.end())
    return {it->second.seconds, "earlier run " + it->second.run};
  if (step.expect) return {seconds_of(*step.expect), "expect"};
  if (const auto it = in.past->changed_seconds.find(step.id); it != in.past->changed_seconds.end())
    return {it->second.seconds, "earlier run " + it->second.run + ", before the step changed"};
  if (const auto* health = std::get_if<HealthAction>(&step.action);
      health && health->mode == HealthMode::kWait)
    return {health->interval ? seconds_of(*health->interval) : 1.0, "its interval"};
  return {std::nullopt, "unknown"};
}

// The step's predicted time from its first source that knows. A final sync's estimate at
// the pre-sync's rate counts only bytes, so what the step took before (or its expect) is
// its floor: a small delta still pays for the walk and the connections.
Sourced machine_time(const Step& step, const ForecastInput& in) {
  Sourced now = from_this_run(step, in);
  if (!now.seconds) return from_before(step, in);
  if (!now.bytes_only) return now;
  const Sourced before = from_before(step, in);
  if (!before.seconds || *before.seconds <= *now.seconds) return now;
  return {before.seconds,
          now.source + " (" + format_estimate(*now.seconds) + "), at least " + before.source};
}

// The operator's predicted time at a gate inside the window.
Sourced approval_time(const Step& step, const ForecastInput& in) {
  if (in.approved_ahead.count(step.id) || in.progress.approved.count(step.id))
    return {0.0, "approved ahead"};
  if (const auto it = in.past->approval_seconds.find(step.id);
      it != in.past->approval_seconds.end())
    return {it->second.seconds, "earlier run " + it->second.run};
  if (in.approval_default_s) return {in.approval_default_s, "the plan's approval_time"};
  return {std::nullopt, "unknown"};
}

}  // namespace

std::string format_estimate(double seconds) {
  if (seconds >= 9.95) return format_seconds(seconds);
  char text[16];
  std::snprintf(text, sizeof text, "%.1fs", seconds < 0 ? 0.0 : seconds);
  return text;
}

PastRuns past_runs(const std::vector<const JournalState*>& journals,
                   const std::map<std::string, std::string>& fingerprints,
                   const std::string& skip_run) {
  PastRuns past;
  for (const JournalState* journal : journals) {  // oldest first: newer runs overwrite
    if (journal->run_id == skip_run) continue;
    ++past.runs;
    for (const auto& [id, step] : journal->steps) {
      const auto then = journal->fingerprints.find(id);
      const auto now = fingerprints.find(id);
      if (now == fingerprints.end()) continue;  // no such step any more
      const bool same = then != journal->fingerprints.end() && then->second == now->second;
      std::optional<double> took;
      if (step.state == "succeeded" && step.seconds)
        took = step.seconds;
      else if (step.state == "succeeded" && step.started_unix > 0 &&
               step.ended_unix >= step.started_unix)  // a journal from before "seconds"
        took = step.ended_unix - step.started_unix;
      if (took) (same ? past.step_seconds : past.changed_seconds)[id] = {*took, journal->run_id};
      if (!same) continue;
      if (step.approved_how == "gate" && step.awaiting_unix > 0 &&
          step.approved_unix >= step.awaiting_unix)
        past.approval_seconds[id] = {step.approved_unix - step.awaiting_unix, journal->run_id};
    }
  }
  return past;
}

ForecastInput forecast_input(const Plan& plan, const std::vector<const Step*>& window,
                             const std::vector<StepHistory>& history, const PastRuns& past) {
  ForecastInput in;
  in.window = &window;
  in.history = &history;
  in.past = &past;
  if (plan.settings.approval_time) in.approval_default_s = seconds_of(*plan.settings.approval_time);
  return in;
}

WindowForecast forecast_window(const ForecastInput& in) {
  WindowForecast out;
  out.elapsed_s = in.progress.elapsed_s;
  const auto& window = *in.window;
  std::map<std::string, double> ends;  // step → when it ends on the critical path (the rest)
  for (size_t i = 0; i < window.size(); ++i) {
    const Step& step = *window[i];
    StepForecast f{&step};
    // The window's first step passed its gate before the clock started.
    f.gate = i > 0 && gated(step);
    if (in.progress.will_skip.count(step.id)) {
      f.seconds = 0.0;
      f.source = "skipped: a step it needs failed";
      out.steps.push_back(f);
      continue;
    }
    const auto finished = in.progress.finished.find(step.id);
    if (finished != in.progress.finished.end()) {
      f.seconds = finished->second;
      f.source = "took";  // (what is done predicts nothing of the rest)
      out.steps.push_back(f);
      continue;  // done: nothing of it is left
    }
    const Sourced machine = machine_time(step, in);
    f.seconds = machine.seconds;
    f.source = machine.source;
    double left = 0;
    if (machine.seconds) {
      out.known = true;
      left = *machine.seconds;
      if (const auto running = in.progress.running.find(step.id);
          running != in.progress.running.end())
        left = std::max(0.0, left - running->second);
    } else {
      out.at_least = true;
    }
    if (f.gate && !in.progress.running.count(step.id)) {
      const Sourced approval = approval_time(step, in);
      f.approval_s = approval.seconds;
      f.approval_source = approval.source;
      if (approval.seconds)
        out.operator_s += *approval.seconds;
      else
        out.at_least = true;
    }
    // Critical path: a step starts once the window's steps it waits for have ended.
    double start = 0;
    std::vector<std::string> deps = step.needs;
    if (step.when) deps.push_back(step.when->step);
    for (const auto& dep : deps)
      if (const auto it = ends.find(dep); it != ends.end()) start = std::max(start, it->second);
    ends[step.id] = start + left;
    out.machine_s = std::max(out.machine_s, start + left);
    out.steps.push_back(f);
  }
  return out;
}

std::optional<double> prediction_error_pct(double predicted_s, double actual_s) {
  if (actual_s <= 0) return std::nullopt;
  return (predicted_s - actual_s) / actual_s * 100.0;
}

std::string prediction_error_text(double predicted_s, double actual_s) {
  std::string text = format_estimate(predicted_s);
  const auto pct = prediction_error_pct(predicted_s, actual_s);
  if (!pct) return text;
  const long rounded = std::lround(std::abs(*pct));
  if (rounded == 0) return text + " (spot on)";
  return text + " (" + std::to_string(rounded) + "% " + (*pct < 0 ? "short" : "over") + ")";
}

std::string describe_forecast(const WindowForecast& forecast) {
  if (!forecast.known) return "unknown (no step of the window has a source)";
  std::string text = (forecast.at_least ? "at least " : "~") + format_estimate(forecast.total_s());
  std::string parts = "machine " + format_estimate(forecast.machine_s);
  bool gates = false, unknown_gate = false;
  for (const auto& f : forecast.steps) {
    gates = gates || (f.gate && !f.approval_source.empty());
    unknown_gate = unknown_gate || (f.gate && !f.approval_source.empty() && !f.approval_s);
  }
  if (gates && !unknown_gate) parts += " + approvals ~" + format_estimate(forecast.operator_s);
  if (unknown_gate)
    parts += forecast.operator_s > 0
                 ? " + approvals at least " + format_estimate(forecast.operator_s)
                 : std::string(" + approvals unknown");
  if (forecast.elapsed_s > 0) parts = format_estimate(forecast.elapsed_s) + " so far + " + parts;
  std::vector<std::string> unknown;
  for (const auto& f : forecast.steps) {
    if (!f.seconds) unknown.push_back(f.step->id);
    if (f.gate && !f.approval_source.empty() && !f.approval_s)
      unknown.push_back("the approval of " + f.step->id);
  }
  if (!unknown.empty()) {
    parts += "; no source for ";
    for (size_t i = 0; i < unknown.size(); ++i)
      parts += (i ? ", " : "") + unknown[i];
  }
  return text + " (" + parts + ")";
}

}  // namespace cutpilot::plans
