// The plan model: typed structs read once from the plan's TOML.
//
// Nothing after the loader looks a setting up by its key name; a key that the
// loader does not know is an error in the plan, not something found at run time.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plans/diagnostic.h"
#include "plans/expand.h"
#include "plans/step.h"

namespace cutpilot::plans {

// The [plan] table: what the plan is called and where SSH settings come from.
struct PlanSettings {
  std::string name;
  std::string description;
  std::optional<std::chrono::seconds> downtime_budget;
  // The operator's time per gate inside the downtime window, when no earlier run measured it.
  std::optional<Millis> approval_time;
  // Paths after expansion ("~/" is $HOME); the defaults when the plan does not name them.
  std::string ssh_config;
  std::string known_hosts;
  // Whether the plan names them: a default known_hosts should not override the
  // ssh config's UserKnownHostsFile.
  bool ssh_config_set = false;
  bool known_hosts_set = false;
  // The Ansible inventory the plan takes hosts and groups from, as written (${...} and "~/"
  // expanded; relative to the plan's directory), and where `inventory =` is written.
  std::optional<std::string> inventory;
  SourcePos inventory_pos;
};

// How a step's `on` names an inventory group: "group:web".
inline constexpr std::string_view kGroupPrefix = "group:";

// The defaults for PlanSettings paths, before "~/" expansion.
inline constexpr std::string_view kDefaultSshConfig = "~/.ssh/config";
inline constexpr std::string_view kDefaultKnownHosts = "~/.ssh/known_hosts";

// One [hosts.NAME] table: a machine the plan runs steps on.
struct HostSpec {
  std::string name;     // NAME, as steps refer to the host
  std::string address;  // what SSH connects to; NAME when not given (so ssh_config aliases work)
  std::optional<std::string> user;
  std::optional<uint16_t> port;
  std::optional<std::string> jump;  // ProxyJump: a plan host or anything ssh accepts
  bool sudo = false;
  std::optional<std::string> known_hosts;   // overrides [plan] known_hosts for this host
  std::optional<std::string> peer_address;  // how the other hosts reach this one
  std::optional<std::string> role;
  std::optional<std::chrono::milliseconds> connect_timeout;
  std::optional<std::string> identity_file;  // a key ssh tries first (IdentityFile)
  SourcePos pos;  // where the table starts (or `inventory =`), for later diagnostics about the host
  bool in_plan = true;                      // a [hosts.NAME] table names it
  std::optional<std::string> inventory_at;  // "inventory.ini:12": the inventory line naming it

  // Where the host comes from: "plan", "inventory.ini:12" or "inventory.ini:12+plan".
  std::string origin() const;
};

// An inventory group: its hosts in inventory order, for `on = "group:NAME"`.
struct HostGroup {
  std::string name;
  std::vector<std::string> hosts;
};

// A loaded plan. Meaningful only when the load reported no errors.
struct Plan {
  std::string path;    // as the operator named it
  std::string sha256;  // of the file's bytes, lowercase hex: the journal ties a run to it
  PlanSettings settings;
  Vars vars;                      // [vars], expanded
  std::vector<HostSpec> hosts;    // the inventory's in its order, then the plan's in file order
  std::vector<HostGroup> groups;  // the inventory's groups (all and ungrouped included)
  std::vector<Step> steps;        // in file order

  // The host called name, or nullptr.
  const HostSpec* find_host(std::string_view name) const;
  // The step with this id, or nullptr.
  const Step* find_step(std::string_view id) const;
};

}  // namespace cutpilot::plans
