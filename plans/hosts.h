// Reading [hosts.NAME] tables into HostSpec, and checking jumps between them.
#pragma once

#include <vector>

#include <toml.hpp>

#include "plans/fields.h"
#include "plans/inventory_hosts.h"
#include "plans/plan.h"

namespace cutpilot::plans {

// The plan's hosts: the inventory's (listed) in its order, then the [hosts] tables (hosts may
// be null) in file order; a table named like an inventory host merges with it (merge_host).
// Errors go to reader.
std::vector<HostSpec> read_hosts(Reader& reader, const toml::value* hosts,
                                 const InventoryHosts& listed);

// True when name can be a host name: letters, digits, '-', '_' and '.' (no ':' or
// spaces, so "source:/path" in a step stays unambiguous).
bool valid_host_name(std::string_view name);

}  // namespace cutpilot::plans
