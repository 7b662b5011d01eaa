// What the transport tests share: a lab host as an SshTarget, the built agent, and
// ssh configs that use another client key.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

#include "tests/support/lab.h"
#include "transport/deploy.h"
#include "transport/sha256.h"
#include "transport/ssh_target.h"

namespace cutpilot::test {

// A lab host reached through the lab's ssh_config, with a short connect timeout.
inline transport::SshTarget target_for(const Lab& lab, const std::string& name,
                                       std::chrono::seconds timeout = std::chrono::seconds(5)) {
  transport::SshTarget t;
  t.name = name;
  t.address = name;
  t.ssh_config = lab.ssh_config();
  t.connect_timeout = timeout;
  return t;
}

// The agent this build made (CUTPILOT_AGENT_PATH is set by tests/CMakeLists.txt).
inline transport::AgentBinary agent_binary() {
  std::string error;
  auto agent = transport::AgentBinary::load(CUTPILOT_AGENT_PATH, error);
  if (!agent) throw std::runtime_error(error);
  // The hash may come from the cockpit's cache; tests that alter the bytes need them.
  if (agent->bytes.empty()) agent->bytes = transport::read_file(agent->path).value_or("");
  return *agent;
}

// A copy of the lab's ssh_config whose IdentityFile is DIR/key; returns its path.
inline std::string config_with_key(const Lab& lab, const std::string& key) {
  const std::string config = lab.dir() + "/" + key + "_config";
  shell("sed 's#" + lab.dir() + "/id_ed25519#" + lab.dir() + "/" + key + "#' " + lab.ssh_config() +
        " > " + config);
  return config;
}

// A new key pair DIR/key that no lab host accepts.
inline bool make_stranger_key(const Lab& lab, const std::string& key) {
  return shell("ssh-keygen -q -t ed25519 -N '' -f " + lab.dir() + "/" + key) == 0;
}

}  // namespace cutpilot::test
