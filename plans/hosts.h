// Reading [hosts.NAME] tables into HostSpec, and checking jumps between them.
#pragma once

#include <vector>

#include <toml.hpp>

#include "plans/fields.h"
#include "plans/plan.h"

namespace cutpilot::plans {

// Reads the [hosts] table (one sub-table per host), in file order; errors go to reader.
std::vector<HostSpec> read_hosts(Reader& reader, const toml::value& hosts);

// True when name can be a host name: letters, digits, '-', '_' and '.' (no ':' or
// spaces, so "source:/path" in a step stays unambiguous).
bool valid_host_name(std::string_view name);

}  // namespace cutpilot::plans
