// SshSession and agent deployment against real sshd lab hosts.
#include "transport/ssh_session.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/support/child.h"
#include "tests/support/lab.h"
#include "tests/support/transport_fixtures.h"
#include "transport/deploy.h"
#include "transport/sha256.h"

namespace cutpilot::transport {
namespace {

using namespace std::chrono_literals;
using test::Lab;

using test::agent_binary;
using test::target_for;

TEST(SshSession, RunsACommandThroughTheLabConfig) {
  Lab lab({"h1"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  SshSession session(target_for(lab, "h1"));
  ASSERT_TRUE(session.open()) << session.error();
  EXPECT_EQ(session.host_key().type, "ssh-ed25519");
  EXPECT_EQ(session.host_key().fingerprint.rfind("SHA256:", 0), 0u);
  const ExecResult r = session.run("echo \"$HOME\"; echo oops >&2; exit 3", "", 5s);
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.out, lab.host_dir("h1") + "/home\n");
  EXPECT_EQ(r.err, "oops\n");
  EXPECT_EQ(r.exit_status, 3);
}

TEST(SshSession, AgentIsUploadedOnceAndReused) {
  Lab lab({"h1"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  const AgentBinary agent = agent_binary();
  for (bool expect_upload : {true, false}) {
    SshSession session(target_for(lab, "h1"));
    ASSERT_TRUE(session.open()) << session.error();
    RunningAgent running;
    std::string error;
    ASSERT_TRUE(start_agent(session, agent, running, error, 10s)) << error;
    EXPECT_EQ(running.uploaded, expect_upload);
    EXPECT_EQ(running.identity.agent_version, kVersion);
    ssh_channel_close(running.channel);
    ssh_channel_free(running.channel);
  }
  const std::string cached = lab.host_dir("h1") + "/home/.cache/cutpilot/" + agent.remote_name();
  EXPECT_TRUE(std::filesystem::exists(cached));
  EXPECT_EQ(std::filesystem::status(cached).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_all);
}

std::string write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

// The SHA256 fingerprint of a lab host's key, as ssh-keygen prints it.
std::string fingerprint_of(const Lab& lab, const std::string& host) {
  const std::string line =
      test::capture_line("ssh-keygen -lf " + lab.host_dir(host) + "/ssh_host_ed25519_key.pub");
  return line.substr(line.find(' ') + 1, line.find(' ', line.find(' ') + 1) - line.find(' ') - 1);
}

TEST(SshSession, UnknownHostKeyIsRefusedWithItsFingerprint) {
  Lab lab({"h1"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  SshTarget target = target_for(lab, "h1");
  target.known_hosts = write_file(lab.dir() + "/empty_known_hosts", "");
  SshSession session(target);
  ASSERT_FALSE(session.open());
  EXPECT_EQ(session.failure(), OpenFailure::kHostKeyUnknown);
  const std::string fp = fingerprint_of(lab, "h1");
  ASSERT_EQ(fp.rfind("SHA256:", 0), 0u);
  EXPECT_EQ(session.error(),
            "h1: unknown host key for 127.0.0.1:" + std::to_string(lab.port("h1")) +
                ": ssh-ed25519 " + fp + " is not in " + lab.dir() +
                "/empty_known_hosts. Check the fingerprint with the host's "
                "owner, then run `cutpilot trust h1` to add it.");
}

TEST(SshSession, ChangedHostKeyIsRefused) {
  Lab lab({"h1", "h2"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  // h2's key filed under h1's address: exactly what a swapped server looks like.
  const std::string h2_key =
      test::capture_line("cut -d' ' -f1,2 " + lab.host_dir("h2") + "/ssh_host_ed25519_key.pub");
  SshTarget target = target_for(lab, "h1");
  target.known_hosts =
      write_file(lab.dir() + "/swapped",
                 "[127.0.0.1]:" + std::to_string(lab.port("h1")) + " " + h2_key + "\n");
  SshSession session(target);
  ASSERT_FALSE(session.open());
  EXPECT_EQ(session.failure(), OpenFailure::kHostKeyChanged);
  EXPECT_NE(session.error().find("h1: HOST KEY CHANGED for 127.0.0.1:"), std::string::npos)
      << session.error();
  EXPECT_NE(session.error().find(fingerprint_of(lab, "h1")), std::string::npos);
}

// Host h1 reached with only DIR/key to offer: no ssh-agent.
SshTarget without_agent(const Lab& lab, const std::string& key) {
  unsetenv("SSH_AUTH_SOCK");
  SshTarget target = target_for(lab, "h1");
  target.ssh_config = test::config_with_key(lab, key);
  return target;
}

TEST(SshSession, WrongClientKeyIsAnAuthErrorNamingTheHost) {
  Lab lab({"h1"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  ASSERT_TRUE(test::make_stranger_key(lab, "stranger"));
  SshSession session(without_agent(lab, "stranger"));
  ASSERT_FALSE(session.open());
  EXPECT_EQ(session.failure(), OpenFailure::kAuth);
  EXPECT_EQ(session.error().rfind("h1: authentication failed: no key was accepted for ", 0), 0u)
      << session.error();
}

TEST(SshSession, KeyFromSshAgentIsUsedWhenTheKeyFilesFail) {
  Lab lab({"h1"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  // The config names a key the host does not accept; only ssh-agent holds the right one.
  ASSERT_TRUE(test::make_stranger_key(lab, "stranger"));
  const std::string sock = lab.dir() + "/agent.sock";
  const std::string pid = test::capture_line("ssh-agent -a " + sock +
                                             " | sed -n 's/^SSH_AGENT_PID=\\([0-9]*\\).*/\\1/p'");
  ASSERT_FALSE(pid.empty());
  ASSERT_EQ(test::shell("SSH_AUTH_SOCK=" + sock + " ssh-add -q " + lab.dir() + "/id_ed25519"), 0);
  setenv("SSH_AUTH_SOCK", sock.c_str(), 1);
  SshTarget target = target_for(lab, "h1");
  // Without IdentitiesOnly, as ssh would then also offer the agent's keys.
  target.ssh_config = test::config_with_key(lab, "stranger");
  ASSERT_EQ(test::shell("sed -i '/IdentitiesOnly/d' " + target.ssh_config), 0);
  SshSession session(target);
  const bool opened = session.open();
  unsetenv("SSH_AUTH_SOCK");
  test::shell("kill " + pid);
  ASSERT_TRUE(opened) << session.error();
  EXPECT_EQ(session.run("echo $CUTPILOT_LAB_HOST", "", 5s).out, "h1\n");
}

TEST(SshSession, KeyWithAPassphraseIsRefusedWithoutPrompting) {
  Lab lab({"h1"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  // The lab key, re-encrypted with a passphrase.
  ASSERT_EQ(test::shell("cp " + lab.dir() + "/id_ed25519 " + lab.dir() + "/locked && " +
                        "ssh-keygen -q -p -N secret -f " + lab.dir() + "/locked"),
            0);
  SshSession session(without_agent(lab, "locked"));
  ASSERT_FALSE(session.open());
  EXPECT_EQ(session.failure(), OpenFailure::kAuth);
  EXPECT_NE(session.error().find("a key needs a passphrase: add it to ssh-agent"),
            std::string::npos)
      << session.error();
}

// Deploys the agent once and returns whether it had to upload.
bool deploy(const Lab& lab, const AgentBinary& agent, std::string& error) {
  SshSession session(target_for(lab, "h1"));
  if (!session.open()) {
    error = session.error();
    return false;
  }
  RunningAgent running;
  if (!start_agent(session, agent, running, error, 10s)) throw std::runtime_error(error);
  ssh_channel_close(running.channel);
  ssh_channel_free(running.channel);
  return running.uploaded;
}

TEST(SshSession, ChangedAgentBinaryIsUploadedAgain) {
  Lab lab({"h1"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  std::string error;
  const AgentBinary agent = agent_binary();
  EXPECT_TRUE(deploy(lab, agent, error));
  EXPECT_FALSE(deploy(lab, agent, error));
  // Another build of the agent: bytes appended to an ELF file leave it runnable.
  AgentBinary changed = agent;
  changed.bytes += std::string(64, '\0');
  changed.sha256 = sha256_hex(changed.bytes);
  EXPECT_TRUE(deploy(lab, changed, error));
  EXPECT_FALSE(deploy(lab, changed, error));
  const std::string cache = lab.host_dir("h1") + "/home/.cache/cutpilot/";
  EXPECT_TRUE(std::filesystem::exists(cache + agent.remote_name()));
  EXPECT_TRUE(std::filesystem::exists(cache + changed.remote_name()));
}

TEST(SshSession, CorruptRemoteCopyIsReplacedAndNeverRun) {
  Lab lab({"h1"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  std::string error;
  const AgentBinary agent = agent_binary();
  ASSERT_TRUE(deploy(lab, agent, error));
  const std::string cached = lab.host_dir("h1") + "/home/.cache/cutpilot/" + agent.remote_name();
  const std::string marker = lab.dir() + "/corrupt-copy-ran";
  // Replaced by rename: the first agent may still be running from that file.
  write_file(cached + ".bad", "#!/bin/sh\ntouch " + marker + "\n");
  std::filesystem::permissions(cached + ".bad", std::filesystem::perms::owner_all);
  std::filesystem::rename(cached + ".bad", cached);
  EXPECT_TRUE(deploy(lab, agent, error)) << "a copy with the wrong hash must be replaced";
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the corrupt copy was run";
  EXPECT_EQ(sha256_hex(*read_file(cached)), agent.sha256);
}

TEST(SshSession, CopyChangedInPlaceAfterItsStampIsHashedAgainAndReplaced) {
  Lab lab({"h1"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  std::string error;
  const AgentBinary agent = agent_binary();
  ASSERT_TRUE(deploy(lab, agent, error));
  ASSERT_FALSE(deploy(lab, agent, error));  // the second launch trusts the stamp
  const std::string cached = lab.host_dir("h1") + "/home/.cache/cutpilot/" + agent.remote_name();
  ASSERT_TRUE(std::filesystem::exists(cached + ".stamp")) << "a verified copy gets a stamp";
  // Same inode, same size: only the ctime tells. The agent of the last deploy may
  // still be exiting (ETXTBSY), so the write is retried for a while.
  const std::string marker = lab.dir() + "/changed-copy-ran";
  std::string evil = "#!/bin/sh\ntouch " + marker + "\nexit 0\n";
  evil.resize(4096, '#');
  int fd = -1;
  for (int i = 0; i < 100 && fd < 0; ++i) {
    fd = ::open(cached.c_str(), O_WRONLY);
    if (fd < 0) std::this_thread::sleep_for(50ms);
  }
  ASSERT_GE(fd, 0) << "cannot open the cached agent for writing";
  ASSERT_EQ(::pwrite(fd, evil.data(), evil.size(), 0), static_cast<ssize_t>(evil.size()));
  ::close(fd);
  EXPECT_TRUE(deploy(lab, agent, error)) << "a copy changed after its stamp must be replaced";
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the changed copy was run";
  EXPECT_EQ(sha256_hex(*read_file(cached)), agent.sha256);
}

TEST(SshSession, UploadToAFullDiskFailsClearlyAndLeavesNothing) {
  Lab lab({"h1"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  // A 256 KiB filesystem as the host's cache: the ~900 KB agent cannot fit.
  const std::string cache = lab.host_dir("h1") + "/home/.cache";
  ASSERT_EQ(test::shell("mkdir -p " + cache), 0);
  if (geteuid() != 0 || test::shell("mount -t tmpfs -o size=256k cutpilot-full " + cache) != 0)
    GTEST_SKIP() << "needs root to mount a tiny tmpfs";
  SshSession session(target_for(lab, "h1"));
  ASSERT_TRUE(session.open()) << session.error();
  RunningAgent running;
  std::string error;
  const bool started = start_agent(session, agent_binary(), running, error, 10s);
  const std::string left = test::capture("ls -A " + cache + "/cutpilot");
  test::shell("umount " + cache);
  EXPECT_FALSE(started);
  EXPECT_NE(error.find("h1: uploading the agent to $HOME/.cache/cutpilot/agent-"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("No space left on device"), std::string::npos) << error;
  EXPECT_EQ(left, "") << "the partial upload must be removed";
}

// Puts a shell script named tool first on a lab host's PATH (the host's own bin/).
void stand_in(const Lab& lab, const std::string& host, const std::string& tool,
              const std::string& body) {
  const std::string bin = lab.host_dir(host) + "/bin";
  std::filesystem::create_directories(bin);
  write_file(bin + "/" + tool, "#!/bin/sh\n" + body);
  std::filesystem::permissions(bin + "/" + tool, std::filesystem::perms::owner_all);
}

TEST(SshSession, SudoRunsTheAgentUnderSudo) {
  Lab lab({"h1"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  if (geteuid() != 0) GTEST_SKIP() << "passwordless sudo is only certain for root here";
  SshTarget target = target_for(lab, "h1");
  target.sudo = true;
  SshSession session(target);
  ASSERT_TRUE(session.open()) << session.error();
  RunningAgent running;
  std::string error;
  ASSERT_TRUE(start_agent(session, agent_binary(), running, error, 10s)) << error;
  // The agent's parent is sudo: read it from the agent's own session on the host.
  const ExecResult tree = session.run(
      "for p in $(pgrep -f 'cutpilot/agent-.* serve'); do ps -o comm= -p $(ps -o ppid= -p $p); "
      "done",
      "", 5s);
  EXPECT_NE(tree.out.find("sudo"), std::string::npos) << tree.out << tree.err;
  ssh_channel_close(running.channel);
  ssh_channel_free(running.channel);
}

TEST(SshSession, SudoThatWantsAPasswordIsAClearError) {
  Lab lab({"h1"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  // Everything runs as root here, where sudo never asks; a stand-in on the host's PATH
  // answers exactly as sudo -n does for a user whose sudo needs a password.
  stand_in(lab, "h1", "sudo", "echo 'sudo: a password is required' >&2\nexit 1\n");
  SshTarget target = target_for(lab, "h1");
  target.sudo = true;
  SshSession session(target);
  ASSERT_TRUE(session.open()) << session.error();
  RunningAgent running;
  std::string error;
  EXPECT_FALSE(start_agent(session, agent_binary(), running, error, 10s));
  EXPECT_EQ(error,
            "h1: the agent exited before its ready line: sudo: a password is required "
            "(sudo = true needs passwordless sudo for the agent)");
}

TEST(SshSession, OtherArchitectureIsRefusedAndNothingIsUploaded) {
  Lab lab({"h1"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  // A stand-in uname on the host's PATH: this machine is x86_64 only.
  stand_in(lab, "h1", "uname", "echo aarch64\n");
  SshSession session(target_for(lab, "h1"));
  ASSERT_TRUE(session.open()) << session.error();
  RunningAgent running;
  std::string error;
  EXPECT_FALSE(start_agent(session, agent_binary(), running, error, 10s));
  EXPECT_EQ(error,
            "h1: unsupported architecture aarch64 (cutpilot-agent is built for x86_64 only)");
  EXPECT_FALSE(std::filesystem::exists(lab.host_dir("h1") + "/home/.cache/cutpilot"));
}

TEST(SshSession, ProxyJumpThroughAnotherLabHost) {
  Lab lab({"jump", "inner"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  const auto accepted = [&] {
    return test::capture_line("grep -c 'Accepted publickey' " + lab.host_dir("jump") + "/sshd.log");
  };
  const std::string before = accepted();
  // Jump named by the plan.
  SshTarget by_plan = target_for(lab, "inner");
  by_plan.jump = "jump";
  SshSession a(by_plan);
  ASSERT_TRUE(a.open()) << a.error();
  EXPECT_EQ(a.run("echo $CUTPILOT_LAB_HOST", "", 5s).out, "inner\n");
  // Jump named by the ssh config (ProxyJump).
  const std::string config = lab.dir() + "/jump_config";
  ASSERT_EQ(
      test::shell("cp " + lab.ssh_config() + " " + config + " && sed -n '/^Host inner$/,/^$/p' " +
                  lab.ssh_config() + " | sed 's/^Host inner$/Host via-jump/' >> " + config +
                  " && echo '  ProxyJump jump' >> " + config),
      0);
  SshTarget by_config = target_for(lab, "via-jump");
  by_config.ssh_config = config;
  SshSession b(by_config);
  ASSERT_TRUE(b.open()) << b.error();
  EXPECT_EQ(b.run("echo $CUTPILOT_LAB_HOST", "", 5s).out, "inner\n");
  EXPECT_EQ(std::stoi(accepted()), std::stoi(before) + 2) << "both went through the jump host";
}

}  // namespace
}  // namespace cutpilot::transport
