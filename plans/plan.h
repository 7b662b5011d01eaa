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
  // Paths after expansion ("~/" is $HOME); the defaults when the plan does not name them.
  std::string ssh_config;
  std::string known_hosts;
  // Whether the plan names them: a default known_hosts should not override the
  // ssh config's UserKnownHostsFile.
  bool ssh_config_set = false;
  bool known_hosts_set = false;
};

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
  SourcePos pos;  // where the table starts, for later diagnostics about the host
};

// A loaded plan. Meaningful only when the load reported no errors.
struct Plan {
  std::string path;    // as the operator named it
  std::string sha256;  // of the file's bytes, lowercase hex: the journal ties a run to it
  PlanSettings settings;
  Vars vars;                    // [vars], expanded
  std::vector<HostSpec> hosts;  // in file order
  std::vector<Step> steps;      // in file order

  // The host called name, or nullptr.
  const HostSpec* find_host(std::string_view name) const;
  // The step with this id, or nullptr.
  const Step* find_step(std::string_view id) const;
};

}  // namespace cutpilot::plans
