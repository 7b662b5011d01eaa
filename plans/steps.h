// Reading the [[steps]] tables into Step structs, and checking them against each other.
#pragma once

#include <vector>

#include <toml.hpp>

#include "plans/fields.h"
#include "plans/plan.h"

namespace cutpilot::plans {

// Reads the [[steps]] array (already known to hold only tables) and checks every rule
// that involves more than one step or the hosts: unknown hosts, groups and steps, duplicate
// ids, cycles, the downtime window, destructive steps without a way back. A "group:NAME" in
// `on` becomes the group's hosts. Errors and warnings go to reader.
std::vector<Step> read_steps(Reader& reader, const toml::value& steps,
                             const std::vector<HostSpec>& hosts,
                             const std::vector<HostGroup>& groups);

}  // namespace cutpilot::plans
