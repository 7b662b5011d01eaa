// Reading [[steps]] tables: the step's own keys, its action (through the kinds table) and
// its rollback.
#include "plans/steps.h"

#include <algorithm>

#include "plans/step_read.h"

namespace cutpilot::plans {
namespace {

constexpr std::string_view kGates[] = {"auto", "approve"};
constexpr std::string_view kDowntimes[] = {"none", "start", "end"};
// The phase of a first step that names none.
constexpr std::string_view kDefaultPhase = "main";
// Retries beyond this are a typo, not a plan.
constexpr int64_t kMaxRetries = 100;

const ActionKindSpec* find_kind(std::string_view key) {
  for (const ActionKindSpec& kind : action_kinds())
    if (kind.key == key) return &kind;
  return nullptr;
}

// Reads one action entry (`exec = { ... }`) of a step or of its rollback.
std::optional<Action> read_action_entry(Reader& reader, const Entry& entry, StepRead& x,
                                        const std::string& where) {
  ActionInput input{reader, entry, std::string(entry.key) + " of " + where, x.hosts};
  return find_kind(entry.key)->read(input);
}

void read_action_field(Reader& r, const Entry& e, StepRead& x) {
  if (++x.actions > 1) {
    r.error(r.source().key_pos(e.value, e.key),
            x.section + " has a second action " + quote(e.key) + " (already " +
                std::string(x.kind) + "); a step does one thing: split it into two steps");
    return;
  }
  x.kind = find_kind(e.key)->key;
  x.action_pos = r.source().key_pos(e.value, e.key);
  if (auto action = read_action_entry(r, e, x, x.section)) {
    x.step.action = std::move(*action);
    x.action_ok = true;
  }
}

// The rollback value that says a step has none on purpose.
constexpr std::string_view kNoRollback = "none";

void read_rollback(Reader& r, const Entry& e, StepRead& x) {
  x.has_rollback = true;
  const std::string where = "the rollback of " + x.section;
  std::vector<std::string_view> kinds;
  for (const ActionKindSpec& kind : action_kinds())
    kinds.push_back(kind.key);
  // "none" says no rollback on purpose (an abort must leave this step's effect as it is):
  // no automatic one, and no warning that a destructive step lacks one.
  if (e.value.is_string() && e.value.as_string().str == kNoRollback) {
    x.step.no_rollback = true;
    return;
  }
  if (!e.value.is_table()) {
    r.value_error(e,
                  "must be a table holding one action: rollback = { exec = { run = [...] } }, "
                  "or \"none\" for no rollback on purpose");
    return;
  }
  const auto entries = r.source().entries_in_order(e.value);
  if (entries.empty())
    r.value_error(e, "is empty; it needs one action: rollback = { exec = { run = [...] } }");
  size_t seen = 0;
  for (const auto& [key, value] : entries) {
    const SourcePos at = r.source().key_pos(*value, *key);
    if (!find_kind(*key)) {
      r.error(at, "unknown action " + quote(*key) + " in " + where + did_you_mean(*key, kinds));
      continue;
    }
    if (++seen > 1) {
      r.error(at, where + " has a second action " + quote(*key) + "; it takes one");
      continue;
    }
    const Entry action{e.section, *key, *value};
    if (auto read = read_action_entry(r, action, x, where)) x.step.rollback = std::move(*read);
  }
}

void read_when(Reader& r, const Entry& e, StepRead& x) {
  auto text = r.string(e);
  if (!text) return;
  std::string error;
  auto condition = parse_condition(*text, error);
  if (!condition) {
    r.value_error(e, error);
    return;
  }
  x.when = Located{condition->step, r.source().pos_of(e.value)};
  x.step.when = std::move(*condition);
}

constexpr FieldSpec<StepRead> kStepFields[] = {
    {"id",
     [](Reader& r, const Entry& e, StepRead& x) {
       x.id_pos = r.source().pos_of(e.value);
       auto v = r.string(e);
       if (v && !valid_step_id(*v))
         r.value_error(e, "may use only letters, digits, '-' and '_', not " + quote(*v));
       if (v) x.step.id = std::move(*v);
     }},
    {"title",
     [](Reader& r, const Entry& e, StepRead& x) {
       if (auto v = r.string(e)) x.step.title = std::move(*v);
     }},
    {"phase",
     [](Reader& r, const Entry& e, StepRead& x) {
       x.phase_set = true;
       if (auto v = r.string(e)) x.step.phase = std::move(*v);
     }},
    {"on",
     [](Reader& r, const Entry& e, StepRead& x) {
       if (auto v = r.list(e, /*single=*/true, /*allow_empty=*/false)) x.on = std::move(*v);
     }},
    {"needs",
     [](Reader& r, const Entry& e, StepRead& x) {
       if (auto v = r.list(e, /*single=*/true, /*allow_empty=*/true)) x.needs = std::move(*v);
     }},
    {"gate",
     [](Reader& r, const Entry& e, StepRead& x) {
       x.gate_pos = r.source().pos_of(e.value);
       if (auto v = r.choice(e, kGates))
         x.step.gate = *v == "approve" ? Gate::kApprove : Gate::kAuto;
     }},
    {"confirm",
     [](Reader& r, const Entry& e, StepRead& x) {
       x.confirm_pos = r.source().pos_of(e.value);
       if (auto v = r.string(e)) x.step.confirm = std::move(*v);
     }},
    {"downtime",
     [](Reader& r, const Entry& e, StepRead& x) {
       x.downtime_pos = r.source().pos_of(e.value);
       if (auto v = r.choice(e, kDowntimes))
         x.step.downtime = *v == "start" ? Downtime::kStart
                           : *v == "end" ? Downtime::kEnd
                                         : Downtime::kNone;
     }},
    {"rollback", read_rollback},
    {"timeout",
     [](Reader& r, const Entry& e, StepRead& x) {
       if (auto v = r.duration(e)) x.step.timeout = *v;
     }},
    {"retries",
     [](Reader& r, const Entry& e, StepRead& x) {
       if (auto v = r.integer(e, 0, kMaxRetries)) x.step.retries = static_cast<uint32_t>(*v);
     }},
    {"when", read_when},
    {"point_of_no_return",
     [](Reader& r, const Entry& e, StepRead& x) {
       x.pnr_pos = r.source().pos_of(e.value);
       if (auto v = r.boolean(e)) x.step.point_of_no_return = *v;
     }},
    {"expect",
     [](Reader& r, const Entry& e, StepRead& x) {
       if (auto v = r.duration(e)) x.step.expect = *v;
     }},
    {"optional",
     [](Reader& r, const Entry& e, StepRead& x) {
       if (auto v = r.boolean(e)) x.step.optional = *v;
     }},
};

// The step's own keys followed by one entry per action kind.
std::vector<FieldSpec<StepRead>> step_fields() {
  std::vector<FieldSpec<StepRead>> fields(std::begin(kStepFields), std::end(kStepFields));
  for (const ActionKindSpec& kind : action_kinds())
    fields.push_back({kind.key, read_action_field});
  return fields;
}

// Whether the step table has an unknown key that is a likely typo of an action kind (`exce`):
// its unknown-key error says so, and "has no action" would only repeat it.
bool misspelt_action(const toml::value& table, const std::vector<FieldSpec<StepRead>>& fields) {
  std::vector<std::string_view> kinds;
  for (const ActionKindSpec& kind : action_kinds())
    kinds.push_back(kind.key);
  for (const auto& entry : table.as_table()) {
    const std::string& key = entry.first;
    const bool known = std::any_of(fields.begin(), fields.end(),
                                   [&](const FieldSpec<StepRead>& f) { return f.key == key; });
    if (!known && closest_match(key, kinds)) return true;
  }
  return false;
}

// Replaces each "group:NAME" in `on` with the group's hosts, in inventory order. A host that
// two groups (or a group and its own name) bring in is kept once; a host named twice by
// itself stays twice, for check_steps to report.
void expand_groups(Reader& reader, StepRead& x, const std::vector<HostGroup>& groups) {
  std::vector<Located> hosts;
  std::vector<bool> by_group;  // hosts[i] came from a group
  const auto has = [&](const std::string& name) {
    for (size_t i = 0; i < hosts.size(); ++i)
      if (hosts[i].text == name) return std::optional<size_t>(i);
    return std::optional<size_t>();
  };
  for (Located& item : x.on) {
    if (item.text.rfind(kGroupPrefix, 0) != 0) {
      const auto seen = has(item.text);
      if (seen && by_group[*seen]) continue;
      hosts.push_back(std::move(item));
      by_group.push_back(false);
      continue;
    }
    const std::string name = item.text.substr(kGroupPrefix.size());
    const auto group = std::find_if(groups.begin(), groups.end(),
                                    [&](const HostGroup& g) { return g.name == name; });
    if (group == groups.end()) {
      std::vector<std::string_view> known;
      if (groups.size() <= kMaxSuggestCandidates)
        for (const HostGroup& g : groups)
          known.push_back(g.name);
      reader.error(item.pos, "unknown group " + quote(name) + " in 'on' of " + x.section +
                                 (groups.empty() ? std::string(" (groups come from an Ansible "
                                                               "inventory: [plan] inventory = "
                                                               "\"FILE\")")
                                                 : did_you_mean(name, known)));
      continue;
    }
    if (group->hosts.empty())
      reader.error(item.pos, "group " + quote(name) + " in 'on' of " + x.section +
                                 " has no hosts in the inventory");
    for (const std::string& host : group->hosts) {
      if (has(host)) continue;
      hosts.push_back({host, item.pos});
      by_group.push_back(true);
    }
  }
  x.on = std::move(hosts);
}

StepRead read_step(Reader& reader, const toml::value& table, size_t index,
                   const std::vector<FieldSpec<StepRead>>& fields, std::string_view phase,
                   const std::vector<HostGroup>& groups) {
  StepRead x;
  x.step.pos = reader.source().pos_of(table);
  const auto id = table.as_table().find("id");
  x.section = id != table.as_table().end() && id->second.is_string()
                  ? "step " + quote(id->second.as_string().str)
                  : "step #" + std::to_string(index + 1);
  read_fields<StepRead>(reader, table, x.section, fields, x);
  if (!table.contains("id"))
    reader.error(x.step.pos, x.section +
                                 " has no 'id' (id = \"NAME\" names it for needs and "
                                 "approvals)");
  if (x.actions == 0 && !misspelt_action(table, fields)) {
    std::string kinds;
    for (const ActionKindSpec& kind : action_kinds())
      kinds += (kinds.empty() ? "" : ", ") + std::string(kind.key);
    reader.error(x.step.pos, x.section + " has no action (one of " + kinds + ")");
  }
  if (!x.has_rollback && x.action_ok) x.step.rollback = default_rollback(x.step.action);
  if (x.step.title.empty()) x.step.title = x.step.id;
  if (!x.phase_set || x.step.phase.empty()) x.step.phase = std::string(phase);
  expand_groups(reader, x, groups);
  for (const Located& host : x.on)
    x.step.on.push_back(host.text);
  for (const Located& need : x.needs)
    x.step.needs.push_back(need.text);
  return x;
}

}  // namespace

std::vector<Step> read_steps(Reader& reader, const toml::value& steps,
                             const std::vector<HostSpec>& hosts,
                             const std::vector<HostGroup>& groups) {
  const std::vector<FieldSpec<StepRead>> fields = step_fields();
  std::vector<StepRead> read;
  std::string phase(kDefaultPhase);
  const auto& tables = steps.as_array();
  for (size_t i = 0; i < tables.size(); ++i) {
    read.push_back(read_step(reader, tables[i], i, fields, phase, groups));
    phase = read.back().step.phase;
  }
  check_steps(reader, read, hosts);
  std::vector<Step> out;
  out.reserve(read.size());
  for (StepRead& step : read)
    out.push_back(std::move(step.step));
  return out;
}

}  // namespace cutpilot::plans
