// The `file` job kind of the real cutpilot-agent binary, driven over its stdin/stdout:
// atomic replace with a backup in the spool, restore, validation with rollback, bad specs,
// owner and group, a full disk.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/support/agent_pipe.h"

namespace cutpilot {
namespace {

using namespace std::chrono_literals;
using namespace cutpilot::proto;
using Json = nlohmann::json;
using test::finished_of;
using test::lines_of;
namespace fs = std::filesystem;

const std::string kAgent = CUTPILOT_AGENT_PATH;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_text(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path, std::ios::binary) << text;
  ASSERT_EQ(chmod(path.c_str(), mode), 0);
}

struct stat stat_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return st;
}

// Every entry of dir (to see that no temp file was left behind).
std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir))
    names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

bool contains(const std::vector<std::string>& lines, const std::string& part) {
  for (const auto& line : lines)
    if (line.find(part) != std::string::npos) return true;
  return false;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string all;
  for (const auto& line : lines)
    all += line + "\n";
  return all;
}

// A fresh $HOME (spools, backups) and a work directory (the files the jobs change) per test.
class FileJob : public test::AgentHomeTest {
 protected:
  void SetUp() override {
    test::AgentHomeTest::SetUp();
    char work[] = "/tmp/cutpilot-file-work-XXXXXX";
    ASSERT_NE(mkdtemp(work), nullptr);
    work_ = work;
  }
  void TearDown() override {
    test::AgentHomeTest::TearDown();
    fs::remove_all(work_);
  }
  // Runs one file job to its end; its events (JobStarted .. JobFinished, or an Error).
  std::vector<Message> run(const Json& spec) {
    test::Agent agent(kAgent);
    agent.send(StartJob{"file-" + std::to_string(++jobs_), "file", spec.dump()});
    return agent.until_finished();
  }
  // Runs a job that must succeed; its result JSON.
  Json run_ok(const Json& spec, std::vector<std::string>* agent_lines = nullptr) {
    const auto events = run(spec);
    const JobFinished* done = finished_of(events);
    EXPECT_NE(done, nullptr) << spec.dump();
    if (!done) return {};
    EXPECT_EQ(done->state, JobState::kSucceeded) << done->error;
    if (agent_lines) *agent_lines = lines_of(events, Stream::kAgent);
    return Json::parse(done->result);
  }
  // The JobFinished that ends events (a copy: events are often a temporary).
  static std::optional<JobFinished> finished(const std::vector<Message>& events) {
    const JobFinished* done = finished_of(events);
    EXPECT_NE(done, nullptr);
    return done ? std::optional<JobFinished>(*done) : std::nullopt;
  }
  // The spool directory keeping path's backup.
  std::string backup_of(const std::string& path) const {
    std::string escaped;
    for (char c : path)
      escaped += c == '/' ? std::string("%2F") : std::string(1, c);
    return home_ + "/.cache/cutpilot/backups/" + escaped;
  }
  std::string work_;
  int jobs_ = 0;
};

TEST_F(FileJob, WritesANewFileWithTheGivenModeAndRestoreRemovesIt) {
  const std::string path = work_ + "/site.conf";
  std::vector<std::string> notes;
  const Json result = run_ok(
      {{"action", "write"}, {"path", path}, {"content", "server {}\n"}, {"mode", "0640"}}, &notes);
  EXPECT_EQ(read_text(path), "server {}\n");
  EXPECT_EQ(stat_of(path).st_mode & 07777, 0640u);
  EXPECT_EQ(result["bytes"], 10);
  EXPECT_EQ(result["created"], true);
  EXPECT_EQ(result["mode"], "0640");
  EXPECT_EQ(result["backup"], backup_of(path));
  const std::string owner = std::to_string(geteuid()) + ":" + std::to_string(getegid());
  EXPECT_TRUE(contains(notes, "wrote " + path + " (10 bytes, mode 0640, owner " + owner +
                                  ", new file), there was no previous version: a rollback "
                                  "removes it"))
      << joined(notes);
  EXPECT_FALSE(contains(notes, "previous version kept")) << "there was none to keep";
  EXPECT_EQ(entries(work_), std::vector<std::string>{"site.conf"});  // no temp file left
  // The backup records that there was no file, so a rollback removes it.
  EXPECT_EQ(Json::parse(read_text(backup_of(path) + "/meta"))["existed"], false);

  const Json restored = run_ok({{"action", "restore"}, {"path", path}}, &notes);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_EQ(restored["removed"], true);
  EXPECT_TRUE(contains(notes, "removed " + path)) << joined(notes);
}

TEST_F(FileJob, ReplaceKeepsABackupAndRestorePutsItBackOnce) {
  const std::string path = work_ + "/app.env";
  write_text(path, "PORT=1\n", 0600);
  std::vector<std::string> notes;
  const Json result =
      run_ok({{"action", "write"}, {"path", path}, {"content", "PORT=2\nNEW=1\n"}}, &notes);
  EXPECT_EQ(read_text(path), "PORT=2\nNEW=1\n");
  EXPECT_EQ(stat_of(path).st_mode & 07777, 0600u);  // the old mode is kept
  EXPECT_EQ(result["created"], false);
  EXPECT_EQ(result["new_backup"], true);
  EXPECT_TRUE(contains(notes, "previous version kept in " + backup_of(path))) << joined(notes);
  EXPECT_EQ(read_text(backup_of(path) + "/content"), "PORT=1\n");
  EXPECT_EQ(stat_of(backup_of(path) + "/content").st_mode & 07777, 0600u);  // may hold secrets

  chmod(path.c_str(), 0644);  // a later change the restore must undo too
  const Json restored = run_ok({{"action", "restore"}, {"path", path}}, &notes);
  EXPECT_EQ(read_text(path), "PORT=1\n");
  EXPECT_EQ(stat_of(path).st_mode & 07777, 0600u);
  EXPECT_EQ(restored["restored"], true);
  EXPECT_EQ(restored["bytes"], 7);
  EXPECT_TRUE(contains(notes, "restored " + path + " from " + backup_of(path))) << joined(notes);
  EXPECT_FALSE(fs::exists(backup_of(path) + "/content"));
  EXPECT_EQ(entries(work_), std::vector<std::string>{"app.env"});

  // A second restore finds the record of the first and does nothing.
  write_text(path, "changed by hand\n", 0600);
  const Json again = run_ok({{"action", "restore"}, {"path", path}}, &notes);
  EXPECT_EQ(again["restored"], false);
  EXPECT_TRUE(contains(notes, "nothing to do: " + path + " was restored already")) << joined(notes);
  EXPECT_EQ(read_text(path), "changed by hand\n");
}

TEST_F(FileJob, LaterWritesKeepTheOriginalAsTheRollbackTarget) {
  const std::string path = work_ + "/nginx.conf";
  write_text(path, "v1\n", 0644);
  run_ok({{"action", "write"}, {"path", path}, {"content", "v2\n"}});
  std::vector<std::string> notes;
  const Json second = run_ok({{"action", "write"}, {"path", path}, {"content", "v3\n"}}, &notes);
  EXPECT_EQ(second["new_backup"], false);
  EXPECT_TRUE(contains(
      notes, "the backup from before the first write (job file-1) stays in " + backup_of(path)))
      << joined(notes);
  // backup: false neither writes nor drops a backup.
  run_ok({{"action", "write"}, {"path", path}, {"content", "v4\n"}, {"backup", false}});
  EXPECT_EQ(read_text(path), "v4\n");
  run_ok({{"action", "restore"}, {"path", path}});
  EXPECT_EQ(read_text(path), "v1\n");

  // After a restore the next write starts a new backup.
  const Json fresh = run_ok({{"action", "write"}, {"path", path}, {"content", "v5\n"}});
  EXPECT_EQ(fresh["new_backup"], true);
  run_ok({{"action", "restore"}, {"path", path}});
  EXPECT_EQ(read_text(path), "v1\n");
}

TEST_F(FileJob, FailingValidationLeavesTheOldFileUntouched) {
  const std::string path = work_ + "/site.conf";
  const std::string old = "good\n\tlisten 80;\n\x01\xff no newline";
  write_text(path, old, 0640);
  const struct stat before = stat_of(path);
  // The validator sees the new file at its real path, as `nginx -t` would.
  const std::string check = "cat " + path + "; grep -q '^good' " + path +
                            " || { echo 'config test failed: bad directive' >&2; exit 3; }";
  const auto events = run({{"action", "write"},
                           {"path", path},
                           {"content", "bad\n"},
                           {"mode", "0600"},
                           {"validate", {{"shell", check}}}});
  const JobFinished* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_EQ(done->exit_code, 3);
  EXPECT_NE(done->error.find("validation failed (exit code 3)"), std::string::npos) << done->error;
  EXPECT_NE(done->error.find("back in place"), std::string::npos) << done->error;
  EXPECT_EQ(lines_of(events, Stream::kStdout), std::vector<std::string>{"bad"});
  EXPECT_EQ(lines_of(events, Stream::kStderr),
            std::vector<std::string>{"config test failed: bad directive"});
  EXPECT_EQ(read_text(path), old);
  const struct stat after = stat_of(path);
  EXPECT_EQ(after.st_mode, before.st_mode);
  EXPECT_EQ(after.st_uid, before.st_uid);
  EXPECT_EQ(after.st_gid, before.st_gid);
  EXPECT_EQ(Json::parse(done->result)["rolled_back"], true);
  EXPECT_EQ(entries(work_), std::vector<std::string>{"site.conf"});
  // The job changed nothing, so it left no backup: a restore now has nothing to go back to.
  EXPECT_FALSE(fs::exists(backup_of(path) + "/meta"));

  // A new file that fails validation is removed again.
  const std::string fresh = work_ + "/fresh.conf";
  const auto second = run({{"action", "write"},
                           {"path", fresh},
                           {"content", "bad\n"},
                           {"validate", {{"argv", {"grep", "-q", "good", fresh}}}}});
  ASSERT_NE(finished_of(second), nullptr);
  EXPECT_EQ(finished_of(second)->state, JobState::kFailed);
  EXPECT_FALSE(fs::exists(fresh));
}

TEST_F(FileJob, ValidationThatTimesOutRollsBackToo) {
  const std::string path = work_ + "/slow.conf";
  write_text(path, "old\n", 0644);
  const auto events = run({{"action", "write"},
                           {"path", path},
                           {"content", "new\n"},
                           {"validate", {{"argv", {"sleep", "30.654"}}, {"timeout_ms", 300}}}});
  const JobFinished* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kTimedOut);
  EXPECT_NE(done->error.find("validation failed (timed out after 300 ms)"), std::string::npos)
      << done->error;
  EXPECT_EQ(read_text(path), "old\n");
  EXPECT_EQ(entries(work_), std::vector<std::string>{"slow.conf"});
}

TEST_F(FileJob, PassingValidationKeepsTheNewFile) {
  const std::string path = work_ + "/site.conf";
  write_text(path, "good old\n", 0644);
  std::vector<std::string> notes;
  const Json result = run_ok({{"action", "write"},
                              {"path", path},
                              {"content", "good new\n"},
                              {"validate", {{"argv", {"grep", "-q", "good new", path}}}}},
                             &notes);
  EXPECT_EQ(result["validated"], true);
  EXPECT_EQ(read_text(path), "good new\n");
  EXPECT_TRUE(contains(notes, "validating " + path + " with: grep -q good new " + path));
  EXPECT_TRUE(contains(notes, "validation passed")) << joined(notes);
  run_ok({{"action", "restore"}, {"path", path}});
  EXPECT_EQ(read_text(path), "good old\n");
}

TEST_F(FileJob, RestoreWithoutABackupFails) {
  const std::string path = work_ + "/never-written";
  write_text(path, "mine\n", 0644);
  const auto events = run({{"action", "restore"}, {"path", path}});
  const JobFinished* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_NE(done->error.find("no backup of " + path), std::string::npos) << done->error;
  EXPECT_EQ(read_text(path), "mine\n");
}

TEST_F(FileJob, BadSpecsAreRefusedBeforeTheJobStarts) {
  const std::string path = work_ + "/x";
  const std::vector<std::pair<Json, std::string>> cases = {
      {{{"action", "write"}, {"path", "etc/x"}, {"content", ""}}, "\"path\" must be absolute"},
      {{{"action", "write"}, {"path", work_ + "/../x"}, {"content", ""}}, "normalized"},
      {{{"action", "write"}, {"path", work_ + "/"}, {"content", ""}}, "must name a file"},
      {{{"action", "write"}, {"path", path}, {"content", ""}, {"modes", "0644"}},
       "unknown file field \"modes\""},
      {{{"action", "write"}, {"path", path}}, "needs \"content\""},
      {{{"action", "write"}, {"path", path}, {"content", ""}, {"mode", "rw-r--r--"}}, "\"mode\""},
      {{{"action", "write"}, {"path", path}, {"content", ""}, {"validate", {{"argv", "nginx"}}}},
       "\"validate\": \"argv\" must be a non-empty array"},
      {{{"action", "write"}, {"path", path}, {"content", std::string(512 * 1024 + 1, 'x')}},
       "at most 524288"},
      {{{"action", "restore"}, {"path", path}, {"content", ""}},
       "unknown field \"content\" for action \"restore\""},
      {{{"action", "delete"}, {"path", path}}, "\"action\" must be \"write\" or \"restore\""},
  };
  test::Agent agent(kAgent);
  for (const auto& [spec, expected] : cases) {
    agent.send(StartJob{"bad", "file", spec.dump()});
    const auto m = agent.next();
    ASSERT_TRUE(m && std::holds_alternative<Error>(*m)) << spec.dump().substr(0, 200);
    EXPECT_NE(std::get<Error>(*m).message.find(expected), std::string::npos)
        << std::get<Error>(*m).message;
  }
  EXPECT_TRUE(entries(work_).empty());
}

TEST_F(FileJob, WhatTheSpecCannotKnowFailsTheJob) {
  // A missing directory, a symlink, a directory: the job fails naming the problem.
  const std::string missing = work_ + "/sites-enabled";
  auto done = finished(run({{"action", "write"}, {"path", missing + "/a"}, {"content", "x"}}));
  ASSERT_TRUE(done);
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_NE(done->error.find("the directory " + missing + " does not exist"), std::string::npos)
      << done->error;
  EXPECT_FALSE(fs::exists(backup_of(missing + "/a")));  // a failed write leaves no backup dir

  write_text(work_ + "/target", "real\n", 0644);
  fs::create_symlink(work_ + "/target", work_ + "/link");
  done = finished(run({{"action", "write"}, {"path", work_ + "/link"}, {"content", "x"}}));
  ASSERT_TRUE(done);
  EXPECT_NE(done->error.find("is a symlink"), std::string::npos) << done->error;
  EXPECT_TRUE(fs::is_symlink(work_ + "/link"));
  EXPECT_EQ(read_text(work_ + "/target"), "real\n");

  done = finished(run({{"action", "write"}, {"path", work_}, {"content", "x"}}));
  ASSERT_TRUE(done);
  EXPECT_NE(done->error.find("is not a regular file"), std::string::npos) << done->error;

  done = finished(run(
      {{"action", "write"}, {"path", work_ + "/t"}, {"content", "x"}, {"owner", "no-such-user"}}));
  ASSERT_TRUE(done);
  EXPECT_NE(done->error.find("unknown user \"no-such-user\""), std::string::npos) << done->error;
  EXPECT_FALSE(fs::exists(work_ + "/t"));
}

TEST_F(FileJob, ConcurrentJobOnTheSamePathIsRefused) {
  const std::string path = work_ + "/busy";
  fs::create_directories(backup_of(path));
  const int fd = open(backup_of(path).c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX), 0);  // as a running file job on that path holds it
  const auto events = run({{"action", "write"}, {"path", path}, {"content", "x"}});
  const JobFinished* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_NE(done->error.find("another file job is changing " + path), std::string::npos)
      << done->error;
  close(fd);
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(FileJob, OwnerAndGroupAreSetOrKeptWhenRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give files away";
  const passwd* daemon_user = getpwnam("daemon");
  const group* bin_group = getgrnam("bin");
  if (!daemon_user || !bin_group) GTEST_SKIP() << "no daemon user or bin group here";
  const std::string path = work_ + "/owned";
  write_text(path, "v1\n", 0640);
  ASSERT_EQ(chown(path.c_str(), 4321, 8765), 0);

  // Kept: the old owner and group, by default.
  run_ok({{"action", "write"}, {"path", path}, {"content", "v2\n"}});
  EXPECT_EQ(stat_of(path).st_uid, 4321u);
  EXPECT_EQ(stat_of(path).st_gid, 8765u);
  // Set: by name, and by number.
  run_ok({{"action", "write"},
          {"path", path},
          {"content", "v3\n"},
          {"owner", "daemon"},
          {"group", "bin"}});
  EXPECT_EQ(stat_of(path).st_uid, daemon_user->pw_uid);
  EXPECT_EQ(stat_of(path).st_gid, bin_group->gr_gid);
  run_ok({{"action", "write"}, {"path", path}, {"content", "v4\n"}, {"group", "77"}});
  EXPECT_EQ(stat_of(path).st_uid, daemon_user->pw_uid);
  EXPECT_EQ(stat_of(path).st_gid, 77u);
  // The restore brings back the original owner, group and mode.
  run_ok({{"action", "restore"}, {"path", path}});
  EXPECT_EQ(read_text(path), "v1\n");
  EXPECT_EQ(stat_of(path).st_uid, 4321u);
  EXPECT_EQ(stat_of(path).st_gid, 8765u);
  EXPECT_EQ(stat_of(path).st_mode & 07777, 0640u);
}

TEST_F(FileJob, FullDiskFailsAndLeavesTheOldFileUntouched) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  const std::string disk = work_ + "/disk";
  fs::create_directory(disk);
  if (mount("tmpfs", disk.c_str(), "tmpfs", 0, "size=64k") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  const std::string path = disk + "/big.conf";
  write_text(path, "small and fine\n", 0644);
  const auto events =
      run({{"action", "write"}, {"path", path}, {"content", std::string(200 * 1024, 'x')}});
  const JobFinished* done = finished_of(events);
  const std::vector<std::string> left = entries(disk);
  const std::string content = read_text(path);
  umount(disk.c_str());
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_NE(done->error.find("No space left on device"), std::string::npos) << done->error;
  EXPECT_NE(done->error.find(path + " is untouched"), std::string::npos) << done->error;
  EXPECT_EQ(content, "small and fine\n");
  EXPECT_EQ(left, std::vector<std::string>{"big.conf"});  // the temp file is gone
  EXPECT_FALSE(fs::exists(backup_of(path) + "/meta"));
}

}  // namespace
}  // namespace cutpilot
