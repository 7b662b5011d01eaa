#include "transport/handshake.h"

#include <cctype>
#include <charconv>

namespace cutpilot::proto {
namespace {

constexpr size_t kMaxPreambleLines = 20;

bool valid_version(std::string_view v) {
  if (v.empty() || v.size() > 64) return false;
  for (char c : v)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+'))
      return false;
  return true;
}

}  // namespace

std::string ready_line(uint32_t protocol, std::string_view agent_version) {
  return std::string(kReadyMagic) + " protocol=" + std::to_string(protocol) +
         " agent=" + std::string(agent_version) + "\n";
}

HandshakeScanner::HandshakeScanner(uint32_t our_protocol, std::string our_version)
    : our_protocol_(our_protocol), our_version_(std::move(our_version)) {}

HandshakeScanner::Status HandshakeScanner::feed(std::string_view bytes) {
  if (status_ != Status::kNeedMore) {
    if (status_ == Status::kReady) pending_.append(bytes);
    return status_;
  }
  pending_.append(bytes);
  size_t newline;
  while (status_ == Status::kNeedMore && (newline = pending_.find('\n')) != std::string::npos) {
    std::string text = pending_.substr(0, newline);
    pending_.erase(0, newline + 1);
    seen_ += newline + 1;
    status_ = line(text);
  }
  if (status_ == Status::kNeedMore && seen_ + pending_.size() > kMaxPreambleBytes) {
    error_ = "no ready line from the agent in the first " + std::to_string(kMaxPreambleBytes) +
             " bytes of output";
    status_ = Status::kError;
  }
  return status_;
}

HandshakeScanner::Status HandshakeScanner::line(std::string_view text) {
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  if (!text.starts_with(kReadyMagic)) {
    if (preamble_.size() < kMaxPreambleLines) preamble_.emplace_back(text);
    return Status::kNeedMore;
  }
  // Strict from here on: "MAGIC protocol=N agent=V" and nothing else.
  const std::string_view rest = text.substr(kReadyMagic.size());
  const std::string_view p = " protocol=";
  const std::string_view a = " agent=";
  const size_t agent_at = rest.find(a);
  if (!rest.starts_with(p) || agent_at == std::string_view::npos) {
    error_ = "malformed ready line from the agent: \"" + std::string(text) + "\"";
    return Status::kError;
  }
  const std::string_view number = rest.substr(p.size(), agent_at - p.size());
  const std::string_view version = rest.substr(agent_at + a.size());
  uint32_t protocol = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), protocol);
  if (ec != std::errc() || end != number.data() + number.size() || number.empty() ||
      !valid_version(version)) {
    error_ = "malformed ready line from the agent: \"" + std::string(text) + "\"";
    return Status::kError;
  }
  agent_.protocol = protocol;
  agent_.agent_version = std::string(version);
  if (protocol != our_protocol_) {
    error_ = "agent speaks protocol " + std::to_string(protocol) + " (cutpilot-agent " +
             agent_.agent_version + "), this end speaks protocol " + std::to_string(our_protocol_) +
             " (" + our_version_ + ")";
    return Status::kError;
  }
  return Status::kReady;
}

}  // namespace cutpilot::proto
