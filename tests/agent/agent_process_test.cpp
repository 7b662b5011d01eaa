// The real cutpilot-agent binary, driven over its stdin/stdout.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "cutpilot/revision.h"
#include "cutpilot/version.h"
#include "tests/support/child.h"
#include "transport/codec.h"
#include "transport/handshake.h"

namespace cutpilot {
namespace {

using namespace std::chrono_literals;
using namespace cutpilot::proto;
using test::Child;

const std::string kAgent = CUTPILOT_AGENT_PATH;

// Reads the ready line, then decodes frames from whatever follows.
class AgentConversation {
 public:
  explicit AgentConversation(Child& child) : child_(child) {}

  void expect_ready_line() {
    HandshakeScanner scanner(kProtocolVersion, "test");
    HandshakeScanner::Status status = HandshakeScanner::Status::kNeedMore;
    for (int i = 0; i < 50 && status == HandshakeScanner::Status::kNeedMore; ++i)
      status = scanner.feed(child_.read_some(200ms));
    ASSERT_EQ(status, HandshakeScanner::Status::kReady) << scanner.error();
    EXPECT_EQ(scanner.agent().agent_version, kVersion);
    decoder_.feed(scanner.leftover());
  }
  // The next message within 5 s; a bad frame or a timeout fails the test.
  Message next() {
    Message m;
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto status = decoder_.next(m);
      if (status == FrameDecoder::Status::kMessage) return m;
      if (status == FrameDecoder::Status::kError) {
        ADD_FAILURE() << "agent sent a bad frame: " << decoder_.error();
        return Ping{};
      }
      decoder_.feed(child_.read_some(100ms));
    }
    ADD_FAILURE() << "no message from the agent within 5 s";
    return Ping{};
  }

 private:
  test::Child& child_;
  FrameDecoder decoder_;
};

TEST(AgentProcess, VersionNamesAgentRevisionAndProtocol) {
  Child child({kAgent, "--version"});
  const std::string out = child.read_at_least(10, 5s);
  EXPECT_EQ(out, std::string("cutpilot-agent ") + kVersion + " (git " + kRevision + ", protocol " +
                     std::to_string(kProtocolVersion) + ")\n");
  EXPECT_EQ(child.wait(5s), 0);
}

TEST(AgentProcess, NoArgumentsIsAUsageError) {
  Child child({kAgent});
  EXPECT_NE(child.read_stderr(5s).find("usage: cutpilot-agent"), std::string::npos);
  EXPECT_EQ(child.wait(5s), 2);
}

TEST(AgentProcess, HelloPingAndCleanExitAtEof) {
  Child child({kAgent, "serve"});
  AgentConversation talk(child);
  talk.expect_ready_line();
  child.write(encode_frame(Hello{kProtocolVersion, "test"}) + encode_frame(Ping{31337}));
  const Message ready = talk.next();
  ASSERT_TRUE(std::holds_alternative<Ready>(ready)) << type_name(type_of(ready));
  EXPECT_EQ(std::get<Ready>(ready).agent_version, kVersion);
  const Message pong = talk.next();
  ASSERT_TRUE(std::holds_alternative<Pong>(pong));
  EXPECT_EQ(std::get<Pong>(pong).token, 31337u);
  child.close_stdin();
  EXPECT_EQ(child.wait(5s), 0);
}

TEST(AgentProcess, ServeUnderSudoTakesTheLoginHomeAndAMissingOneIsAUsageError) {
  // What the launch runs under sudo (transport/deploy.cpp); a HOME that is not absolute is
  // ignored rather than keeping the agent from starting.
  for (const char* home : {"/home/ops", ""}) {
    Child child({kAgent, "serve", "--login-home", home});
    AgentConversation talk(child);
    talk.expect_ready_line();
    child.write(encode_frame(Hello{kProtocolVersion, "test"}) + encode_frame(Ping{7}));
    ASSERT_TRUE(std::holds_alternative<Ready>(talk.next())) << "--login-home '" << home << "'";
    ASSERT_TRUE(std::holds_alternative<Pong>(talk.next()));
    child.close_stdin();
    EXPECT_EQ(child.wait(5s), 0);
  }
  Child missing({kAgent, "serve", "--login-home"});
  EXPECT_NE(missing.read_stderr(5s).find("usage: cutpilot-agent"), std::string::npos);
  EXPECT_EQ(missing.wait(5s), 2);
}

TEST(AgentProcess, GarbageOnStdinGivesAnErrorFrameAndACleanExit) {
  Child child({kAgent, "serve"});
  AgentConversation talk(child);
  talk.expect_ready_line();
  child.write(std::string("\x00\x00\x00\x03\x99garbage", 11));
  const Message m = talk.next();
  ASSERT_TRUE(std::holds_alternative<Error>(m));
  EXPECT_EQ(std::get<Error>(m).code, ErrorCode::kMalformed);
  EXPECT_NE(std::get<Error>(m).message.find("unknown message type 153"), std::string::npos);
  EXPECT_EQ(child.wait(5s), 1);
}

TEST(AgentProcess, OversizeFrameIsRefusedWithoutReadingIt) {
  Child child({kAgent, "serve"});
  AgentConversation talk(child);
  talk.expect_ready_line();
  child.write(std::string("\x7f\xff\xff\xff", 4));
  const Message m = talk.next();
  ASSERT_TRUE(std::holds_alternative<Error>(m));
  EXPECT_EQ(std::get<Error>(m).code, ErrorCode::kTooLarge);
  EXPECT_EQ(child.wait(5s), 1);
}

TEST(AgentProcess, WrongProtocolVersionIsRefused) {
  Child child({kAgent, "serve"});
  AgentConversation talk(child);
  talk.expect_ready_line();
  child.write(encode_frame(Hello{kProtocolVersion + 7, "cutpilot 9"}));
  const Message m = talk.next();
  ASSERT_TRUE(std::holds_alternative<Error>(m));
  EXPECT_EQ(std::get<Error>(m).code, ErrorCode::kVersion);
  EXPECT_EQ(child.wait(5s), 1);
}

TEST(AgentProcess, BinaryIsStaticallyLinked) {
  if (!CUTPILOT_AGENT_STATIC) GTEST_SKIP() << "sanitizer builds link the agent dynamically";
  const std::string file = test::capture("file -b " + kAgent);
  EXPECT_NE(file.find("statically linked"), std::string::npos) << file;
  const std::string ldd = test::capture("ldd " + kAgent + " 2>&1");
  EXPECT_NE(ldd.find("not a dynamic executable"), std::string::npos) << ldd;
}

TEST(AgentProcess, RunsInAnEmptyChroot) {
  if (!CUTPILOT_AGENT_STATIC) GTEST_SKIP() << "sanitizer builds link the agent dynamically";
  if (geteuid() != 0) GTEST_SKIP() << "chroot needs root; BinaryIsStaticallyLinked covers this";
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("cutpilot-chroot-" + std::to_string(getpid()));
  fs::create_directories(root);
  // Removed however the test ends, an ASSERT included.
  struct Cleanup {
    fs::path path;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } cleanup{root};
  fs::copy_file(kAgent, root / "cutpilot-agent", fs::copy_options::overwrite_existing);
  {
    // Nothing but the binary: no libc, no loader, no /dev, no /proc.
    size_t entries = 0;
    for ([[maybe_unused]] const auto& e : fs::recursive_directory_iterator(root))
      ++entries;
    ASSERT_EQ(entries, 1u);
    Child child({"chroot", root.string(), "/cutpilot-agent", "serve"});
    AgentConversation talk(child);
    talk.expect_ready_line();
    child.write(encode_frame(Hello{kProtocolVersion, "test"}) + encode_frame(Ping{5}));
    EXPECT_TRUE(std::holds_alternative<Ready>(talk.next()));
    const Message pong = talk.next();
    ASSERT_TRUE(std::holds_alternative<Pong>(pong));
    EXPECT_EQ(std::get<Pong>(pong).token, 5u);
    child.close_stdin();
    EXPECT_EQ(child.wait(5s), 0);
  }
}

}  // namespace
}  // namespace cutpilot
