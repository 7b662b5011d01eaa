// Fleet: many hosts in parallel, failures isolated, keepalive and reconnection.
#include "transport/fleet.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "cutpilot/version.h"
#include "tests/support/lab.h"
#include "tests/support/procs.h"
#include "tests/support/transport_fixtures.h"
#include "transport/codec.h"
#include "transport/sha256.h"

namespace cutpilot::transport {
namespace {

using namespace std::chrono_literals;
using test::Lab;

using test::agent_binary;
using test::descendants;
using test::sshd_pid;
using test::target_for;

bool all_settled(const Fleet& fleet) {
  for (const auto& host : fleet.hosts()) {
    const LinkState s = fleet.info(host).state;
    if (s != LinkState::kReady && s != LinkState::kFailed) return false;
  }
  return true;
}

std::vector<std::string> names(int n) {
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i)
    v.push_back("h" + std::to_string(i));
  return v;
}

TEST(Fleet, TwentyHostsComeUpReadyAndReportFacts) {
  Lab lab(names(20));
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  std::vector<SshTarget> targets;
  for (const auto& n : names(20))
    targets.push_back(target_for(lab, n));
  Fleet fleet(targets, agent_binary());
  fleet.start();
  std::map<std::string, std::vector<std::string>> states;
  ASSERT_TRUE(fleet.run_until(
      [&](const std::vector<HostEvent>& events) {
        for (const auto& e : events)
          if (e.state) states[e.host].emplace_back(link_state_name(*e.state));
        return all_settled(fleet);
      },
      60s));
  for (const auto& host : fleet.hosts()) {
    EXPECT_EQ(fleet.info(host).state, LinkState::kReady) << host << ": " << fleet.info(host).error;
    EXPECT_EQ(states[host],
              (std::vector<std::string>{"connecting", "authenticating", "deploying", "ready"}))
        << host;
  }
  for (const auto& host : fleet.hosts())
    ASSERT_TRUE(fleet.send(host, proto::Facts{{"/tmp"}}));
  std::map<std::string, proto::HostFacts> facts;
  ASSERT_TRUE(fleet.run_until(
      [&](const std::vector<HostEvent>& events) {
        for (const auto& e : events)
          if (e.message && std::holds_alternative<proto::HostFacts>(*e.message))
            facts[e.host] = std::get<proto::HostFacts>(*e.message);
        return facts.size() == 20;
      },
      30s));
  // The lab hosts are this machine: the facts must match what we read here.
  const auto cores = static_cast<uint32_t>(sysconf(_SC_NPROCESSORS_ONLN));
  for (const auto& [host, f] : facts) {
    EXPECT_EQ(f.cores, cores) << host;
    EXPECT_EQ(f.arch, "x86_64");
    ASSERT_EQ(f.disks.size(), 2u);
    EXPECT_EQ(f.disks[1].path, "/tmp");
    EXPECT_GT(f.disks[0].free, 0u);
  }
}

// A port that accepts TCP but never speaks SSH (the handshake hangs); closed with the test.
struct MutePort {
  MutePort() {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 && listen(fd, 8) == 0;
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  ~MutePort() { shut(); }
  // Closes the port: a connection still waiting in its backlog is reset, so a link stuck in
  // its handshake fails at once instead of at its timeout.
  void shut() {
    if (fd >= 0) close(fd);
    fd = -1;
  }
  MutePort(const MutePort&) = delete;
  MutePort& operator=(const MutePort&) = delete;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  bool ok = false;
  uint16_t port = 0;
};

TEST(Fleet, ClosedPortFailsWhileOthersComeUpUndelayedByAMuteOne) {
  // The mute host's timeout is far longer than any load can stretch the good hosts' setup:
  // they are ready, and the closed port has failed, while the mute one still waits.
  Lab lab({"good1", "good2"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  MutePort mute;
  ASSERT_TRUE(mute.ok);
  std::vector<SshTarget> targets = {target_for(lab, "good1"), target_for(lab, "good2")};
  SshTarget closed = target_for(lab, "good1");
  closed.name = "closed";
  closed.port = 1;  // nothing listens on port 1
  targets.push_back(closed);
  SshTarget slow = target_for(lab, "good1");
  slow.name = "slow";
  slow.port = mute.port;
  slow.connect_timeout = 600s;
  targets.push_back(slow);
  Fleet fleet(targets, agent_binary());
  fleet.start();
  auto settled = [&](const std::string& host) {
    const LinkState state = fleet.info(host).state;
    return state == LinkState::kReady || state == LinkState::kFailed;
  };
  ASSERT_TRUE(fleet.run_until(
      [&](const std::vector<HostEvent>&) {
        return settled("good1") && settled("good2") && settled("closed");
      },
      300s));
  EXPECT_EQ(fleet.info("good1").state, LinkState::kReady);
  EXPECT_EQ(fleet.info("good2").state, LinkState::kReady);
  EXPECT_FALSE(settled("slow")) << "a mute host settled before its timeout";
  EXPECT_EQ(fleet.info("closed").state, LinkState::kFailed);
  EXPECT_NE(fleet.info("closed").error.find("closed: cannot connect to 127.0.0.1:1"),
            std::string::npos)
      << fleet.info("closed").error;
  // The fleet waits for its links when it goes: let the mute one fail now.
  mute.shut();
  ASSERT_TRUE(
      fleet.run_until([&](const std::vector<HostEvent>&) { return settled("slow"); }, 300s));
  EXPECT_EQ(fleet.info("slow").state, LinkState::kFailed);
}

TEST(Fleet, AMuteHostFailsOnceItsConnectTimeoutRunsOut) {
  Lab lab({"good1"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  MutePort mute;
  ASSERT_TRUE(mute.ok);
  SshTarget slow = target_for(lab, "good1");
  slow.name = "slow";
  slow.port = mute.port;
  slow.connect_timeout = 2s;
  Fleet fleet({slow}, agent_binary());
  const auto started = std::chrono::steady_clock::now();
  fleet.start();
  ASSERT_TRUE(
      fleet.run_until([&](const std::vector<HostEvent>&) { return all_settled(fleet); }, 300s));
  EXPECT_EQ(fleet.info("slow").state, LinkState::kFailed);
  EXPECT_NE(fleet.info("slow").error.find("slow: cannot connect to 127.0.0.1:"), std::string::npos)
      << fleet.info("slow").error;
  EXPECT_GE(std::chrono::steady_clock::now() - started, 2s) << "failed before its timeout";
}

// Runs the fleet until host reaches state; the states seen on the way.
std::vector<std::string> states_until(Fleet& fleet, const std::string& host, LinkState want,
                                      std::chrono::seconds limit) {
  std::vector<std::string> seen;
  fleet.run_until(
      [&](const std::vector<HostEvent>& events) {
        for (const auto& e : events)
          if (e.state && e.host == host) seen.emplace_back(link_state_name(*e.state));
        return !seen.empty() && seen.back() == link_state_name(want);
      },
      limit);
  return seen;
}

TEST(Fleet, KilledSshConnectionIsNoticedAndTheHostReconnects) {
  Lab lab({"h1"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  Fleet fleet({target_for(lab, "h1")}, agent_binary());
  fleet.start();
  ASSERT_EQ(states_until(fleet, "h1", LinkState::kReady, 120s).back(), "ready");
  const pid_t listener = sshd_pid(lab, "h1");
  ASSERT_GT(listener, 0);
  const auto children = descendants(listener);
  ASSERT_FALSE(children.empty()) << "no per-connection sshd process";
  for (pid_t p : children)
    kill(p, SIGKILL);
  const auto seen = states_until(fleet, "h1", LinkState::kReady, 120s);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front(), "lost");
  EXPECT_EQ(seen.back(), "ready");
  EXPECT_NE(std::find(seen.begin(), seen.end(), "reconnecting"), seen.end());
  EXPECT_EQ(fleet.info("h1").connects, 2);
  EXPECT_FALSE(fleet.info("h1").uploaded) << "the agent was cached by the first connect";
  // The new link works end to end.
  ASSERT_TRUE(fleet.send("h1", proto::Facts{}));
  bool answered = fleet.run_until(
      [](const std::vector<HostEvent>& events) {
        for (const auto& e : events)
          if (e.message && std::holds_alternative<proto::HostFacts>(*e.message)) return true;
        return false;
      },
      10s);
  EXPECT_TRUE(answered);
}

TEST(Fleet, FrozenLinkIsDeclaredDeadByKeepalive) {
  Lab lab({"h1"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  FleetOptions options;
  options.keepalive = 500ms;
  options.dead_after = 2s;
  Fleet fleet({target_for(lab, "h1")}, agent_binary(), options);
  fleet.start();
  ASSERT_EQ(states_until(fleet, "h1", LinkState::kReady, 120s).back(), "ready");
  // Stop the connection's sshd processes: TCP stays open, nothing answers.
  const auto frozen = descendants(sshd_pid(lab, "h1"));
  ASSERT_FALSE(frozen.empty());
  for (pid_t p : frozen)
    kill(p, SIGSTOP);
  const auto started = std::chrono::steady_clock::now();
  const auto seen = states_until(fleet, "h1", LinkState::kLost, 120s);
  const auto noticed = std::chrono::steady_clock::now() - started;
  for (pid_t p : frozen)
    kill(p, SIGKILL);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back(), "lost");
  EXPECT_LT(noticed, 60s) << "a frozen link was never declared dead";
  EXPECT_GE(noticed, 1500ms) << "declared dead before dead_after passed";
  EXPECT_NE(fleet.info("h1").error.find("no answer for 2 s"), std::string::npos)
      << fleet.info("h1").error;
  // And it comes back once the host answers again.
  EXPECT_EQ(states_until(fleet, "h1", LinkState::kReady, 120s).back(), "ready");
}

// printf(1) escapes for arbitrary bytes.
std::string printf_escaped(const std::string& bytes) {
  std::string out;
  char octal[8];
  for (unsigned char c : bytes) {
    std::snprintf(octal, sizeof octal, "\\%03o", c);
    out += octal;
  }
  return out;
}

TEST(Fleet, GarbageFromOneAgentDropsOnlyThatHost) {
  Lab lab({"good", "bad"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  // The "agent" deployed is a script: on host "bad" it handshakes correctly, then sends
  // a frame of an unknown type; everywhere else it runs the real agent.
  const std::string hello = proto::encode_frame(
      proto::Hello{proto::kProtocolVersion, std::string("cutpilot ") + kVersion});
  const std::string ready = proto::encode_frame(proto::Ready{proto::kProtocolVersion, "0.1.0", 1});
  AgentBinary fake;
  fake.bytes =
      "#!/bin/sh\n"
      "[ \"$CUTPILOT_LAB_HOST\" = bad ] || exec " CUTPILOT_AGENT_PATH
      " serve\n"
      "printf '" +
      proto::ready_line(proto::kProtocolVersion, "0.1.0") +
      "'\n"
      "head -c " +
      std::to_string(hello.size()) +
      " >/dev/null\n"
      "printf '" +
      printf_escaped(ready) +
      "'\n"
      "sleep 1\n"
      "printf '\\000\\000\\000\\003\\231zz'\n"
      "sleep 30\n";
  fake.sha256 = sha256_hex(fake.bytes);
  Fleet fleet({target_for(lab, "good"), target_for(lab, "bad")}, fake);
  fleet.start();
  ASSERT_EQ(states_until(fleet, "bad", LinkState::kReady, 120s).back(), "ready");
  const auto seen = states_until(fleet, "bad", LinkState::kFailed, 10s);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back(), "failed");
  EXPECT_EQ(fleet.info("bad").error, "bad: bad frame from the agent: unknown message type 153");
  EXPECT_EQ(fleet.info("good").state, LinkState::kReady);
  ASSERT_TRUE(fleet.send("good", proto::Facts{}));
  EXPECT_TRUE(fleet.run_until(
      [](const std::vector<HostEvent>& events) {
        for (const auto& e : events)
          if (e.host == "good" && e.message && std::holds_alternative<proto::HostFacts>(*e.message))
            return true;
        return false;
      },
      10s));
}

}  // namespace
}  // namespace cutpilot::transport
