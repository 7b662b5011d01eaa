// The `sync` job kind of the real cutpilot-agent binary on one host (no peer): progress,
// rsync's exit 23 (files not transferred) as an error naming them, exit 24 (vanished
// files) as a warning, a runner that sleeps while a parallel sync's last rsync runs, and a
// missing rsync.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/support/agent_pipe.h"

namespace cutpilot {
namespace {

using namespace std::chrono_literals;
using namespace cutpilot::proto;
using Json = nlohmann::json;
using test::finished_of;
using test::lines_of;
namespace fs = std::filesystem;

// A fresh $HOME and a source and destination tree per test.
class SyncJob : public test::AgentHomeTest {
 protected:
  void SetUp() override {
    test::AgentHomeTest::SetUp();
    src_ = home_ + "/src/";
    dst_ = home_ + "/dst/";
    fs::create_directories(src_);
  }
  // Runs one sync job to its end through a fresh agent; its events.
  std::vector<Message> run(Json spec, const std::string& path = "") {
    if (!path.empty()) setenv("PATH", path.c_str(), 1);
    test::Agent agent(CUTPILOT_AGENT_PATH);
    spec.update({{"local", dst_}, {"remote", src_}}, true);
    agent.send(StartJob{"sync-" + std::to_string(++jobs_), "sync", spec.dump()});
    return agent.until_finished(20s);
  }
  // Runs one sync job with `script` standing in for rsync (first in PATH); its events.
  std::vector<Message> run_with_rsync(const std::string& script, Json spec) {
    const std::string bin = home_ + "/bin";
    fs::create_directories(bin);
    std::ofstream(bin + "/rsync") << script;
    fs::permissions(bin + "/rsync", fs::perms::owner_all);
    const std::string saved = getenv("PATH");
    auto events = run(std::move(spec), bin + ":" + saved);
    setenv("PATH", saved.c_str(), 1);
    return events;
  }
  std::string src_, dst_;
  int jobs_ = 0;
};

TEST_F(SyncJob, LocalCopyReportsProgressToTheEnd) {
  for (int i = 0; i < 50; ++i)
    std::ofstream(src_ + "f" + std::to_string(i)) << std::string(10000, 'x');
  const auto events = run(Json::object());
  const JobFinished* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kSucceeded) << done->error;
  EXPECT_EQ(Json::parse(done->result)["bytes"].get<uint64_t>(), 500000u);
  const Progress* last = nullptr;
  for (const auto& m : events)
    if (const auto* p = std::get_if<Progress>(&m)) last = p;
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->total, std::optional<uint64_t>(500000));
  EXPECT_EQ(last->files, last->files_total.value_or(0));
  EXPECT_TRUE(fs::exists(dst_ + "f49"));
}

TEST_F(SyncJob, FilesThatCannotBeWrittenFailTheJobByName) {
  std::ofstream(src_ + "a") << "a file here";
  fs::create_directories(dst_ + "a/b");  // ...and a non-empty directory there
  std::ofstream(dst_ + "a/b/c") << "in the way";
  const auto events = run(Json::object());
  const JobFinished* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_EQ(done->exit_code, 23);
  EXPECT_NE(done->error.find("could not be transferred (rsync exit 23): a"), std::string::npos)
      << done->error;
}

TEST_F(SyncJob, VanishedFilesAreAWarningNamingThem) {
  // Files vanish only in a race; a stand-in rsync says what the real one says then.
  const auto events = run_with_rsync(
      "#!/bin/sh\n"
      "echo 'file has vanished: \"/srv/cache/tmp123\"' >&2\n"
      "echo 'rsync warning: some files vanished before they could be transferred (code 24)' >&2\n"
      "exit 24\n",
      Json::object());
  const JobFinished* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kSucceeded) << done->error;
  EXPECT_EQ(done->exit_code, 24);
  const auto notes = lines_of(events, Stream::kAgent);
  ASSERT_FALSE(notes.empty());
  EXPECT_NE(notes.back().find("1 files vanished during the sync: /srv/cache/tmp123"),
            std::string::npos)
      << notes.back();
  EXPECT_EQ(Json::parse(done->result)["vanished"][0], "/srv/cache/tmp123");
}

TEST_F(SyncJob, RunnerSleepsWhileTheLastBucketRuns) {
  // Stand-in rsyncs: the comparison (a dry run) ends at once, the chunk's rsync runs 4 s
  // longer (past the 2 s drain of the comparison's output) and then reports how much CPU its
  // parent, the job's runner, has used.
  const auto events = run_with_rsync(
      "#!/bin/sh\n"
      "case \"$*\" in\n"
      "*--dry-run*) printf '>f+++++++++ 10 a\\n>f+++++++++ 20 b\\n' ;;\n"
      "*chunk-1*) sleep 4; echo \"runner-ticks $(cut -d' ' -f14,15 /proc/$PPID/stat)\" >&2 ;;\n"
      "esac\n",
      Json{{"parallel", 2}});
  const JobFinished* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kSucceeded) << done->error;
  long user = -1, system = -1;
  for (const auto& line : lines_of(events, Stream::kStderr))
    std::sscanf(line.c_str(), "runner-ticks %ld %ld", &user, &system);
  ASSERT_GE(user, 0) << "the stand-in for bucket 1 did not report";
  // Waiting costs next to nothing; polling without a timeout would burn the 2 s after the
  // drain (about 200 ticks of 10 ms).
  EXPECT_LT(user + system, 50) << user << " user + " << system << " system ticks";
}

TEST_F(SyncJob, MissingRsyncIsAClearError) {
  const std::string saved = getenv("PATH");
  const auto events = run(Json::object(), home_ + "/empty");
  setenv("PATH", saved.c_str(), 1);
  const JobFinished* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_NE(done->error.find("cannot run rsync: No such file or directory"), std::string::npos)
      << done->error;
}

}  // namespace
}  // namespace cutpilot
