// The step graph in reading order: phases in first-appearance order, each step after
// the steps it waits for.
#include <map>
#include <queue>

#include "plans/plan.h"

namespace cutpilot::plans {

std::vector<std::string> phases(const std::vector<Step>& steps) {
  std::vector<std::string> out;
  for (const Step& step : steps)
    if (std::find(out.begin(), out.end(), step.phase) == out.end()) out.push_back(step.phase);
  return out;
}

std::vector<size_t> ordered_steps(const std::vector<Step>& steps) {
  std::map<std::string_view, size_t, std::less<>> by_id, phase_rank;
  for (size_t i = 0; i < steps.size(); ++i) {
    by_id.emplace(steps[i].id, i);
    phase_rank.emplace(steps[i].phase, phase_rank.size());
  }
  // Kahn's algorithm; among the steps ready at once, the earliest phase, then file order.
  std::vector<std::vector<size_t>> waiting_on_me(steps.size());
  std::vector<size_t> blockers(steps.size(), 0);
  for (size_t i = 0; i < steps.size(); ++i) {
    std::vector<std::string_view> before(steps[i].needs.begin(), steps[i].needs.end());
    if (steps[i].when) before.push_back(steps[i].when->step);
    for (std::string_view id : before) {
      const auto found = by_id.find(id);
      if (found == by_id.end() || found->second == i) continue;
      waiting_on_me[found->second].push_back(i);
      ++blockers[i];
    }
  }
  using Key = std::pair<size_t, size_t>;  // phase rank, file index
  std::priority_queue<Key, std::vector<Key>, std::greater<>> ready;
  for (size_t i = 0; i < steps.size(); ++i)
    if (blockers[i] == 0) ready.push({phase_rank[steps[i].phase], i});
  std::vector<size_t> order;
  std::vector<bool> placed(steps.size(), false);
  while (!ready.empty()) {
    const size_t at = ready.top().second;
    ready.pop();
    order.push_back(at);
    placed[at] = true;
    for (size_t next : waiting_on_me[at])
      if (--blockers[next] == 0) ready.push({phase_rank[steps[next].phase], next});
  }
  // A plan with a cycle has errors; its steps still show, in file order.
  for (size_t i = 0; i < steps.size(); ++i)
    if (!placed[i]) order.push_back(i);
  return order;
}

const Step* Plan::find_step(std::string_view id) const {
  for (const Step& step : steps)
    if (step.id == id) return &step;
  return nullptr;
}

}  // namespace cutpilot::plans
