#include "cli/targets.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

namespace cutpilot::cli {

std::vector<transport::SshTarget> ssh_targets(const plans::Plan& plan) {
  std::vector<transport::SshTarget> targets;
  for (const auto& host : plan.hosts) {
    transport::SshTarget t;
    t.name = host.name;
    t.address = host.address;
    t.user = host.user;
    if (host.port) t.port = *host.port;
    t.jump = host.jump;
    t.sudo = host.sudo;
    t.identity_file = host.identity_file;
    // A config the plan names is the only one read (ssh -F); without one, ssh reads its own
    // (~/.ssh/config, /etc/ssh/ssh_config), as it does by hand.
    if (plan.settings.ssh_config_set)
      t.ssh_config = plan.settings.ssh_config;
    else
      t.ssh_defaults = true;
    // A known_hosts the plan names wins over the ssh config's UserKnownHostsFile.
    if (host.known_hosts)
      t.known_hosts = host.known_hosts;
    else if (plan.settings.known_hosts_set)
      t.known_hosts = plan.settings.known_hosts;
    if (host.connect_timeout)
      t.connect_timeout = std::chrono::ceil<std::chrono::seconds>(*host.connect_timeout);
    targets.push_back(std::move(t));
  }
  return targets;
}

std::chrono::seconds connect_budget(const plans::Plan& plan) {
  std::chrono::seconds longest = transport::SshTarget::kDefaultConnectTimeout;
  for (const auto& host : plan.hosts)
    if (host.connect_timeout)
      longest = std::max(longest, std::chrono::ceil<std::chrono::seconds>(*host.connect_timeout));
  // Connect, then auth and the agent handshake (an upload included) each get as long again.
  return longest * 3 + std::chrono::seconds(30);
}

std::optional<transport::AgentBinary> load_agent_binary(std::string& error) {
  if (const char* env = std::getenv("CUTPILOT_AGENT"))
    return transport::AgentBinary::load(env, error);
  // Beside the cockpit (the build tree: build/bin/), else where `cmake --install` and the .deb
  // put it: PREFIX/libexec/cutpilot/ for PREFIX/bin/cutpilot.
  std::error_code ec;
  const std::filesystem::path dir =
      std::filesystem::read_symlink("/proc/self/exe", ec).parent_path();
  const std::filesystem::path beside = dir / "cutpilot-agent";
  const std::filesystem::path installed =
      (dir.parent_path() / "libexec" / "cutpilot" / "cutpilot-agent").lexically_normal();
  if (!std::filesystem::exists(beside, ec) && std::filesystem::exists(installed, ec))
    return transport::AgentBinary::load(installed.string(), error);
  auto agent = transport::AgentBinary::load(beside.string(), error);
  if (!agent) error += " (nor is there " + installed.string() + "; CUTPILOT_AGENT names another)";
  return agent;
}

}  // namespace cutpilot::cli
