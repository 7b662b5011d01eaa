// A DNS stub query for the health job's dns check: one question (A or AAAA) to one server,
// over UDP, again over TCP when the answer was truncated; every wait bounded by a deadline
// and cut short by a cancel fd. The message code is separate so it is tested on bytes.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cutpilot::agent {

// The record types the check asks for.
inline constexpr uint16_t kDnsTypeA = 1;
inline constexpr uint16_t kDnsTypeAaaa = 28;

// What a server answered for name/type.
struct DnsAnswer {
  int rcode = 0;                       // 0 NOERROR, 3 NXDOMAIN, ...
  bool authoritative = false;          // the AA bit
  bool truncated = false;              // the TC bit (asked again over TCP)
  std::vector<std::string> addresses;  // the records of the type asked, as text, sorted
  std::optional<uint32_t> ttl;         // the smallest TTL along the answer (CNAMEs included)
};

// The wire form of a query with id for name (dotted; a trailing dot is optional) and type;
// empty when the name is not a valid DNS name.
std::vector<uint8_t> dns_build_query(uint16_t id, const std::string& name, uint16_t type);

// Reads a response to the query dns_build_query(id, name, type) made; nullopt with error
// set when it is not one (wrong id, malformed, another question).
std::optional<DnsAnswer> dns_parse_response(const std::vector<uint8_t>& message, uint16_t id,
                                            const std::string& name, uint16_t type,
                                            std::string& error);

// The rcode's name: "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", ... or "RCODE n".
std::string dns_rcode_name(int rcode);

// Asks server (an IPv4 or IPv6 address) on port for name/type before deadline; nullopt
// with error set ("timed out", "cancelled", "Connection refused", ...).
std::optional<DnsAnswer> dns_query(const std::string& server, uint16_t port,
                                   const std::string& name, uint16_t type,
                                   std::chrono::steady_clock::time_point deadline, int cancel_fd,
                                   std::string& error);

// Reads the (possibly compressed) name at pos of message m into name; pos moves past it.
// False when malformed: out of bounds, a pointer loop, a label type other than plain or pointer.
bool dns_read_name(const std::vector<uint8_t>& m, size_t& pos, std::string& name);

// A name without its trailing dot, lower-cased (names compare without case).
std::string dns_canonical(const std::string& name);

// A name in wire form (length-prefixed labels, a zero at the end), lower-cased when
// canonical; empty when it is not a valid DNS name.
std::vector<uint8_t> dns_wire_name(const std::string& name, bool canonical = false);

// Sends message over TCP to server:port and reads one framed reply before deadline; nullopt
// with error set.
std::optional<std::vector<uint8_t>> dns_exchange_tcp(const std::string& server, uint16_t port,
                                                     const std::vector<uint8_t>& message,
                                                     std::chrono::steady_clock::time_point deadline,
                                                     int cancel_fd, std::string& error);

// The nameservers of a resolv.conf text ("nameserver ADDRESS" lines), in order.
std::vector<std::string> resolv_conf_servers(const std::string& text);

}  // namespace cutpilot::agent
