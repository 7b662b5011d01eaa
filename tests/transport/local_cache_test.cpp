// What the cockpit remembers between runs (issue 20): the agent's hash, keyed by the
// file's identity, and `ssh -G` answers, keyed by everything the answer depends on.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/support/lab.h"
#include "tests/support/transport_fixtures.h"
#include "transport/deploy.h"
#include "transport/local_cache.h"
#include "transport/sha256.h"
#include "transport/ssh_g_cache.h"
#include "transport/ssh_session.h"

namespace cutpilot::transport {
namespace {

using namespace std::chrono_literals;
using test::Lab;

// A fresh directory as XDG_CACHE_HOME for one test (the cockpit's cache), removed after.
class CacheDir {
 public:
  CacheDir() {
    char dir[] = "/tmp/cutpilot-cache-test-XXXXXX";
    if (!mkdtemp(dir)) throw std::runtime_error("mkdtemp failed");
    dir_ = dir;
    const char* old = std::getenv("XDG_CACHE_HOME");
    if (old) old_ = old;
    setenv("XDG_CACHE_HOME", dir_.c_str(), 1);
  }
  ~CacheDir() {
    if (old_)
      setenv("XDG_CACHE_HOME", old_->c_str(), 1);
    else
      unsetenv("XDG_CACHE_HOME");
    std::filesystem::remove_all(dir_);
  }
  const std::string& dir() const { return dir_; }
  // How many entries the cache holds under sub (cutpilot/SUB/...).
  size_t entries(const std::string& sub) const {
    const std::filesystem::path path = dir_ + "/cutpilot/" + sub;
    if (!std::filesystem::exists(path)) return 0;
    size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(path))
      ++n;
    return n;
  }
  std::string only_entry(const std::string& sub) const {
    for (const auto& entry : std::filesystem::directory_iterator(dir_ + "/cutpilot/" + sub))
      return entry.path().string();
    return "";
  }

 private:
  std::string dir_;
  std::optional<std::string> old_;
};

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

TEST(SshGCache, ConfigsWhoseAnswerDependsOnMoreThanTheirTextAreNotCached) {
  EXPECT_TRUE(
      ssh_config_cacheable("Host a b\n  HostName 127.0.0.1\n  Port 2200\n"
                           "  ProxyCommand nc %h %p\n# Match and Include in a comment\n"));
  EXPECT_TRUE(ssh_config_cacheable("Host *\n  IdentityFile %d/.ssh/id_%r\n"));
  for (const char* text :
       {"Match exec \"test -e /tmp/x\"\n  Port 2\n", "  match=all\n", "Host a\n  MATCH host b\n",
        "CanonicalizeHostname yes\n", "Host a\n  IdentityAgent ${SOCK}\n",
        "Host a\n  ControlPath ~/%C\n", "Host a\n  HostName %L\n",
        "Host a\n  LocalCommand echo %l\n", "\"Match\" all\n"})
    EXPECT_FALSE(ssh_config_cacheable(text)) << text;
}

TEST(SshGCache, TheKeyHoldsTheArgumentsAndTheConfigText) {
  CacheDir cache;
  const std::string config = cache.dir() + "/ssh_config";
  write(config, "Host h\n  Port 2201\n");
  const std::vector<std::string> argv = {"ssh", "-G", "-F", config, "--", "h"};
  const auto key = ssh_g_cache_key(argv);
  ASSERT_TRUE(key);
  EXPECT_NE(key->find("Port 2201"), std::string::npos);
  EXPECT_NE(ssh_g_cache_key({"ssh", "-G", "-F", config, "--", "g"}), key);
  EXPECT_NE(ssh_g_cache_key({"ssh", "-G", "-F", config, "-o", "User=x", "--", "h"}), key);
  EXPECT_FALSE(
      ssh_g_cache_key({"ssh", "-G", "-F", config, "-o", "CanonicalizeHostname=yes", "--", "h"}));
  EXPECT_FALSE(ssh_g_cache_key({"ssh", "-G", "-F", config, "-o", "HostName=%L", "--", "h"}));
  write(config, "Host h\n  Port 2202\n");
  EXPECT_NE(ssh_g_cache_key(argv), key);
  write(config, "Match host h\n  Port 2202\n");
  EXPECT_FALSE(ssh_g_cache_key(argv));
}

TEST(SshGCache, TheKeyHoldsEveryFileTheConfigIncludes) {
  CacheDir cache;
  const std::string config = cache.dir() + "/ssh_config";
  const std::string more = cache.dir() + "/conf.d";
  std::filesystem::create_directory(more);
  write(more + "/a.conf", "Host h\n  Port 2201\n");
  write(config, "Include " + more + "/*.conf\n");
  const std::vector<std::string> argv = {"ssh", "-G", "-F", config, "--", "h"};
  const auto key = ssh_g_cache_key(argv);
  ASSERT_TRUE(key);
  EXPECT_NE(key->find("Port 2201"), std::string::npos);
  // An included file changes, or one more matches the glob: another key.
  write(more + "/a.conf", "Host h\n  Port 2202\n");
  const auto changed = ssh_g_cache_key(argv);
  ASSERT_TRUE(changed);
  EXPECT_NE(changed, key);
  write(more + "/b.conf", "Host g\n  Port 2203\n");
  const auto added = ssh_g_cache_key(argv);
  ASSERT_TRUE(added);
  EXPECT_NE(added, changed);
  // What ssh would read in an included file counts as if it stood in the config itself.
  write(more + "/b.conf", "Match exec true\n  Port 2203\n");
  EXPECT_FALSE(ssh_g_cache_key(argv));
  // Quoted or tokenised Include names are left to ssh.
  write(config, "Include \"" + more + "/a.conf\"\n");
  EXPECT_FALSE(ssh_g_cache_key(argv));
}

TEST(SshGCache, AnAnswerIsReusedUntilTheConfigChanges) {
  CacheDir cache;
  const std::string config = cache.dir() + "/ssh_config";
  write(config, "Host h\n  HostName 127.0.0.9\n  Port 2201\n");
  const std::vector<std::string> argv = {"ssh", "-G", "-F", config, "--", "h"};
  const CommandOutput first = run_ssh_g(argv, 10s);
  ASSERT_EQ(first.exit_status, 0) << first.error << first.err;
  EXPECT_NE(first.out.find("\nport 2201\n"), std::string::npos);
  ASSERT_EQ(cache.entries("ssh-G"), 1u);
  // The second answer is the remembered one: ssh does not run again.
  write(cache.only_entry("ssh-G"), "hostname 127.0.0.9\nport 9999\n");
  EXPECT_EQ(run_ssh_g(argv, 10s).out, "hostname 127.0.0.9\nport 9999\n");
  // Same size, other port: a new key, and ssh's new answer.
  write(config, "Host h\n  HostName 127.0.0.9\n  Port 2202\n");
  const CommandOutput changed = run_ssh_g(argv, 10s);
  EXPECT_NE(changed.out.find("\nport 2202\n"), std::string::npos) << changed.out;
  EXPECT_EQ(cache.entries("ssh-G"), 2u);
  // A Match block: ssh answers every time, nothing is kept.
  write(config, "Match host h\n  HostName 127.0.0.9\n  Port 2203\n");
  EXPECT_NE(run_ssh_g(argv, 10s).out.find("\nport 2203\n"), std::string::npos);
  EXPECT_EQ(cache.entries("ssh-G"), 2u);
  // A failing resolution is not kept either.
  write(config, "Host h\n  Port notaport\n");
  EXPECT_NE(run_ssh_g(argv, 10s).exit_status, 0);
  EXPECT_EQ(cache.entries("ssh-G"), 2u);
}

TEST(LocalCache, PruningRemovesOnlyEntriesOlderThanTheLimit) {
  CacheDir cache;
  ASSERT_TRUE(cache_write("sub/old", "a"));
  ASSERT_TRUE(cache_write("sub/new", "b"));
  const std::string old = cache.dir() + "/cutpilot/sub/old";
  const timespec eight_days_ago[2] = {{time(nullptr) - 8 * 86400, 0},
                                      {time(nullptr) - 8 * 86400, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, old.c_str(), eight_days_ago, 0), 0);
  cache_prune("sub", std::chrono::hours(24 * 7));
  EXPECT_FALSE(cache_read("sub/old"));
  EXPECT_EQ(cache_read("sub/new"), "b");
}

TEST(AgentHashCache, AnUnchangedAgentIsHashedOnceAndAChangedOneAgain) {
  CacheDir cache;
  const std::string copy = cache.dir() + "/cutpilot-agent";
  std::filesystem::copy_file(CUTPILOT_AGENT_PATH, copy);
  const std::string bytes = *read_file(copy);
  std::string error;
  const auto first = AgentBinary::load(copy, error);
  ASSERT_TRUE(first) << error;
  EXPECT_EQ(first->sha256, sha256_hex(bytes));
  EXPECT_EQ(first->bytes, bytes);
  const auto second = AgentBinary::load(copy, error);
  ASSERT_TRUE(second) << error;
  EXPECT_EQ(second->sha256, first->sha256);
  EXPECT_TRUE(second->bytes.empty());  // from the cache: not read at all
  // A chmod changes only the ctime: hashed again.
  ASSERT_EQ(chmod(copy.c_str(), 0700), 0);
  const auto chmodded = AgentBinary::load(copy, error);
  ASSERT_TRUE(chmodded) << error;
  EXPECT_EQ(chmodded->bytes, bytes);
  // Other bytes, other hash.
  std::ofstream(copy, std::ios::app) << "x";
  const auto changed = AgentBinary::load(copy, error);
  ASSERT_TRUE(changed) << error;
  EXPECT_EQ(changed->sha256, sha256_hex(bytes + "x"));
}

TEST(AgentHashCache, AnAgentLoadedFromTheCacheIsReadForTheUploadAndMustStillMatch) {
  Lab lab({"h1", "h2"});
  ASSERT_TRUE(lab.ok()) << lab.log_tail();
  CacheDir cache;
  const std::string copy = cache.dir() + "/cutpilot-agent";
  std::filesystem::copy_file(CUTPILOT_AGENT_PATH, copy);
  std::string error;
  ASSERT_TRUE(AgentBinary::load(copy, error)) << error;
  const auto agent = AgentBinary::load(copy, error);
  ASSERT_TRUE(agent) << error;
  ASSERT_TRUE(agent->bytes.empty());
  {
    SshSession session(test::target_for(lab, "h1"));
    ASSERT_TRUE(session.open()) << session.error();
    RunningAgent running;
    ASSERT_TRUE(start_agent(session, *agent, running, error, 10s)) << error;
    EXPECT_TRUE(running.uploaded);
    ssh_channel_close(running.channel);
    ssh_channel_free(running.channel);
  }
  // The file changed after the cockpit hashed it: nothing is uploaded under the old hash.
  std::ofstream(copy, std::ios::app) << "x";
  SshSession session(test::target_for(lab, "h2"));
  ASSERT_TRUE(session.open()) << session.error();
  RunningAgent running;
  EXPECT_FALSE(start_agent(session, *agent, running, error, 10s));
  EXPECT_NE(error.find("changed since the cockpit started"), std::string::npos) << error;
  EXPECT_FALSE(std::filesystem::exists(lab.host_dir("h2") + "/home/.cache/cutpilot/" +
                                       agent->remote_name()));
}

}  // namespace
}  // namespace cutpilot::transport
