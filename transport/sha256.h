// SHA-256 of bytes and files, as lowercase hex (content addressing of the agent, plan hashes).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace cutpilot::transport {

// The SHA-256 of data, as 64 lowercase hex digits.
std::string sha256_hex(std::string_view data);

// Reads a whole file; nullopt when it cannot be read.
std::optional<std::string> read_file(const std::string& path);

}  // namespace cutpilot::transport
