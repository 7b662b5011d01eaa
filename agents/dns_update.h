// The `dns` job kind: an RFC 2136 dynamic update of one name's A or AAAA records at an
// authoritative server, signed with TSIG (RFC 8945), then read back.
//
// Spec (JSON): {"server": "ADDRESS[:PORT]", "zone": "example.org", "name": "www.example.org",
//   "record_type": "A" | "AAAA", "addresses": ["192.0.2.99"], "ttl_s": 300,
//   "key_name": "...", "algorithm": "hmac-sha256" | "hmac-sha512", "secret": "BASE64"}
// The update replaces the name's records of that type (delete the set, add each address)
// in one message the server applies whole or not at all. Before it, the job asks the
// server what the name has (logged, and in the result as "previous"); after it, it asks
// again and succeeds only when the server answers exactly the new addresses. Result:
// {"previous": [...], "previous_ttl_s": N|null, "addresses": [...], "ttl_s": N}.
// The secret never appears in a log line or the result.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agents/runner.h"

namespace cutpilot::agent {

// A parsed dns update spec.
struct DnsUpdateSpec {
  std::string server;
  uint16_t port = 53;
  std::string zone, name, record_type = "A";
  std::vector<std::string> addresses;  // canonical text, sorted
  uint32_t ttl_s = 300;
  std::string key_name, algorithm = "hmac-sha256";
  std::vector<uint8_t> secret;  // decoded
};

// Parses and checks a spec; nullopt with error set (never quoting the secret).
std::optional<DnsUpdateSpec> parse_dns_update_spec(std::string_view json, std::string& error);

// Validates a spec without running it (the runner's table).
bool validate_dns_update_spec(std::string_view spec, std::string& error);

// The UPDATE message for spec with id, signed with TSIG at time_signed (seconds since the
// epoch); mac receives the request's MAC (to check the reply's). Empty when it cannot be
// built (a name that is no DNS name).
std::vector<uint8_t> dns_build_update(const DnsUpdateSpec& spec, uint16_t id, uint64_t time_signed,
                                      std::vector<uint8_t>& mac);

// Checks a reply to the update whose MAC was request_mac: its id, that it is signed with
// the same key (and the MAC holds), and its rcode; "" when the server applied the update,
// else what went wrong ("the server refused the update: NOTAUTH (key not accepted)").
std::string dns_check_update_reply(const DnsUpdateSpec& spec, const std::vector<uint8_t>& reply,
                                   uint16_t id, const std::vector<uint8_t>& request_mac);

// Runs a dns job to the end.
proto::JobFinished run_dns_update(std::string_view spec, JobContext& job);

}  // namespace cutpilot::agent
