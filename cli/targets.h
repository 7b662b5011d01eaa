// From the plan's hosts to what the transport connects to.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "plans/plan.h"
#include "transport/deploy.h"
#include "transport/ssh_target.h"

namespace cutpilot::cli {

// One SSH target per plan host, in plan order, with the plan's settings applied.
std::vector<transport::SshTarget> ssh_targets(const plans::Plan& plan);

// The longest any host may take to connect, for bounding a whole command.
std::chrono::seconds connect_budget(const plans::Plan& plan);

// The agent binary beside this executable (or $CUTPILOT_AGENT).
std::optional<transport::AgentBinary> load_agent_binary(std::string& error);

}  // namespace cutpilot::cli
