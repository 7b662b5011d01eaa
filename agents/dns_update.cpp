#include "agents/dns_update.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>

#include "agents/dns_query.h"
#include "agents/dns_wire.h"
#include "agents/http_client.h"
#include "agents/net_stream.h"

namespace cutpilot::agent {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using dns_wire::get16;
using dns_wire::kClassAny;
using dns_wire::kClassIn;
using dns_wire::put16;
using dns_wire::put32;
using dns_wire::put48;

constexpr uint16_t kTypeSoa = 6;
constexpr uint16_t kTypeTsig = 250;
constexpr uint16_t kFudgeSeconds = 300;
constexpr uint8_t kOpcodeUpdate = 5;
constexpr std::chrono::seconds kExchangeTimeout{10};

bool fail(std::string& error, std::string message) {
  error = std::move(message);
  return false;
}

void append(std::vector<uint8_t>& out, const std::vector<uint8_t>& more) {
  out.insert(out.end(), more.begin(), more.end());
}

const EVP_MD* digest_of(const std::string& algorithm) {
  if (algorithm == "hmac-sha256") return EVP_sha256();
  if (algorithm == "hmac-sha512") return EVP_sha512();
  return nullptr;
}

std::vector<uint8_t> hmac(const DnsUpdateSpec& spec, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out(EVP_MAX_MD_SIZE);
  unsigned int length = 0;
  HMAC(digest_of(spec.algorithm), spec.secret.data(), static_cast<int>(spec.secret.size()),
       data.data(), data.size(), out.data(), &length);
  out.resize(length);
  return out;
}

// The TSIG variables the MAC covers after the message (RFC 8945 4.3.3).
std::vector<uint8_t> tsig_variables(const DnsUpdateSpec& spec, uint64_t time_signed, uint16_t error,
                                    const std::vector<uint8_t>& other) {
  std::vector<uint8_t> v = dns_wire_name(spec.key_name, true);
  put16(v, kClassAny);
  put32(v, 0);
  append(v, dns_wire_name(spec.algorithm, true));
  put48(v, time_signed);
  put16(v, kFudgeSeconds);
  put16(v, error);
  put16(v, static_cast<uint16_t>(other.size()));
  append(v, other);
  return v;
}

std::optional<std::vector<uint8_t>> decode_base64(const std::string& text) {
  if (text.empty() || text.size() % 4) return std::nullopt;
  std::vector<uint8_t> out(text.size() / 4 * 3);
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  const size_t padding = std::count(text.end() - 2, text.end(), '=');
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

// Skips the (possibly compressed) name at pos; false when malformed.
bool skip_name(const std::vector<uint8_t>& m, size_t& pos) {
  std::string ignored;
  return dns_read_name(m, pos, ignored);
}

std::string text_list(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items)
    out += (out.empty() ? "" : " ") + item;
  return out.empty() ? "nothing" : out;
}

}  // namespace

std::optional<DnsUpdateSpec> parse_dns_update_spec(std::string_view text, std::string& error) {
  const Json j = Json::parse(text.begin(), text.end(), nullptr, false);
  if (!j.is_object()) {
    error = "the dns spec is not a JSON object";
    return std::nullopt;
  }
  DnsUpdateSpec s;
  const auto str = [&](const char* key, std::string& out, bool required) {
    const auto it = j.find(key);
    if (it == j.end()) return !required || fail(error, std::string("dns needs \"") + key + "\"");
    if (!it->is_string() || it->get<std::string>().empty())
      return fail(error, std::string("dns \"") + key + "\" must be a non-empty string");
    out = it->get<std::string>();
    return true;
  };
  std::string server, secret;
  if (!str("server", server, true) || !str("zone", s.zone, true) || !str("name", s.name, true) ||
      !str("record_type", s.record_type, false) || !str("key_name", s.key_name, true) ||
      !str("algorithm", s.algorithm, false) || !str("secret", secret, true))
    return std::nullopt;
  for (const auto& item : j.items())
    if (item.key() != "server" && item.key() != "zone" && item.key() != "name" &&
        item.key() != "record_type" && item.key() != "addresses" && item.key() != "ttl_s" &&
        item.key() != "key_name" && item.key() != "algorithm" && item.key() != "secret") {
      error = "unknown dns field \"" + item.key() + "\"";
      return std::nullopt;
    }
  const auto split = split_host_port(server, 53);
  if (!split) {
    error = "dns \"server\" must be ADDRESS[:PORT]";
    return std::nullopt;
  }
  s.server = split->first;
  s.port = split->second;
  if (s.record_type != "A" && s.record_type != "AAAA") {
    error = "dns \"record_type\" must be A or AAAA";
    return std::nullopt;
  }
  if (!digest_of(s.algorithm)) {
    error = "dns \"algorithm\" must be hmac-sha256 or hmac-sha512";
    return std::nullopt;
  }
  const std::string zone = "." + dns_canonical(s.zone), name = "." + dns_canonical(s.name);
  if (dns_wire_name(s.name).empty() || dns_wire_name(s.zone).empty() ||
      dns_wire_name(s.key_name).empty() || !name.ends_with(zone)) {
    error = "dns \"name\" " + s.name + " must be a DNS name inside zone " + s.zone;
    return std::nullopt;
  }
  const auto addresses = j.find("addresses");
  if (addresses == j.end() || !addresses->is_array() || addresses->empty()) {
    error = "dns needs \"addresses\": the records the name gets";
    return std::nullopt;
  }
  const int family = s.record_type == "A" ? AF_INET : AF_INET6;
  for (const Json& a : *addresses) {
    in6_addr bytes{};
    char canonical[INET6_ADDRSTRLEN] = {};
    if (!a.is_string() || inet_pton(family, a.get<std::string>().c_str(), &bytes) != 1) {
      error = "dns \"addresses\" must hold " + std::string(family == AF_INET ? "IPv4" : "IPv6") +
              " addresses (record_type " + s.record_type + ")";
      return std::nullopt;
    }
    s.addresses.push_back(inet_ntop(family, &bytes, canonical, sizeof canonical));
  }
  std::sort(s.addresses.begin(), s.addresses.end());
  if (const auto ttl = j.find("ttl_s"); ttl != j.end()) {
    if (!ttl->is_number_unsigned() || ttl->get<uint64_t>() > 0x7fffffff) {
      error = "dns \"ttl_s\" must be a TTL in seconds";
      return std::nullopt;
    }
    s.ttl_s = ttl->get<uint32_t>();
  }
  const auto decoded = decode_base64(secret);
  if (!decoded || decoded->empty()) {
    error = "dns \"secret\" is not base64 (the TSIG key's secret, as the server has it)";
    return std::nullopt;
  }
  s.secret = *decoded;
  return s;
}

bool validate_dns_update_spec(std::string_view spec, std::string& error) {
  return parse_dns_update_spec(spec, error).has_value();
}

std::vector<uint8_t> dns_build_update(const DnsUpdateSpec& spec, uint16_t id, uint64_t time_signed,
                                      std::vector<uint8_t>& mac) {
  const std::vector<uint8_t> zone = dns_wire_name(spec.zone), name = dns_wire_name(spec.name);
  if (zone.empty() || name.empty()) return {};
  const uint16_t type = spec.record_type == "AAAA" ? kDnsTypeAaaa : kDnsTypeA;
  std::vector<uint8_t> m;
  put16(m, id);
  put16(m, static_cast<uint16_t>(kOpcodeUpdate << 11));
  put16(m, 1);  // zone
  put16(m, 0);  // prerequisites
  put16(m, static_cast<uint16_t>(1 + spec.addresses.size()));
  put16(m, 0);  // additional (TSIG is added after the MAC)
  append(m, zone);
  put16(m, kTypeSoa);
  put16(m, kClassIn);
  // Delete the name's records of the type, then add each address: one atomic change.
  append(m, name);
  put16(m, type);
  put16(m, kClassAny);
  put32(m, 0);
  put16(m, 0);
  for (const std::string& address : spec.addresses) {
    in6_addr bytes{};
    inet_pton(type == kDnsTypeA ? AF_INET : AF_INET6, address.c_str(), &bytes);
    const uint16_t length = type == kDnsTypeA ? 4 : 16;
    append(m, name);
    put16(m, type);
    put16(m, kClassIn);
    put32(m, spec.ttl_s);
    put16(m, length);
    const auto* raw = reinterpret_cast<const uint8_t*>(&bytes);
    m.insert(m.end(), raw, raw + length);
  }
  std::vector<uint8_t> signed_data = m;
  append(signed_data, tsig_variables(spec, time_signed, 0, {}));
  mac = hmac(spec, signed_data);
  append(m, dns_wire_name(spec.key_name, true));
  put16(m, kTypeTsig);
  put16(m, kClassAny);
  put32(m, 0);
  std::vector<uint8_t> rdata = dns_wire_name(spec.algorithm, true);
  put48(rdata, time_signed);
  put16(rdata, kFudgeSeconds);
  put16(rdata, static_cast<uint16_t>(mac.size()));
  append(rdata, mac);
  put16(rdata, id);
  put16(rdata, 0);  // error
  put16(rdata, 0);  // other length
  put16(m, static_cast<uint16_t>(rdata.size()));
  append(m, rdata);
  m[11] = 1;  // ARCOUNT: the TSIG record
  return m;
}

std::string dns_check_update_reply(const DnsUpdateSpec& spec, const std::vector<uint8_t>& reply,
                                   uint16_t id, const std::vector<uint8_t>& request_mac) {
  if (reply.size() < 12 || get16(reply, 0) != id || !(reply[2] & 0x80))
    return "the server's reply is not a reply to the update";
  const int rcode = reply[3] & 0x0f;
  // Find the TSIG record: the last additional record.
  size_t pos = 12;
  const uint16_t counts = get16(reply, 4) + get16(reply, 6) + get16(reply, 8);
  const uint16_t additional = get16(reply, 10);
  size_t tsig_at = 0;
  for (uint32_t i = 0; i < static_cast<uint32_t>(counts) + additional; ++i) {
    const size_t start = pos;
    if (!skip_name(reply, pos) || pos + (i < get16(reply, 4) ? 4 : 10) > reply.size())
      return "the server's reply is malformed";
    if (i < get16(reply, 4)) {  // the zone section has no TTL or data
      pos += 4;
      continue;
    }
    const uint16_t type = get16(reply, pos), length = get16(reply, pos + 8);
    pos += 10 + length;
    if (pos > reply.size()) return "the server's reply is malformed";
    if (type == kTypeTsig && i + 1 == static_cast<uint32_t>(counts) + additional) tsig_at = start;
  }
  const std::string code = dns_rcode_name(rcode);
  if (!tsig_at) {
    if (rcode == 9 || rcode == 5)
      return "the server refused the update: " + code +
             " (it does not accept this key, or updates of this zone)";
    return "the server's reply is not signed (" + code + "): it cannot be trusted";
  }
  // Check the reply's MAC: request MAC, the reply without its TSIG, the TSIG variables.
  size_t at = tsig_at;
  skip_name(reply, at);
  at += 10;
  size_t rdata = at;
  skip_name(reply, rdata);  // the algorithm name
  if (rdata + 10 > reply.size()) return "the server's reply is malformed";
  uint64_t time_signed = 0;
  for (int i = 0; i < 6; ++i)
    time_signed = time_signed << 8 | reply[rdata + i];
  const uint16_t mac_size = get16(reply, rdata + 8);
  if (rdata + 10 + mac_size + 6 > reply.size()) return "the server's reply is malformed";
  const std::vector<uint8_t> mac(reply.begin() + rdata + 10, reply.begin() + rdata + 10 + mac_size);
  const size_t after_mac = rdata + 10 + mac_size;
  const uint16_t tsig_error = get16(reply, after_mac + 2);
  const uint16_t other_length = get16(reply, after_mac + 4);
  if (after_mac + 6 + other_length > reply.size()) return "the server's reply is malformed";
  if (tsig_error != 0)
    return "the server refused the update's signature: TSIG error " + std::to_string(tsig_error) +
           (tsig_error == 17   ? " (BADKEY: it has no key " + spec.key_name + ")"
            : tsig_error == 16 ? " (BADSIG: the secret differs)"
            : tsig_error == 18 ? " (BADTIME: the clocks differ by more than 5 minutes)"
                               : "");
  std::vector<uint8_t> covered;
  put16(covered, static_cast<uint16_t>(request_mac.size()));
  append(covered, request_mac);
  std::vector<uint8_t> unsigned_reply(reply.begin(), reply.begin() + tsig_at);
  const uint16_t fewer = additional - 1;
  unsigned_reply[10] = static_cast<uint8_t>(fewer >> 8);
  unsigned_reply[11] = static_cast<uint8_t>(fewer);
  append(covered, unsigned_reply);
  append(covered, tsig_variables(spec, time_signed, tsig_error,
                                 {reply.begin() + after_mac + 6,
                                  reply.begin() + after_mac + 6 + other_length}));
  const std::vector<uint8_t> expected = hmac(spec, covered);
  if (expected.size() != mac.size() || CRYPTO_memcmp(expected.data(), mac.data(), mac.size()) != 0)
    return "the server's reply is signed, but not with this key's secret: it cannot be trusted";
  if (rcode != 0) return "the server refused the update: " + code;
  return "";
}

proto::JobFinished run_dns_update(std::string_view text, JobContext& job) {
  std::string error;
  const std::optional<DnsUpdateSpec> spec = parse_dns_update_spec(text, error);
  if (!spec) return failed_result(job.job_id(), error);
  if (job.cancel_requested()) return cancelled_before_start(job);
  const int cancel_fd = cancel_signal_fd(error);
  if (cancel_fd < 0) return failed_result(job.job_id(), error);
  const std::string at = join_host_port(spec->server, spec->port);
  const uint16_t type = spec->record_type == "AAAA" ? kDnsTypeAaaa : kDnsTypeA;
  const auto ask = [&](std::string& why) {
    return dns_query(spec->server, spec->port, spec->name, type, Clock::now() + kExchangeTimeout,
                     cancel_fd, why);
  };
  Json result = {{"server", at}, {"name", spec->name}, {"record_type", spec->record_type}};
  std::string why;
  const auto before = ask(why);
  if (!before) {
    close(cancel_fd);
    return failed_result(job.job_id(), at + " did not answer for " + spec->name + ": " + why);
  }
  result["previous"] = before->addresses;
  result["previous_ttl_s"] = before->ttl ? Json(*before->ttl) : Json(nullptr);
  job.log(proto::Stream::kAgent,
          at + ": " + spec->name + " " + spec->record_type + " is " + text_list(before->addresses) +
              (before->ttl ? " (TTL " + std::to_string(*before->ttl) + " s)" : ""));
  std::random_device random;
  const auto id = static_cast<uint16_t>(random());
  std::vector<uint8_t> mac;
  const std::vector<uint8_t> update =
      dns_build_update(*spec, id, static_cast<uint64_t>(std::time(nullptr)), mac);
  const auto reply = dns_exchange_tcp(spec->server, spec->port, update,
                                      Clock::now() + kExchangeTimeout, cancel_fd, why);
  std::string problem = reply ? dns_check_update_reply(*spec, *reply, id, mac)
                              : "the update did not reach " + at + ": " + why;
  std::optional<DnsAnswer> after;
  if (problem.empty()) {
    after = ask(why);
    if (!after)
      problem = at + " applied the update but did not answer after it: " + why;
    else if (after->addresses != spec->addresses)
      problem = at + " applied the update but answers " + text_list(after->addresses) + ", not " +
                text_list(spec->addresses);
  }
  close(cancel_fd);
  if (!problem.empty()) {
    proto::JobFinished done = failed_result(job.job_id(), problem);
    done.result = result.dump();
    return done;
  }
  job.log(proto::Stream::kAgent, at + ": " + spec->name + " " + spec->record_type + " is now " +
                                     text_list(after->addresses) + " (TTL " +
                                     std::to_string(after->ttl.value_or(0)) + " s)");
  result["addresses"] = after->addresses;
  result["ttl_s"] = after->ttl.value_or(0);
  proto::JobFinished done = failed_result(job.job_id(), "");
  done.state = proto::JobState::kSucceeded;
  done.exit_code = 0;
  done.result = result.dump();
  return done;
}

}  // namespace cutpilot::agent
