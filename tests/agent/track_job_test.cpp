// The `track` job kind of the real cutpilot-agent binary on one host: a watch armed before a
// tracking window, every kind of change made in the window, a seal, and the final sync that
// moves the sealed list alone (a local copy, the list on the same host), after which a
// verify finds no difference and every directory's time matches the source's. A set made
// incomplete (more paths than max_paths; the kernel's queue overflowed while the watch was
// stopped; a watch killed) says so and why, and the full scan that follows is exact too.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/support/agent_pipe.h"

namespace cutpilot {
namespace {

using namespace std::chrono_literals;
using namespace cutpilot::proto;
using Json = nlohmann::json;
namespace fs = std::filesystem;

// A fresh $HOME, a source tree and a target copied from it, one agent.
class TrackJob : public test::AgentHomeTest {
 protected:
  void SetUp() override {
    test::AgentHomeTest::SetUp();
    src_ = home_ + "/src";
    dst_ = home_ + "/dst";
    for (const char* dir :
         {"/a/deep/er", "/b", "/gone/inner", "/moved", "/untouched", "/links", "/dir-to-file/in"})
      fs::create_directories(src_ + dir);
    for (const char* file :
         {"/a/one", "/a/deep/two", "/a/deep/er/three", "/b/four", "/gone/inner/five", "/moved/six",
          "/untouched/seven", "/top", "/links/target", "/becomes-link", "/dir-to-file/in/x"})
      std::ofstream(src_ + file) << "content of " << file << "\n";
    // Directory times from the past: a copy made within the same second would hide one that
    // the final sync disturbed.
    for (const auto& e : fs::recursive_directory_iterator(src_))
      if (e.is_directory()) fs::last_write_time(e.path(), fs::file_time_type::clock::now() - 1h);
    fs::last_write_time(src_, fs::file_time_type::clock::now() - 1h);
    agent_ = std::make_unique<test::Agent>(CUTPILOT_AGENT_PATH);
    const JobFinished first = run_job(
        "copy", "sync", Json{{"local", dst_ + "/"}, {"remote", src_ + "/"}, {"delete", true}});
    ASSERT_EQ(first.state, JobState::kSucceeded) << first.error;
  }

  // A watch runs until cancelled: one a failed test left running is cancelled here (an
  // ended one ignores it), before the home it watched goes.
  void TearDown() override {
    for (const auto& id : watches_)
      if (agent_) agent_->send(CancelJob{id});
    test::AgentHomeTest::TearDown();
  }

  // Starts the watch and waits until it reports itself armed (its first progress).
  void arm(Json spec = Json::object()) {
    if (!spec.contains("path")) spec["path"] = src_ + "/";
    spec["backend"] = backend_;
    agent_->send(StartJob{watch_id_, "track", spec.dump()});
    watches_.push_back(watch_id_);
    for (;;) {
      auto m = agent_->next(20s);
      ASSERT_TRUE(m) << "the watch never armed";
      if (const auto* l = std::get_if<LogLine>(&*m); l && l->job_id == watch_id_)
        watch_log_ += l->line + "\n";
      if (const auto* p = std::get_if<Progress>(&*m); p && p->job_id == watch_id_) return;
      const auto* done = std::get_if<JobFinished>(&*m);
      ASSERT_FALSE(done && done->job_id == watch_id_) << done->error;
    }
  }

  // Runs a job to its end on the agent; its JobFinished (other jobs' events are skipped).
  JobFinished run_job(const std::string& id, const std::string& kind, const Json& spec) {
    agent_->send(StartJob{id, kind, spec.dump()});
    for (;;) {
      auto m = agent_->next(30s);
      if (!m) {
        ADD_FAILURE() << id << " did not finish";
        return {};
      }
      if (const auto* p = std::get_if<LogLine>(&*m); p && p->job_id == id) log_.push_back(p->line);
      if (const auto* done = std::get_if<JobFinished>(&*m); done && done->job_id == id)
        return *done;
    }
  }

  Json seal() {
    const JobFinished sealed =
        run_job("seal-" + std::to_string(++seals_), "track", Json{{"seal", watch_id_}});
    EXPECT_EQ(sealed.state, JobState::kSucceeded) << sealed.error;
    return Json::parse(sealed.result.empty() ? "{}" : sealed.result);
  }

  // The final sync, given the seal's answer (a full scan when the set is incomplete).
  Json final_sync(const Json& sealed) {
    Json spec = {{"local", dst_ + "/"}, {"remote", src_ + "/"}, {"delete", true}};
    if (sealed.value("complete", false))
      spec["tracked"] = {{"list", sealed["list"]}, {"paths", sealed["paths"]}};
    else
      spec["scan_reason"] = sealed.value("lost", "");
    const JobFinished done = run_job("final-" + std::to_string(seals_), "sync", spec);
    EXPECT_EQ(done.state, JobState::kSucceeded) << done.error;
    return Json::parse(done.result.empty() ? "{}" : done.result);
  }

  // A verify of the whole tree: no difference.
  void expect_identical() {
    const JobFinished verify =
        run_job("verify-" + std::to_string(seals_), "sync",
                Json{{"mode", "verify"}, {"local", dst_ + "/"}, {"remote", src_ + "/"}});
    EXPECT_EQ(verify.state, JobState::kSucceeded) << verify.error << "\n" << verify.result;
    // ...and every directory's time is the source's: to the nanosecond where the window did
    // not touch it (a final sync must leave those alone), to the second where it did (rsync,
    // plain or not, leaves a directory written in the same second as its source's time).
    const time_t aged = time(nullptr) - 1800;
    for (const auto& e : fs::recursive_directory_iterator(src_)) {
      if (!e.is_directory() || e.is_symlink()) continue;
      const std::string rel = e.path().string().substr(src_.size());
      struct stat s {
      }, d{};
      ASSERT_EQ(lstat(e.path().c_str(), &s), 0);
      ASSERT_EQ(lstat((dst_ + rel).c_str(), &d), 0) << rel;
      EXPECT_EQ(s.st_mtim.tv_sec, d.st_mtim.tv_sec) << rel;
      if (s.st_mtim.tv_sec < aged) EXPECT_EQ(s.st_mtim.tv_nsec, d.st_mtim.tv_nsec) << rel;
    }
  }

  // The pid of a job's runner: a note on its spool directory (0 when there is none).
  pid_t runner_of(const std::string& id) const {
    char note[64] = {};
    const std::string spool = jobs_dir() + "/" + id;
    if (getxattr(spool.c_str(), "user.cutpilot.runner", note, sizeof note - 1) <= 0) return 0;
    return static_cast<pid_t>(std::stol(note));
  }

  static std::string read_text(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }

  void cancel_watch() {
    agent_->send(CancelJob{watch_id_});
    for (;;) {
      auto m = agent_->next(20s);
      ASSERT_TRUE(m) << "the watch did not end on cancel";
      if (const auto* done = std::get_if<JobFinished>(&*m); done && done->job_id == watch_id_)
        return;
    }
  }

  std::string backend_ = "inotify";
  std::string watch_id_ = "watch";
  std::vector<std::string> watches_;  // every watch started
  std::string watch_log_;             // the watch's lines until it armed
  std::string src_, dst_;
  std::unique_ptr<test::Agent> agent_;
  std::vector<std::string> log_;
  int seals_ = 0;
};

// The same tests on each backend: inotify, and fanotify (the agent here runs as root).
class TrackJobEachBackend : public TrackJob, public ::testing::WithParamInterface<const char*> {
 protected:
  void SetUp() override {
    backend_ = GetParam();
    TrackJob::SetUp();
  }
};
INSTANTIATE_TEST_SUITE_P(Backends, TrackJobEachBackend, ::testing::Values("inotify", "fanotify"),
                         [](const auto& info) { return std::string(info.param); });

TEST_P(TrackJobEachBackend, EveryKindOfChangeReachesTheTargetAndNothingElseIsListed) {
  arm();
  std::ofstream(src_ + "/a/new-file") << "made in the window\n";   // write
  std::ofstream(src_ + "/b/four", std::ios::app) << "appended\n";  // append
  fs::rename(src_ + "/moved/six", src_ + "/a/deep/six-renamed");   // across directories
  fs::remove(src_ + "/a/one");                                     // delete
  fs::remove_all(src_ + "/gone");                                  // a tree goes
  fs::create_directories(src_ + "/fresh/x/y");                     // new nested dirs
  std::ofstream(src_ + "/fresh/x/y/z") << "deep\n";
  fs::create_hard_link(src_ + "/links/target", src_ + "/links/second");  // a hard link
  fs::permissions(src_ + "/a/deep/two", fs::perms::owner_read);          // chmod
  ASSERT_EQ(lchown((src_ + "/b/four").c_str(), 65534, 65534), 0);        // chown
  fs::remove(src_ + "/becomes-link");                                    // file → symlink
  fs::create_symlink("top", src_ + "/becomes-link");
  fs::rename(src_ + "/a/deep/er", src_ + "/b/er-moved");  // a directory moves, then changes
  std::ofstream(src_ + "/b/er-moved/after-the-move") << "still seen\n";
  std::ofstream(src_ + "/top", std::ios::app) << "top level\n";
  fs::remove_all(src_ + "/dir-to-file");  // a non-empty directory becomes a file
  std::ofstream(src_ + "/dir-to-file") << "a file now\n";

  const Json sealed = seal();
  ASSERT_TRUE(sealed.value("complete", false)) << sealed.dump();
  // links/second: link(2) tells the new name's directory, not the old name's (a tree-wide
  // search would find it), so a sync with hard_links scans when the count is not 0.
  EXPECT_EQ(sealed["hard_linked"], 1) << sealed.dump();
  // The list holds what changed and the directories it sits in, nothing untouched.
  std::ifstream in(sealed["list"].get<std::string>());
  std::vector<std::string> listed;
  for (std::string name; std::getline(in, name, '\0');)
    listed.push_back(name);
  EXPECT_EQ(listed.size(), sealed["paths"].get<size_t>());
  for (const char* expected :
       {"a/new-file", "b/four", "a/deep/six-renamed", "moved/six", "a/one", "gone", "fresh/x/y/z",
        "links/second", "becomes-link", "b/er-moved/after-the-move", "a/deep/er", "."})
    EXPECT_NE(std::find(listed.begin(), listed.end(), expected), listed.end()) << expected;
  for (const auto& name : listed) {
    EXPECT_FALSE(name.starts_with("untouched")) << name;
    EXPECT_FALSE(name.starts_with("gone/")) << name << ": the gone directory stands for it";
    EXPECT_FALSE(name.starts_with("dir-to-file/")) << name << ": the file stands for it";
  }

  const Json result = final_sync(sealed);
  EXPECT_EQ(result["scan"], "tracked");
  EXPECT_EQ(result["paths"], sealed["paths"]);
  expect_identical();

  // The watch goes on: a change after the first seal is in the next one.
  std::ofstream(src_ + "/untouched/seven", std::ios::app) << "late\n";
  const Json again = seal();
  ASSERT_TRUE(again.value("complete", false)) << again.dump();
  std::ifstream second(again["list"].get<std::string>());
  std::string text((std::istreambuf_iterator<char>(second)), {});
  EXPECT_NE(text.find("untouched/seven"), std::string::npos);
  final_sync(again);
  expect_identical();
  cancel_watch();
}

TEST_P(TrackJobEachBackend, ExcludedDirectoriesStayOutAsAWalkWouldLeaveThem) {
  // The plan excludes cache/ (anywhere) and *.tmp; the window writes into both. rsync given a
  // list does not prune a listed path below an excluded directory: the job must.
  for (const char* dir : {"/cache", "/a/cache/deep"})
    fs::create_directories(src_ + dir);
  const Json exclude = Json::array({"cache/", "*.tmp"});
  const JobFinished first = run_job(
      "copy-excluding", "sync",
      Json{{"local", dst_ + "/"}, {"remote", src_ + "/"}, {"delete", true}, {"exclude", exclude}});
  ASSERT_EQ(first.state, JobState::kSucceeded) << first.error;
  arm();
  std::ofstream(src_ + "/cache/new") << "cached\n";
  std::ofstream(src_ + "/a/cache/deep/z") << "cached too\n";
  std::ofstream(src_ + "/a/scratch.tmp") << "temporary\n";
  std::ofstream(src_ + "/a/kept") << "copied\n";
  const Json sealed = seal();
  ASSERT_TRUE(sealed.value("complete", false)) << sealed.dump();
  const JobFinished done =
      run_job("final-excluding", "sync",
              Json{{"local", dst_ + "/"},
                   {"remote", src_ + "/"},
                   {"delete", true},
                   {"exclude", exclude},
                   {"tracked", {{"list", sealed["list"]}, {"paths", sealed["paths"]}}}});
  ASSERT_EQ(done.state, JobState::kSucceeded) << done.error;
  EXPECT_TRUE(fs::exists(dst_ + "/a/kept"));
  EXPECT_FALSE(fs::exists(dst_ + "/cache")) << "an excluded directory was made";
  EXPECT_FALSE(fs::exists(dst_ + "/a/cache")) << "an excluded directory was made";
  EXPECT_FALSE(fs::exists(dst_ + "/a/scratch.tmp"));
  cancel_watch();
}

TEST_P(TrackJobEachBackend, TooManyChangesMakeTheSetIncompleteAndTheScanExact) {
  arm(Json{{"max_paths", 5}});
  for (int i = 0; i < 10; ++i)
    std::ofstream(src_ + "/b/many-" + std::to_string(i)) << i;
  const Json sealed = seal();
  EXPECT_FALSE(sealed.value("complete", true));
  EXPECT_NE(sealed.value("lost", "").find("more than 5 paths changed"), std::string::npos)
      << sealed.dump();
  const Json result = final_sync(sealed);
  EXPECT_EQ(result["scan"], "full");
  EXPECT_NE(result.value("scan_reason", "").find("more than 5 paths"), std::string::npos);
  expect_identical();
  cancel_watch();
}

TEST_F(TrackJob, AnOverflowedKernelQueueMakesTheSetIncompleteAndTheScanExact) {
  arm();
  // The watch stopped (SIGSTOP) while more changes are made than the kernel queues for it
  // (fs.inotify.max_queued_events; each new file is at least one event): a real overflow.
  const pid_t runner = runner_of("watch");
  ASSERT_GT(runner, 0);
  const long limit = std::stol(read_text("/proc/sys/fs/inotify/max_queued_events"));
  ASSERT_EQ(::kill(runner, SIGSTOP), 0);
  for (long i = 0; i <= limit; ++i)  // in a watched directory: an event each
    std::ofstream(src_ + "/b/flood-" + std::to_string(i));
  ASSERT_EQ(::kill(runner, SIGCONT), 0);
  const Json sealed = seal();
  EXPECT_FALSE(sealed.value("complete", true));
  EXPECT_NE(sealed.value("lost", "").find("event queue overflowed"), std::string::npos)
      << sealed.dump();
  const Json result = final_sync(sealed);
  EXPECT_EQ(result["scan"], "full");
  EXPECT_NE(result.value("scan_reason", "").find("overflowed"), std::string::npos);
  expect_identical();
  cancel_watch();
}

TEST_P(TrackJobEachBackend, AKilledWatchIsNoticedAndTheScanExact) {
  arm();
  std::ofstream(src_ + "/a/before-the-kill") << "seen\n";
  const pid_t runner = runner_of("watch");
  ASSERT_GT(runner, 0);
  ASSERT_EQ(::kill(runner, SIGKILL), 0);  // the seal finds its lock free, or no answer
  std::ofstream(src_ + "/a/after-the-kill") << "never seen by the watch\n";
  const Json sealed = seal();
  EXPECT_FALSE(sealed.value("complete", true));
  EXPECT_FALSE(sealed.value("lost", "").empty()) << sealed.dump();
  const Json result = final_sync(sealed);
  EXPECT_EQ(result["scan"], "full");
  EXPECT_TRUE(fs::exists(dst_ + "/a/after-the-kill"));
  expect_identical();
}

TEST_P(TrackJobEachBackend, ASourceReachedThroughASymlinkIsWatchedWhereItLeads) {
  // rsync copies "link/" as the directory the link leads to: the watch watches that.
  fs::create_directory_symlink(src_, home_ + "/via-link");
  arm(Json{{"path", home_ + "/via-link/"}});
  std::ofstream(src_ + "/b/through-the-link") << "seen\n";
  const Json sealed = seal();
  ASSERT_TRUE(sealed.value("complete", false)) << sealed.dump();
  std::ifstream in(sealed["list"].get<std::string>());
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(text.find("b/through-the-link"), std::string::npos);
  cancel_watch();
}

TEST_F(TrackJob, AutoTakesFanotifyAsRootAndInotifyWhereAMountIsInsideTheTree) {
  backend_ = "auto";
  arm();
  EXPECT_NE(watch_log_.find("with fanotify: "), std::string::npos) << watch_log_;
  cancel_watch();
  // One mark covers one file system: with a mount inside the tree, inotify, and why.
  fs::create_directories(src_ + "/mnt");
  ASSERT_EQ(mount("tmpfs", (src_ + "/mnt").c_str(), "tmpfs", 0, "size=1m"), 0);
  struct Unmount {
    std::string at;
    ~Unmount() { umount2(at.c_str(), MNT_DETACH); }
  } unmount{src_ + "/mnt"};
  watch_log_.clear();
  watch_id_ = "second-watch";
  arm();
  EXPECT_NE(watch_log_.find("with inotify (fanotify: " + src_ + "/mnt is on another file system"),
            std::string::npos)
      << watch_log_;
  std::ofstream(src_ + "/mnt/on-the-mount") << "seen by inotify\n";
  const Json sealed = seal();
  ASSERT_TRUE(sealed.value("complete", false)) << sealed.dump();
  std::ifstream in(sealed["list"].get<std::string>());
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(text.find("mnt/on-the-mount"), std::string::npos);
  cancel_watch();
}

TEST_F(TrackJob, ASealOfNoWatchIsAnIncompleteSetNotAnError) {
  const Json sealed = seal();
  EXPECT_FALSE(sealed.value("complete", true));
  EXPECT_NE(sealed.value("lost", "").find("no watch watch on this host"), std::string::npos)
      << sealed.dump();
}

TEST_F(TrackJob, AMissingTreeIsAClearError) {
  const JobFinished done = run_job("watch", "track", Json{{"path", home_ + "/not-there/"}});
  EXPECT_EQ(done.state, JobState::kFailed);
  EXPECT_NE(done.error.find("cannot watch " + home_ + "/not-there/"), std::string::npos)
      << done.error;
  EXPECT_NE(done.error.find("does not exist"), std::string::npos) << done.error;
}

}  // namespace
}  // namespace cutpilot
