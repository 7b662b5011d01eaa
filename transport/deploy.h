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
  // Empty when load() took the hash from the cache: a host without the agent is rare, so
  // the bytes are read (and checked against sha256) only when one needs an upload.
  std::string bytes;
  std::string sha256;  // 64 hex digits
  std::string path;    // where load() found it ("" when made in memory)
  // The hash of the binary at path, and its bytes when they had to be read for it; the
  // hash is remembered in the cockpit's cache under the file's identity (device, inode,
  // size, mtime and ctime), so an unchanged agent is not read and hashed on every run.
  // nullopt and error set when it cannot be read.
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
