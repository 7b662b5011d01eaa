// Re-attaching through the cockpit's job tracker against a lab host's real agent: a followed
// job is asked for with Attach only, on every link, and an agent without it says so.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/support/lab.h"
#include "tests/support/procs.h"
#include "tests/support/transport_fixtures.h"
#include "transport/fleet.h"
#include "transport/job_tracker.h"
#include "transport/peer_jobs.h"

namespace cutpilot::transport {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// One lab host with the cockpit's fleet and job tracker; the host is ready after SetUp.
class AttachLab : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(lab_.ok()) << lab_.log_tail();
    fleet_.start();
    ASSERT_TRUE(fleet_.run_until([&](const std::vector<HostEvent>&) { return ready(); }, 30s));
  }
  bool ready() const { return fleet_.info("h1").state == LinkState::kReady; }
  // The host's spool directory of a job (ids here need no escaping).
  std::string spool(const std::string& job_id) const {
    return lab_.host_dir("h1") + "/home/.cache/cutpilot/jobs/" + job_id;
  }
  // Kills the cockpit's SSH connection to h1 (its per-connection sshd processes).
  void cut_link() {
    for (pid_t pid : test::descendants(test::sshd_pid(lab_, "h1")))
      if (test::comm_of(pid) == "sshd") kill(pid, SIGKILL);
  }
  // Runs the fleet, each event through the tracker, until job_id has an answer; on every
  // (re)connect Facts goes out before the tracker asks again, as the cockpit's FleetPort does.
  std::vector<JobEvent> until_answered(JobTracker& tracker, const std::string& job_id,
                                       const std::function<void(const HostEvent&)>& before = {}) {
    std::vector<JobEvent> answers;
    fleet_.run_until(
        [&](const std::vector<HostEvent>& events) {
          for (const auto& e : events) {
            if (before) before(e);
            if (e.state == LinkState::kReady) fleet_.send("h1", proto::Facts{});
            if (e.message && std::holds_alternative<proto::HostFacts>(*e.message))
              facts_ = std::get<proto::HostFacts>(*e.message);
            std::vector<JobEvent> out;
            tracker.handle(e, out);
            for (auto& j : out)
              if (j.job_id == job_id) answers.push_back(std::move(j));
          }
          return tracker.done(job_id);
        },
        30s);
    return answers;
  }

  test::Lab lab_{{"h1"}};
  Fleet fleet_{{test::target_for(lab_, "h1")}, test::agent_binary()};
  JobTracker tracker_{fleet_};
  std::optional<proto::HostFacts> facts_;
};

// The lines of a file (0 when it does not exist).
int lines_in(const std::string& path) {
  std::ifstream in(path);
  int n = 0;
  for (std::string line; std::getline(in, line);)
    ++n;
  return n;
}

void expect_unknown(const std::vector<JobEvent>& answers, const std::string& job_id) {
  ASSERT_EQ(answers.size(), 1u) << job_id;
  EXPECT_TRUE(answers[0].unknown) << job_id;
  const auto* error = std::get_if<proto::Error>(&answers[0].message);
  ASSERT_NE(error, nullptr) << job_id << ": the agent answered something else";
  EXPECT_EQ(error->code, proto::ErrorCode::kUnknownJob) << error->message;
  EXPECT_EQ(error->job_id, job_id);
}

TEST_F(AttachLab, UnknownIdIsAnsweredUnknownAndNothingStartsAlsoAfterAReconnect) {
  tracker_.follow("h1", "run-a/never@h1", 0);
  expect_unknown(until_answered(tracker_, "run-a/never@h1"), "run-a/never@h1");

  // Asked while the link is down: the tracker asks once the host is back, with Attach.
  cut_link();
  bool followed = false;
  const auto answers = until_answered(tracker_, "run-a/later@h1", [&](const HostEvent& e) {
    if (!followed && e.state == LinkState::kLost) {
      followed = true;
      tracker_.follow("h1", "run-a/later@h1", 0);
    }
  });
  ASSERT_TRUE(followed) << "the link was never lost";
  EXPECT_GE(fleet_.info("h1").connects, 2);
  expect_unknown(answers, "run-a/later@h1");
  EXPECT_GE(tracker_.find("run-a/later@h1")->requests, 1);
  const std::string jobs = lab_.host_dir("h1") + "/home/.cache/cutpilot/jobs";
  EXPECT_TRUE(!fs::exists(jobs) || fs::is_empty(jobs)) << "an Attach claimed a job";
}

TEST_F(AttachLab, ExpiredSpoolIsAnsweredUnknownAfterAReconnectAndTheJobNeverRunsAgain) {
  const std::string id = "run-e.step.h1";
  const std::string runs = lab_.host_dir("h1") + "/home/runs";
  auto first =
      run_job(fleet_, tracker_, "h1",
              proto::StartJob{id, "exec", R"({"shell": "echo ran >> \"$HOME/runs\""})"}, 30s);
  ASSERT_TRUE(tracker_.done(id));
  ASSERT_TRUE(std::holds_alternative<proto::JobFinished>(first.back()));
  // Not acknowledged (the cockpit died before journalling it), and finished 8 days ago: past
  // the agent's 7 days. The runner's lock goes when it exits.
  const int fd = open(spool(id).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX), 0);
  close(fd);
  const time_t then = time(nullptr) - 8 * 24 * 3600;
  const timespec times[2] = {{then, 0}, {then, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, (spool(id) + "/events").c_str(), times, 0), 0);

  // A resumed cockpit re-attaches on a new link: its Facts expire the spool first.
  JobTracker resumed(fleet_);
  cut_link();
  bool followed = false;
  const auto answers = until_answered(resumed, id, [&](const HostEvent& e) {
    if (!followed && e.state == LinkState::kLost) {
      followed = true;
      resumed.follow("h1", id, 0);
    }
  });
  ASSERT_TRUE(followed) << "the link was never lost";
  expect_unknown(answers, id);
  ASSERT_TRUE(facts_);
  EXPECT_EQ(facts_->kept_spools, 0u);
  EXPECT_FALSE(fs::exists(spool(id)));
  EXPECT_EQ(lines_in(runs), 1) << "the job ran again";
}

TEST_F(AttachLab, AttachToAKnownJobReplaysItAsAlreadyStarted) {
  const std::string id = "run-k.step.h1";
  auto first =
      run_job(fleet_, tracker_, "h1", proto::StartJob{id, "exec", R"({"argv": ["true"]})"}, 30s);
  ASSERT_TRUE(std::holds_alternative<proto::JobFinished>(first.back()));
  JobTracker resumed(fleet_);
  resumed.follow("h1", id, 0);
  std::vector<JobEvent> answers;
  ASSERT_TRUE(fleet_.run_until(
      [&](const std::vector<HostEvent>& events) {
        for (const auto& e : events)
          resumed.handle(e, answers);
        return resumed.done(id);
      },
      30s));
  ASSERT_GE(answers.size(), 2u);
  const auto* started = std::get_if<proto::JobStarted>(&answers.front().message);
  ASSERT_NE(started, nullptr);
  EXPECT_TRUE(started->existing) << "a followed job was found on the agent, not started";
  EXPECT_FALSE(answers.front().unknown);
  EXPECT_TRUE(std::holds_alternative<proto::JobFinished>(answers.back().message));
  EXPECT_EQ(resumed.find(id)->requests, 1);
}

}  // namespace
}  // namespace cutpilot::transport
