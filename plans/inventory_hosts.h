// The hosts and groups of the Ansible inventory a plan names ([plan] inventory = "..."), and
// how a [hosts.NAME] table of the same name merges with an inventory host.
#pragma once

#include <string>
#include <vector>

#include <toml.hpp>

#include "inventory/inventory.h"
#include "plans/fields.h"
#include "plans/plan.h"

namespace cutpilot::plans {

// What an inventory gives a plan: hosts (in inventory order) with the entries they came
// from, and groups.
struct InventoryHosts {
  std::vector<HostSpec> hosts;
  std::vector<inventory::Host> entries;  // entries[i] is what hosts[i] was made from
  std::vector<HostGroup> groups;
  std::string file;  // the inventory as the plan names it, for messages
};

// Reads the inventory settings names (relative to the plan file's directory). Its errors
// are reported at `inventory =` as "FILE:LINE: ..."; hosts and groups are empty then.
InventoryHosts read_inventory_hosts(Reader& reader, const PlanSettings& settings,
                                    const std::string& plan_path);

// Merges the [hosts.NAME] table (read into plan) into merged, the inventory's host of that
// name made from entry: the table may add any key; a key that both set to different values
// is an error at the table's key.
void merge_host(Reader& reader, const toml::value& table, const HostSpec& plan,
                const inventory::Host& entry, const std::string& file, HostSpec& merged);

}  // namespace cutpilot::plans
