#include "agents/session.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include "cutpilot/version.h"

namespace cutpilot::agent {
namespace {

using namespace cutpilot::proto;

std::vector<Message> answer(Session& session, const Message& request) {
  std::vector<Message> out;
  session.handle(request, out);
  return out;
}

TEST(AgentSession, HelloIsAnsweredWithReady) {
  Session session;
  const auto out = answer(session, Hello{kProtocolVersion, "test"});
  ASSERT_EQ(out.size(), 1u);
  const auto& ready = std::get<Ready>(out[0]);
  EXPECT_EQ(ready.protocol, kProtocolVersion);
  EXPECT_EQ(ready.agent_version, kVersion);
  EXPECT_GT(ready.pid, 0u);
  EXPECT_TRUE(session.greeted());
  EXPECT_FALSE(session.closing());
}

TEST(AgentSession, PingBeforeHelloIsRefusedAndCloses) {
  Session session;
  const auto out = answer(session, Ping{1});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<Error>(out[0]).code, ErrorCode::kBadRequest);
  EXPECT_EQ(std::get<Error>(out[0]).message, "hello expected first, got ping");
  EXPECT_TRUE(session.closing());
}

TEST(AgentSession, PingIsAnsweredWithTheSameToken) {
  Session session;
  answer(session, Hello{kProtocolVersion, "test"});
  const auto out = answer(session, Ping{77});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<Pong>(out[0]).token, 77u);
}

TEST(AgentSession, WrongProtocolNamesBothVersions) {
  Session session;
  const auto out = answer(session, Hello{kProtocolVersion + 1, "cutpilot 9.9"});
  ASSERT_EQ(out.size(), 1u);
  const auto& error = std::get<Error>(out[0]);
  EXPECT_EQ(error.code, ErrorCode::kVersion);
  EXPECT_NE(error.message.find("cockpit speaks protocol " + std::to_string(kProtocolVersion + 1)),
            std::string::npos);
  EXPECT_NE(error.message.find("this agent speaks protocol " + std::to_string(kProtocolVersion)),
            std::string::npos);
  EXPECT_TRUE(session.closing());
}

TEST(AgentSession, EventsSentToTheAgentAreAProtocolViolation) {
  Session session;
  answer(session, Hello{kProtocolVersion, "test"});
  const auto out = answer(session, Pong{1});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<Error>(out[0]).message, "pong is an event; the agent takes requests");
  EXPECT_TRUE(session.closing());
}

TEST(AgentSession, FactsDescribeThisMachine) {
  Session session;
  answer(session, Hello{kProtocolVersion, "test"});
  const auto out = answer(session, Facts{{"/tmp", "/no/such/dir"}});
  ASSERT_EQ(out.size(), 1u);
  const auto& facts = std::get<HostFacts>(out[0]);
  EXPECT_EQ(facts.cores, static_cast<uint32_t>(sysconf(_SC_NPROCESSORS_ONLN)));
  EXPECT_EQ(facts.arch, "x86_64");
  EXPECT_GT(facts.mem_total, facts.mem_available);
  ASSERT_EQ(facts.disks.size(), 3u);
  EXPECT_EQ(facts.disks[0].path, "/");
  EXPECT_GT(facts.disks[0].total, 0u);
  EXPECT_EQ(facts.disks[1].path, "/tmp");
  EXPECT_TRUE(facts.disks[1].error.empty());
  EXPECT_EQ(facts.disks[2].error, "No such file or directory");
  // This machine has rsync and psql (scripts/deps installs them).
  EXPECT_NE(std::find(facts.tools.begin(), facts.tools.end(), "rsync"), facts.tools.end());
  EXPECT_NE(std::find(facts.tools.begin(), facts.tools.end(), "psql"), facts.tools.end());
}

TEST(AgentSession, JobRequestsSayTheyAreNotSupportedYet) {
  Session session;
  answer(session, Hello{kProtocolVersion, "test"});
  const auto out = answer(session, StartJob{"r/s/h", "exec", "{}"});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<Error>(out[0]).code, ErrorCode::kUnsupported);
  EXPECT_FALSE(session.closing());
}

}  // namespace
}  // namespace cutpilot::agent
