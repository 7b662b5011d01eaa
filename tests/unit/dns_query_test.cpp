// The dns check's messages on bytes: the query it sends, and what it reads from replies
// (compressed names, CNAME chains, TTLs, truncation, and replies that are not ours).
#include "agents/dns_query.h"

#include <gtest/gtest.h>

namespace cutpilot::agent {
namespace {

using Bytes = std::vector<uint8_t>;

// A reply to dns_build_query(0x1234, "www.example.org", A) with the given flags byte 2 and
// answer records appended by the caller.
Bytes reply_head(uint8_t flags2, uint8_t rcode, uint16_t answers) {
  Bytes m = dns_build_query(0x1234, "www.example.org", kDnsTypeA);
  m[2] = flags2;
  m[3] = static_cast<uint8_t>(0x80 | rcode);  // RA
  m[7] = static_cast<uint8_t>(answers);
  return m;
}

// An answer record whose owner is a pointer to the question's name (offset 12).
void add_record(Bytes& m, uint16_t type, uint32_t ttl, const Bytes& rdata) {
  m.insert(m.end(), {0xc0, 12, static_cast<uint8_t>(type >> 8), static_cast<uint8_t>(type), 0, 1,
                     static_cast<uint8_t>(ttl >> 24), static_cast<uint8_t>(ttl >> 16),
                     static_cast<uint8_t>(ttl >> 8), static_cast<uint8_t>(ttl),
                     static_cast<uint8_t>(rdata.size() >> 8), static_cast<uint8_t>(rdata.size())});
  m.insert(m.end(), rdata.begin(), rdata.end());
}

TEST(DnsQuery, TheQueryIsOneQuestionWithRecursionDesired) {
  const Bytes q = dns_build_query(0xbeef, "www.Example.org.", kDnsTypeAaaa);
  const Bytes want = {0xbe, 0xef, 0x01, 0x00, 0,   1,   0,   0,   0,   0,   0,
                      0,    3,    'w',  'w',  'w', 7,   'E', 'x', 'a', 'm', 'p',
                      'l',  'e',  3,    'o',  'r', 'g', 0,   0,   28,  0,   1};
  EXPECT_EQ(q, want);
  EXPECT_TRUE(dns_build_query(1, "", kDnsTypeA).empty());
  EXPECT_TRUE(dns_build_query(1, "a..b", kDnsTypeA).empty());
  EXPECT_TRUE(dns_build_query(1, std::string(64, 'x') + ".org", kDnsTypeA).empty());
}

TEST(DnsQuery, AnswersAreReadThroughPointersAndCnamesWithTheSmallestTtl) {
  Bytes m = reply_head(0x84, 0, 3);                     // QR, AA
  add_record(m, 5, 600, {3, 'w', 'e', 'b', 0xc0, 16});  // CNAME web.example.org
  add_record(m, kDnsTypeA, 300, {192, 0, 2, 99});
  add_record(m, kDnsTypeA, 900, {192, 0, 2, 7});
  std::string error;
  const auto answer = dns_parse_response(m, 0x1234, "WWW.example.org.", kDnsTypeA, error);
  ASSERT_TRUE(answer) << error;
  EXPECT_EQ(answer->rcode, 0);
  EXPECT_TRUE(answer->authoritative);
  EXPECT_FALSE(answer->truncated);
  EXPECT_EQ(answer->addresses, (std::vector<std::string>{"192.0.2.7", "192.0.2.99"}));
  EXPECT_EQ(answer->ttl, std::optional<uint32_t>(300));
}

TEST(DnsQuery, RcodesAndTruncationAreReported) {
  std::string error;
  const auto nx =
      dns_parse_response(reply_head(0x84, 3, 0), 0x1234, "www.example.org", kDnsTypeA, error);
  ASSERT_TRUE(nx) << error;
  EXPECT_EQ(dns_rcode_name(nx->rcode), "NXDOMAIN");
  EXPECT_TRUE(nx->addresses.empty());
  EXPECT_FALSE(nx->ttl.has_value());
  const auto tc =
      dns_parse_response(reply_head(0x82, 0, 0), 0x1234, "www.example.org", kDnsTypeA, error);
  ASSERT_TRUE(tc) << error;
  EXPECT_TRUE(tc->truncated);
  EXPECT_EQ(dns_rcode_name(42), "RCODE 42");
}

TEST(DnsQuery, RepliesThatAreNotOursAreRefused) {
  std::string error;
  const Bytes ok = reply_head(0x84, 0, 0);
  EXPECT_FALSE(dns_parse_response(ok, 0x4321, "www.example.org", kDnsTypeA, error));
  EXPECT_EQ(error, "a reply to another query (id)");
  EXPECT_FALSE(dns_parse_response(ok, 0x1234, "app.example.org", kDnsTypeA, error));
  EXPECT_EQ(error, "a reply to another question");
  EXPECT_FALSE(dns_parse_response(ok, 0x1234, "www.example.org", kDnsTypeAaaa, error));
  EXPECT_FALSE(dns_parse_response(Bytes(ok.begin(), ok.begin() + 11), 0x1234, "www.example.org",
                                  kDnsTypeA, error));
  Bytes query = ok;
  query[2] = 0x01;  // QR clear: our own query echoed back
  EXPECT_FALSE(dns_parse_response(query, 0x1234, "www.example.org", kDnsTypeA, error));
  // A record that runs past the end, and a pointer loop, are malformed, not a crash.
  Bytes cut = reply_head(0x84, 0, 1);
  add_record(cut, kDnsTypeA, 300, {192, 0, 2, 99});
  cut.resize(cut.size() - 2);
  EXPECT_FALSE(dns_parse_response(cut, 0x1234, "www.example.org", kDnsTypeA, error));
  EXPECT_EQ(error, "a malformed answer record");
  Bytes loop = reply_head(0x84, 0, 1);
  const auto at = static_cast<uint8_t>(loop.size());
  loop.insert(loop.end(), {0xc0, at, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4});
  EXPECT_FALSE(dns_parse_response(loop, 0x1234, "www.example.org", kDnsTypeA, error));
}

TEST(DnsQuery, ResolvConfNameserversInOrder) {
  EXPECT_EQ(resolv_conf_servers("# local\nsearch lab\nnameserver 127.0.0.53\noptions edns0\n"
                                "nameserver  2001:db8::1 \nnameserver\n"),
            (std::vector<std::string>{"127.0.0.53", "2001:db8::1"}));
}

}  // namespace
}  // namespace cutpilot::agent
