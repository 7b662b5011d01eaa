// Putting the agent on a host and starting it: content-addressed under
// ~/.cache/cutpilot/agent-<first 16 hex of sha256>, uploaded only when missing or
// corrupt, verified on the host before it is ever run.
#pragma once

#include <libssh/libssh.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "transport/handshake.h"
#include "transport/ssh_session.h"

namespace cutpilot::transport {

// The agent binary this cockpit deploys.
struct AgentBinary {
  std::string bytes;
  std::string sha256;  // 64 hex digits
  // Reads the binary; nullopt and error set when it cannot.
  static std::optional<AgentBinary> load(const std::string& path, std::string& error);
  // The file name on the host: "agent-<16 hex>".
  std::string remote_name() const { return "agent-" + sha256.substr(0, 16); }
};

// An agent running on a host, past the handshake (its Ready received).
struct RunningAgent {
  ssh_channel channel = nullptr;      // owned by the caller once returned
  std::string leftover;               // bytes after the Ready frame, not yet decoded
  std::vector<std::string> preamble;  // what the login shell printed first (warnings)
  proto::AgentIdentity identity;      // from the ready line
  bool uploaded = false;              // true when this call had to upload the binary
};

// Where the agent path on every host is: the cache directory under $HOME.
inline constexpr const char* kRemoteCacheDir = "$HOME/.cache/cutpilot";

// Starts the agent over an exec channel (uploading it first when needed) and
// completes the handshake. false: error names the host and the cause.
bool start_agent(SshSession& session, const AgentBinary& agent, RunningAgent& out,
                 std::string& error, std::chrono::milliseconds timeout);

}  // namespace cutpilot::transport
