// Big-endian fields of DNS messages, shared by the query (dns_query.cpp) and the update
// (dns_update.cpp). Readers expect the caller to have checked the bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cutpilot::agent::dns_wire {

inline constexpr uint16_t kClassIn = 1;
inline constexpr uint16_t kClassAny = 255;

// Appends v in network byte order.
inline void put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

// Appends v in network byte order.
inline void put32(std::vector<uint8_t>& out, uint32_t v) {
  put16(out, static_cast<uint16_t>(v >> 16));
  put16(out, static_cast<uint16_t>(v));
}

// Appends the low 48 bits of v (a TSIG time) in network byte order.
inline void put48(std::vector<uint8_t>& out, uint64_t v) {
  put16(out, static_cast<uint16_t>(v >> 32));
  put32(out, static_cast<uint32_t>(v));
}

// The 16-bit field at m[at].
inline uint16_t get16(const std::vector<uint8_t>& m, size_t at) {
  return static_cast<uint16_t>(m[at] << 8 | m[at + 1]);
}

// The 32-bit field at m[at].
inline uint32_t get32(const std::vector<uint8_t>& m, size_t at) {
  return static_cast<uint32_t>(get16(m, at)) << 16 | get16(m, at + 2);
}

}  // namespace cutpilot::agent::dns_wire
