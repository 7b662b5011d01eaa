// The rules that involve more than one step, or a step and the hosts: every name a step
// uses must exist, the needs must not form a cycle, the downtime window must open and
// close once, and a destructive step should have a way back.
#include <algorithm>
#include <map>

#include "plans/step_read.h"

namespace cutpilot::plans {
namespace {

// A longer cycle is named by its first steps and its length.
constexpr size_t kNamedInCycle = 8;

using Index = std::map<std::string_view, size_t, std::less<>>;

std::vector<std::string_view> names_of(const Index& index) {
  std::vector<std::string_view> names;
  if (index.size() <= kMaxSuggestCandidates)
    for (const auto& [name, at] : index)
      names.push_back(name);
  return names;
}

// Each step's id, once (duplicates are reported and left out).
Index index_steps(Reader& reader, const std::vector<StepRead>& steps) {
  Index index;
  for (size_t i = 0; i < steps.size(); ++i) {
    const StepRead& x = steps[i];
    if (x.step.id.empty()) continue;
    const auto [at, added] = index.emplace(x.step.id, i);
    if (!added)
      reader.error(x.id_pos.value_or(x.step.pos),
                   "duplicate step id " + quote(x.step.id) + " (first used on line " +
                       std::to_string(steps[at->second].id_pos.value_or(SourcePos{}).line) + ")");
  }
  return index;
}

void check_hosts(Reader& reader, const StepRead& x, const Index& hosts) {
  const std::vector<std::string_view> known = names_of(hosts);
  if (x.on.empty() && x.actions > 0 && x.kind != "wait")
    reader.error(x.step.pos, x.section + " has no 'on' (the host or hosts it runs on)");
  for (size_t i = 0; i < x.on.size(); ++i) {
    const Located& host = x.on[i];
    if (!hosts.count(host.text))
      reader.error(host.pos, "unknown host " + quote(host.text) + " in 'on' of " + x.section +
                                 did_you_mean(host.text, known));
    for (size_t j = 0; j < i; ++j)
      if (x.on[j].text == host.text)
        reader.error(host.pos, "host " + quote(host.text) + " is in 'on' of " + x.section +
                                   " twice (a step never runs twice on one host)");
  }
  for (const HostRef& ref : x.hosts) {
    const bool on_step = std::any_of(x.on.begin(), x.on.end(),
                                     [&](const Located& h) { return h.text == ref.name.text; });
    if (!hosts.count(ref.name.text)) {
      reader.error(ref.name.pos, "unknown host " + quote(ref.name.text) + " in " + ref.what +
                                     did_you_mean(ref.name.text, known));
    } else if (ref.use == HostUse::kOther && on_step) {
      reader.error(ref.name.pos, ref.what + " names " + quote(ref.name.text) +
                                     ", a host the step runs on; the other end of a transfer is "
                                     "another host (or write a local path)");
    } else if (ref.use == HostUse::kSelf && (x.on.size() != 1 || !on_step)) {
      reader.error(
          ref.name.pos,
          ref.what + " names " + quote(ref.name.text) + ", but the step runs on " +
              (x.on.empty() ? std::string("no host")
                            : quote(x.on.front().text) + (x.on.size() > 1 ? " and others" : "")) +
              "; the job runs where this database is");
    }
  }
}

// The steps each step must wait for: its needs and the step its `when` reads.
std::vector<std::vector<std::pair<size_t, SourcePos>>> check_references(
    Reader& reader, const std::vector<StepRead>& steps, const Index& index) {
  const std::vector<std::string_view> known = names_of(index);
  std::vector<std::vector<std::pair<size_t, SourcePos>>> edges(steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    const StepRead& x = steps[i];
    for (size_t n = 0; n < x.needs.size(); ++n) {
      const Located& need = x.needs[n];
      const auto found = index.find(need.text);
      if (found == index.end()) {
        reader.error(need.pos, "unknown step " + quote(need.text) + " in 'needs' of " + x.section +
                                   did_you_mean(need.text, known));
      } else if (found->second == i) {
        reader.error(need.pos, x.section + " needs itself");
      } else if (std::any_of(x.needs.begin(), x.needs.begin() + static_cast<std::ptrdiff_t>(n),
                             [&](const Located& earlier) { return earlier.text == need.text; })) {
        reader.error(need.pos, quote(need.text) + " is in 'needs' of " + x.section + " twice");
      } else {
        edges[i].push_back({found->second, need.pos});
      }
    }
    if (!x.when) continue;
    const auto found = index.find(x.when->text);
    if (found == index.end())
      reader.error(x.when->pos, "unknown step " + quote(x.when->text) + " in 'when' of " +
                                    x.section + did_you_mean(x.when->text, known));
    else if (found->second == i)
      reader.error(x.when->pos, x.section + " has a 'when' about itself");
    else
      edges[i].push_back({found->second, x.when->pos});
  }
  return edges;
}

// Finds cycles with an iterative depth-first walk (plans may hold many steps).
void check_cycles(Reader& reader, const std::vector<StepRead>& steps,
                  const std::vector<std::vector<std::pair<size_t, SourcePos>>>& edges) {
  enum class Mark { kNew, kOpen, kDone };
  std::vector<Mark> mark(steps.size(), Mark::kNew);
  for (size_t root = 0; root < steps.size(); ++root) {
    if (mark[root] != Mark::kNew) continue;
    std::vector<std::pair<size_t, size_t>> stack = {{root, 0}};  // step, next edge
    mark[root] = Mark::kOpen;
    while (!stack.empty()) {
      auto& [at, next] = stack.back();
      if (next == edges[at].size()) {
        mark[at] = Mark::kDone;
        stack.pop_back();
        continue;
      }
      const auto [to, pos] = edges[at][next++];
      if (mark[to] == Mark::kNew) {
        mark[to] = Mark::kOpen;
        stack.push_back({to, 0});
        continue;
      }
      if (mark[to] != Mark::kOpen) continue;
      // A way back to a step still open: the stack from it to here is a cycle.
      auto from = std::find_if(stack.begin(), stack.end(),
                               [to = to](const auto& frame) { return frame.first == to; });
      std::string names;
      size_t named = 0;
      for (auto it = from; it != stack.end(); ++it, ++named) {
        if (named == kNamedInCycle) {
          names += "... (" + std::to_string(stack.end() - from) + " steps) -> ";
          break;
        }
        names += quote(steps[it->first].step.id) + " -> ";
      }
      reader.error(pos, "steps need each other in a cycle: " + names + quote(steps[to].step.id));
    }
  }
}

// Phases run in first-appearance order, so a step cannot need one of a later phase.
void check_phases(Reader& reader, const std::vector<StepRead>& steps,
                  const std::vector<std::vector<std::pair<size_t, SourcePos>>>& edges) {
  std::map<std::string_view, size_t, std::less<>> rank;
  for (const StepRead& x : steps)
    rank.emplace(x.step.phase, rank.size());
  for (size_t i = 0; i < steps.size(); ++i)
    for (const auto& [to, pos] : edges[i])
      if (rank[steps[to].step.phase] > rank[steps[i].step.phase])
        reader.error(pos, steps[i].section + " in phase " + quote(steps[i].step.phase) +
                              " waits for " + quote(steps[to].step.id) + " of the later phase " +
                              quote(steps[to].step.phase) +
                              " (phases run in the order they "
                              "first appear)");
}

// True when step from waits, directly or not, for step to.
bool waits_for(size_t from, size_t to,
               const std::vector<std::vector<std::pair<size_t, SourcePos>>>& edges) {
  std::vector<bool> seen(edges.size(), false);
  std::vector<size_t> todo = {from};
  while (!todo.empty()) {
    const size_t at = todo.back();
    todo.pop_back();
    if (at == to) return true;
    if (seen[at]) continue;
    seen[at] = true;
    for (const auto& edge : edges[at])
      todo.push_back(edge.first);
  }
  return false;
}

void check_downtime(Reader& reader, const std::vector<StepRead>& steps,
                    const std::vector<std::vector<std::pair<size_t, SourcePos>>>& edges) {
  std::optional<size_t> start, end;
  for (size_t i = 0; i < steps.size(); ++i) {
    const StepRead& x = steps[i];
    if (x.step.downtime == Downtime::kNone) continue;
    const bool is_start = x.step.downtime == Downtime::kStart;
    std::optional<size_t>& first = is_start ? start : end;
    if (first) {
      reader.error(x.downtime_pos.value_or(x.step.pos),
                   x.section + " is a second downtime " + (is_start ? "start" : "end") +
                       " (the window has one, already " + steps[*first].section + ")");
      continue;
    }
    first = i;
  }
  if (start && !end)
    reader.error(
        steps[*start].downtime_pos.value_or(steps[*start].step.pos),
        steps[*start].section + " starts the downtime but no step ends it (downtime = \"end\")");
  if (end && !start)
    reader.error(
        steps[*end].downtime_pos.value_or(steps[*end].step.pos),
        steps[*end].section + " ends the downtime but no step starts it (downtime = \"start\")");
  if (start && end && !waits_for(*end, *start, edges))
    reader.error(steps[*end].downtime_pos.value_or(steps[*end].step.pos),
                 steps[*end].section + " ends the downtime but does not come after " +
                     steps[*start].section + ", which starts it (add it to 'needs')");
}

// A catch-up or detach takes the databases of the replicate step its `of` names, which it
// must wait for and run where it runs; a catch-up's default rollback (the put-back) follows.
void resolve_replications(Reader& reader, std::vector<StepRead>& steps, const Index& index,
                          const std::vector<std::vector<std::pair<size_t, SourcePos>>>& edges) {
  const std::vector<std::string_view> known = names_of(index);
  for (size_t i = 0; i < steps.size(); ++i) {
    StepRead& x = steps[i];
    auto* db = std::get_if<DbAction>(&x.step.action);
    if (!db || db->of.empty() || !db->of_pos) continue;
    const SourcePos at = *db->of_pos;
    const auto found = index.find(db->of);
    if (found == index.end()) {
      reader.error(at, "unknown step " + quote(db->of) + " in 'of' of " + x.section +
                           did_you_mean(db->of, known));
      continue;
    }
    const StepRead& of = steps[found->second];
    if (!of.action_ok) continue;  // its own error says why
    const auto* replica = std::get_if<DbAction>(&of.step.action);
    if (!replica || !replica->replicate) {
      reader.error(at, "'of' of " + x.section + " names " + of.section +
                           ", which does not replicate a database (db = { mode = "
                           "\"replicate\", ... })");
      continue;
    }
    if (replica->engine != db->engine)
      reader.error(at, x.section + " and " + of.section + " name different engines");
    if (!waits_for(i, found->second, edges))
      reader.error(at, x.section + " ends the replication of " + of.section +
                           " but does not wait for it (add it to 'needs')");
    if (x.step.on != of.step.on)
      reader.error(at, x.section + " must run where " + of.section +
                           " runs (the subscription is on its host)");
    DbAction resolved = *replica;
    resolved.op = db->op;
    resolved.replicate = false;
    resolved.of = db->of;
    resolved.of_pos = db->of_pos;
    resolved.timeout = db->timeout;
    *db = std::move(resolved);
    if (!x.has_rollback && x.action_ok) x.step.rollback = default_rollback(x.step.action);
  }
  // A replication nothing catches up is only removed again at the run's end.
  for (const StepRead& x : steps) {
    const auto* db = std::get_if<DbAction>(&x.step.action);
    if (!db || !db->replicate) continue;
    const bool caught = std::any_of(steps.begin(), steps.end(), [&](const StepRead& other) {
      const auto* end = std::get_if<DbAction>(&other.step.action);
      return end && end->op == DbOp::kCatchUp && end->of == x.step.id;
    });
    if (!caught)
      reader.warning(x.action_pos.value_or(x.step.pos),
                     x.section +
                         " replicates a database that no step catches up (db = { action = "
                         "\"catch-up\", of = \"" +
                         x.step.id + "\" }): the run's end removes the replication and the copy");
  }
}

void check_safety(Reader& reader, const StepRead& x) {
  if (!x.action_ok) return;
  const std::string reason = destructive_reason(x.step.action);
  if (!reason.empty() && !x.has_rollback && !x.step.confirm)
    reader.warning(
        x.action_pos.value_or(x.step.pos),
        x.section + " is destructive (" + reason + ") and has neither 'rollback' nor 'confirm'");
  if (x.step.point_of_no_return && (x.step.gate != Gate::kApprove || !x.step.confirm))
    reader.warning(x.pnr_pos.value_or(x.step.pos),
                   x.section +
                       " is a point of no return: give it gate = \"approve\" and a "
                       "'confirm' text the operator types");
}

}  // namespace

void check_steps(Reader& reader, std::vector<StepRead>& steps, const std::vector<HostSpec>& hosts) {
  Index host_index;
  for (size_t i = 0; i < hosts.size(); ++i)
    host_index.emplace(hosts[i].name, i);
  const Index index = index_steps(reader, steps);
  for (const StepRead& x : steps) {
    check_hosts(reader, x, host_index);
    check_safety(reader, x);
  }
  const auto edges = check_references(reader, steps, index);
  resolve_replications(reader, steps, index, edges);
  check_cycles(reader, steps, edges);
  check_phases(reader, steps, edges);
  check_downtime(reader, steps, edges);
}

}  // namespace cutpilot::plans
