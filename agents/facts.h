// What a host is: OS, kernel, resources, free disk and the tools a migration needs.
#pragma once

#include <string>
#include <vector>

#include "transport/protocol.h"

namespace cutpilot::agent {

// Measures the host now; disk free is reported for "/" and each of paths.
proto::HostFacts collect_facts(const std::vector<std::string>& paths);

}  // namespace cutpilot::agent
