#include "run/downtime.h"

#include <chrono>
#include <cstdio>

#include "plans/step.h"

namespace cutpilot::plans {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double DowntimeClock::elapsed(double unix_now) const {
  if (!started_) return 0;
  return (ended_ ? *ended_ : unix_now) - *started_;
}

DowntimeEvent DowntimeClock::event(const char* state, double unix_now) const {
  return DowntimeEvent{state, elapsed(unix_now),  predicted_, budget_s_, at_least_,
                       "",    predicted_at_start_};
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
