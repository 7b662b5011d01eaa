#include "transport/handshake.h"

#include <gtest/gtest.h>

#include "transport/protocol.h"

namespace cutpilot::proto {
namespace {

using Status = HandshakeScanner::Status;

TEST(Handshake, ReadyLineFormat) {
  EXPECT_EQ(ready_line(1, "0.1.0"), "CUTPILOT-AGENT-READY protocol=1 agent=0.1.0\n");
}

TEST(Handshake, LoginShellNoiseBeforeTheReadyLineIsKeptAsPreamble) {
  HandshakeScanner scanner(kProtocolVersion, "cutpilot 0.1.0");
  EXPECT_EQ(scanner.feed("Welcome to host\r\nLast login: never\n"), Status::kNeedMore);
  EXPECT_EQ(scanner.feed(ready_line(kProtocolVersion, "0.1.0") + std::string("\x00\x00", 2)),
            Status::kReady);
  EXPECT_EQ(scanner.agent().agent_version, "0.1.0");
  EXPECT_EQ(scanner.preamble(), (std::vector<std::string>{"Welcome to host", "Last login: never"}));
  EXPECT_EQ(scanner.leftover(), std::string("\x00\x00", 2));
}

TEST(Handshake, ReadyLineSplitAcrossReads) {
  HandshakeScanner scanner(kProtocolVersion, "cutpilot 0.1.0");
  const std::string line = ready_line(kProtocolVersion, "0.1.0");
  for (size_t i = 0; i + 1 < line.size(); ++i)
    ASSERT_EQ(scanner.feed(line.substr(i, 1)), Status::kNeedMore) << i;
  EXPECT_EQ(scanner.feed("\n"), Status::kReady);
  EXPECT_TRUE(scanner.preamble().empty());
}

TEST(Handshake, VersionMismatchNamesBothVersions) {
  HandshakeScanner scanner(1, "cutpilot 0.1.0");
  ASSERT_EQ(scanner.feed(ready_line(2, "0.2.0")), Status::kError);
  EXPECT_EQ(scanner.error(),
            "agent speaks protocol 2 (cutpilot-agent 0.2.0), this end speaks protocol 1 "
            "(cutpilot 0.1.0)");
}

TEST(Handshake, MalformedReadyLinesAreRefused) {
  for (const char* bad :
       {"CUTPILOT-AGENT-READY\n", "CUTPILOT-AGENT-READY protocol=x agent=1\n",
        "CUTPILOT-AGENT-READY protocol=1\n", "CUTPILOT-AGENT-READY protocol=1 agent=\n",
        "CUTPILOT-AGENT-READY protocol=1 agent=1 2\n",
        "CUTPILOT-AGENT-READY protocol=99999999999 agent=1\n"}) {
    HandshakeScanner scanner(1, "cutpilot 0.1.0");
    EXPECT_EQ(scanner.feed(bad), Status::kError) << bad;
    EXPECT_NE(scanner.error().find("malformed ready line"), std::string::npos) << scanner.error();
  }
}

TEST(Handshake, EndlessOutputWithoutAReadyLineGivesUp) {
  HandshakeScanner scanner(1, "cutpilot 0.1.0");
  const std::string chunk(1000, 'z');
  Status status = Status::kNeedMore;
  for (int i = 0; i < 100 && status == Status::kNeedMore; ++i)
    status = scanner.feed(chunk);
  ASSERT_EQ(status, Status::kError);
  EXPECT_EQ(scanner.error(), "no ready line from the agent in the first 65536 bytes of output");
}

TEST(Handshake, PreambleKeepsAtMostTwentyLines) {
  HandshakeScanner scanner(1, "cutpilot 0.1.0");
  for (int i = 0; i < 50; ++i)
    scanner.feed("motd line\n");
  EXPECT_EQ(scanner.preamble().size(), 20u);
}

}  // namespace
}  // namespace cutpilot::proto
