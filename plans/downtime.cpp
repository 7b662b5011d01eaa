#include "plans/downtime.h"

#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "plans/step.h"

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

std::optional<double> predict_sync(const Step& step, const SyncAction& sync,
                                   const std::vector<StepHistory>& history) {
  double rate = 0, estimate_bytes = -1;
  std::optional<double> last_round;
  for (const auto& h : history) {
    const auto* earlier = std::get_if<SyncAction>(&h.step->action);
    if (!earlier || !same_transfer(*earlier, sync) || h.step->on != step.on) continue;
    if (earlier->mode == SyncMode::kEstimate) {
      estimate_bytes = slowest(h, "bytes").value_or(-1);
    } else if (earlier->mode == SyncMode::kCopy) {
      const double bytes = slowest(h, "bytes").value_or(0);
      last_round = slowest(h, "seconds");
      if (last_round && *last_round > 0 && bytes > 0) rate = bytes / *last_round;
      estimate_bytes = -1;  // an estimate older than this copy is stale
    }
  }
  if (estimate_bytes >= 0 && rate > 0) return estimate_bytes / rate;
  return last_round;
}

std::optional<double> predict_db(const DbAction& db, const std::vector<StepHistory>& history) {
  for (auto it = history.rbegin(); it != history.rend(); ++it) {
    const auto* earlier = std::get_if<DbAction>(&it->step->action);
    if (earlier && earlier->op == DbOp::kCopy && earlier->engine == db.engine &&
        earlier->from.database == db.from.database)
      return slowest(*it, "seconds");
  }
  return std::nullopt;
}

}  // namespace

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double DowntimeClock::elapsed(double unix_now) const {
  if (!started_) return 0;
  return (ended_ ? *ended_ : unix_now) - *started_;
}

DowntimeEvent DowntimeClock::event(const char* state, double unix_now) const {
  return DowntimeEvent{state, elapsed(unix_now), predicted_, budget_s_};
}

std::optional<double> predict_downtime(const std::vector<const Step*>& window,
                                       const std::vector<StepHistory>& history) {
  std::optional<double> total;
  for (const Step* step : window) {
    std::optional<double> part;
    if (const auto* sync = std::get_if<SyncAction>(&step->action);
        sync && sync->mode == SyncMode::kCopy)
      part = predict_sync(*step, *sync, history);
    else if (const auto* db = std::get_if<DbAction>(&step->action); db && db->op == DbOp::kCopy)
      part = predict_db(*db, history);
    else if (const auto* wait = std::get_if<WaitAction>(&step->action))
      part = std::chrono::duration<double>(wait->duration).count();
    if (part) total = total.value_or(0) + *part;
  }
  return total;
}

std::vector<const Step*> downtime_window(const Plan& plan) {
  std::vector<const Step*> window;
  bool inside = false;
  for (const size_t i : ordered_steps(plan.steps)) {
    const Step& step = plan.steps[i];
    if (step.downtime == Downtime::kStart) inside = true;
    if (inside) window.push_back(&step);
    if (step.downtime == Downtime::kEnd) break;
  }
  return inside ? window : std::vector<const Step*>{};
}

std::string format_seconds(double seconds) {
  const long s = seconds < 0 ? 0 : static_cast<long>(seconds + 0.5);
  char text[32];
  if (s < 60)
    std::snprintf(text, sizeof text, "%lds", s);
  else if (s < 3600)
    std::snprintf(text, sizeof text, "%ldm %02lds", s / 60, s % 60);
  else
    std::snprintf(text, sizeof text, "%ldh %02ldm", s / 3600, (s % 3600) / 60);
  return text;
}

}  // namespace cutpilot::plans
