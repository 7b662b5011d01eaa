// The dns update job's spec and the replies it trusts (the exchange itself is tested
// against Knot DNS in tests/cli/test_dns.py).
#include "agents/dns_update.h"

#include <gtest/gtest.h>

namespace cutpilot::agent {
namespace {

const char* kSpec =
    R"({"server": "127.0.0.1:5353", "zone": "example.org", "name": "www.Example.org",
  "addresses": ["192.0.2.99", "192.0.2.7"], "ttl_s": 300, "key_name": "k",
  "secret": "c2VjcmV0LXNlY3JldA=="})";

TEST(DnsUpdate, TheSpecIsCheckedAndTheSecretNeverQuoted) {
  std::string error;
  const auto spec = parse_dns_update_spec(kSpec, error);
  ASSERT_TRUE(spec) << error;
  EXPECT_EQ(spec->port, 5353);
  EXPECT_EQ(std::string(spec->secret.begin(), spec->secret.end()), "secret-secret");
  EXPECT_EQ(spec->addresses, (std::vector<std::string>{"192.0.2.7", "192.0.2.99"}));
  const auto refused = [&](const std::string& from, const std::string& to) {
    std::string text = kSpec;
    text.replace(text.find(from), from.size(), to);
    EXPECT_FALSE(parse_dns_update_spec(text, error)) << to;
    EXPECT_EQ(error.find("c2VjcmV0"), std::string::npos) << error;
    return error;
  };
  EXPECT_EQ(refused("\"www.Example.org\"", "\"www.example.com\""),
            "dns \"name\" www.example.com must be a DNS name inside zone example.org");
  EXPECT_EQ(refused("\"192.0.2.99\"", "\"2001:db8::1\""),
            "dns \"addresses\" must hold IPv4 addresses (record_type A)");
  EXPECT_EQ(refused("c2VjcmV0LXNlY3JldA==", "not base64!"),
            "dns \"secret\" is not base64 (the TSIG key's secret, as the server has it)");
  EXPECT_EQ(refused("\"key_name\"", "\"keyname\""), "dns needs \"key_name\"");
}

TEST(DnsUpdate, OnlyASignedReplyWithTheRightMacCounts) {
  std::string error;
  const auto spec = parse_dns_update_spec(kSpec, error);
  ASSERT_TRUE(spec) << error;
  std::vector<uint8_t> mac;
  const std::vector<uint8_t> update = dns_build_update(*spec, 0x4242, 1700000000, mac);
  ASSERT_FALSE(update.empty());
  EXPECT_EQ(mac.size(), 32u);    // HMAC-SHA256
  EXPECT_EQ(update[2] >> 3, 5);  // opcode UPDATE
  EXPECT_EQ(update[11], 1);      // the TSIG record
  // The same spec, id and time sign the same; another secret signs otherwise.
  std::vector<uint8_t> again;
  dns_build_update(*spec, 0x4242, 1700000000, again);
  EXPECT_EQ(again, mac);
  DnsUpdateSpec other = *spec;
  other.secret = {1, 2, 3};
  dns_build_update(other, 0x4242, 1700000000, again);
  EXPECT_NE(again, mac);
  // Replies: the header of a reply to the update, with the zone section echoed.
  std::vector<uint8_t> reply(update.begin(), update.begin() + 12);
  reply[2] |= 0x80;
  reply[6] = reply[7] = reply[8] = reply[9] = reply[10] = reply[11] = 0;
  const std::vector<uint8_t> zone = {7,   'e', 'x', 'a', 'm', 'p', 'l', 'e', 3,
                                     'o', 'r', 'g', 0,   0,   6,   0,   1};
  reply.insert(reply.end(), zone.begin(), zone.end());
  EXPECT_EQ(dns_check_update_reply(*spec, reply, 0x4242, mac),
            "the server's reply is not signed (NOERROR): it cannot be trusted");
  reply[3] = 9;
  EXPECT_EQ(dns_check_update_reply(*spec, reply, 0x4242, mac),
            "the server refused the update: NOTAUTH (it does not accept this key, or updates of "
            "this zone)");
  EXPECT_EQ(dns_check_update_reply(*spec, reply, 0x4343, mac),
            "the server's reply is not a reply to the update");
}

}  // namespace
}  // namespace cutpilot::agent
