// SHA-256 (FIPS 180-4): content addressing of the agent, the plan file's hash in the
// journal and the audit log. Dependency-free, so the static agent may use it too.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cutpilot::transport {

// An incremental SHA-256 hasher: update() any number of times, then digest() once.
class Sha256 {
 public:
  // The 32-byte digest.
  using Digest = std::array<uint8_t, 32>;

  Sha256();
  // Hashes more bytes.
  void update(std::string_view bytes);
  // Pads, finishes and returns the digest; the hasher must not be updated afterwards.
  Digest digest();

 private:
  void block(const uint8_t* data);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

// The SHA-256 of bytes as 64 lowercase hex digits.
std::string sha256_hex(std::string_view bytes);

// Reads a whole file; nullopt when it cannot be read.
std::optional<std::string> read_file(const std::string& path);

}  // namespace cutpilot::transport
