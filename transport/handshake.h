// The agent's ready line: the one strict line it writes before its first frame.
//
// A login shell may print a banner or motd before the agent starts; everything
// before the ready line is kept as preamble (shown as a warning) and otherwise
// ignored. Then the versions are checked and frames follow.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cutpilot::proto {

// The word that starts the ready line.
inline constexpr std::string_view kReadyMagic = "CUTPILOT-AGENT-READY";
// How much output before the ready line is tolerated before giving up.
inline constexpr size_t kMaxPreambleBytes = 64 * 1024;

// Formats the ready line: "CUTPILOT-AGENT-READY protocol=1 agent=0.1.0\n".
std::string ready_line(uint32_t protocol, std::string_view agent_version);

// What the agent said about itself in its ready line.
struct AgentIdentity {
  uint32_t protocol = 0;
  std::string agent_version;
};

// Scans an agent's first output for the ready line and checks its version.
class HandshakeScanner {
 public:
  // What feed() found.
  enum class Status { kNeedMore, kReady, kError };

  // our_protocol/our_version describe this end, for the mismatch message.
  HandshakeScanner(uint32_t our_protocol, std::string our_version);

  // Consumes output; after kReady, leftover() holds the bytes after the line.
  Status feed(std::string_view bytes);
  // Lines printed before the ready line (at most 20 kept).
  const std::vector<std::string>& preamble() const { return preamble_; }
  // The agent's versions, valid after kReady.
  const AgentIdentity& agent() const { return agent_; }
  // Why the handshake failed.
  const std::string& error() const { return error_; }
  // Bytes that followed the ready line: the start of the frame stream.
  const std::string& leftover() const { return pending_; }

 private:
  Status line(std::string_view text);

  uint32_t our_protocol_;
  std::string our_version_;
  std::string pending_;
  size_t seen_ = 0;
  Status status_ = Status::kNeedMore;
  std::vector<std::string> preamble_;
  AgentIdentity agent_;
  std::string error_;
};

}  // namespace cutpilot::proto
