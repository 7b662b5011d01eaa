// Where and how to reach one host: what the plan's [hosts.NAME] table says,
// in transport terms (the plan model converts to this; transport never reads TOML).
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace cutpilot::transport {

// One host to connect to.
struct SshTarget {
  std::string name;                          // the plan's host name, used in every message
  std::string address;                       // host name or ssh config alias
  std::optional<std::string> user;           // overrides the ssh config's User
  std::optional<int> port;                   // overrides the ssh config's Port
  std::optional<std::string> jump;           // ProxyJump host (an ssh config alias or address)
  std::optional<std::string> known_hosts;    // overrides the ssh config's UserKnownHostsFile
  std::optional<std::string> identity_file;  // tried before the ssh config's IdentityFile keys
  std::string ssh_config;                    // the ssh config file ("" = none)
  // No config named: ssh reads ~/.ssh/config and /etc/ssh/ssh_config as it always does.
  bool ssh_defaults = false;
  bool sudo = false;                                    // run the agent under `sudo -n`
  std::optional<std::chrono::seconds> connect_timeout;  // overrides ConnectTimeout
  // Used when neither the plan nor the ssh config sets a connect timeout.
  static constexpr std::chrono::seconds kDefaultConnectTimeout{10};
};

}  // namespace cutpilot::transport
