// The job engine of the real cutpilot-agent binary, driven over its stdin/stdout:
// detached runners, spools under $HOME, attach after a disconnect, timeouts and cancel.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/agent_pipe.h"

namespace cutpilot {
namespace {

// The runner's pid, from the "<pid> <pgid>" it notes on its job's spool (an extended
// attribute; 0 if it did not within 2 s).
pid_t runner_pid(const std::string& job_dir) {
  for (int i = 0; i < 100; ++i) {
    char value[64] = {};
    const ssize_t n = getxattr(job_dir.c_str(), "user.cutpilot.runner", value, sizeof value - 1);
    if (n > 0 && std::atoi(value) > 1) return std::atoi(value);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return 0;
}

using namespace std::chrono_literals;
using namespace cutpilot::proto;
namespace fs = std::filesystem;

const std::string kAgent = CUTPILOT_AGENT_PATH;

// A fresh $HOME per test, so every test has spools of its own.
class JobEngine : public test::AgentHomeTest {};

// One greeted `cutpilot-agent serve` process of the binary under test.
class Agent : public test::Agent {
 public:
  Agent() : test::Agent(kAgent) {}
};

using test::finished_of;
using test::lines_of;
using test::seq_of;

void expect_seqs_from_one(const std::vector<Message>& events) {
  for (size_t i = 0; i < events.size(); ++i)
    EXPECT_EQ(seq_of(events[i]), i + 1) << "event " << i << ": " << type_name(type_of(events[i]));
}

// The processes whose command line contains marker (read from /proc, no pgrep needed).
std::vector<pid_t> processes_with_marker(const std::string& marker) {
  std::vector<pid_t> pids;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const pid_t pid = static_cast<pid_t>(std::atol(e.path().filename().c_str()));
    if (pid <= 0 || pid == getpid()) continue;
    std::ifstream in(e.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(marker) != std::string::npos) pids.push_back(pid);
  }
  return pids;
}

int processes_with(const std::string& marker) {
  return static_cast<int>(processes_with_marker(marker).size());
}

std::string shell_spec(const std::string& script, const std::string& extra = "") {
  std::string quoted;
  for (char c : script) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return "{\"shell\": \"" + quoted + "\"" + extra + "}";
}

TEST_F(JobEngine, ExecStreamsLinesInOrderAndSucceeds) {
  Agent agent;
  agent.send(
      StartJob{"run1/echo@source", "exec",
               shell_spec("for i in 1 2 3 4 5 6; do echo line$i; done; echo oops >&2; "
                          "echo $CP_VAR; pwd; printf tail")
                   .replace(0, 1, "{\"env\": {\"CP_VAR\": \"from-env\"}, \"cwd\": \"/tmp\", ")});
  const auto events = agent.until_finished();
  ASSERT_FALSE(events.empty());
  const auto* started = std::get_if<JobStarted>(&events.front());
  ASSERT_NE(started, nullptr);
  EXPECT_FALSE(started->existing);
  EXPECT_EQ(started->job_id, "run1/echo@source");
  expect_seqs_from_one(events);
  EXPECT_EQ(lines_of(events, Stream::kStdout),
            (std::vector<std::string>{"line1", "line2", "line3", "line4", "line5", "line6",
                                      "from-env", "/tmp", "tail"}));
  EXPECT_EQ(lines_of(events, Stream::kStderr), std::vector<std::string>{"oops"});
  const auto* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kSucceeded);
  EXPECT_EQ(done->exit_code, 0);
  // The spool is where the issue says, with the id escaped.
  EXPECT_TRUE(fs::exists(jobs_dir() + "/run1%2Fecho%40source/events"));
}

TEST_F(JobEngine, FailingCommandReportsItsExitCode) {
  Agent agent;
  agent.send(StartJob{"fail", "exec", R"({"argv": ["sh", "-c", "echo bye; exit 3"]})"});
  const auto events = agent.until_finished();
  const auto* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_EQ(done->exit_code, 3);
  EXPECT_EQ(lines_of(events, Stream::kStdout), std::vector<std::string>{"bye"});

  agent.send(StartJob{"missing", "exec", R"({"argv": ["/no/such/program"]})"});
  const auto missing = agent.until_finished();
  done = finished_of(missing);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_EQ(done->exit_code, 127);
  EXPECT_NE(done->error.find("cannot run /no/such/program"), std::string::npos) << done->error;
}

TEST_F(JobEngine, OverlongLinesAreCutWithAMarker) {
  Agent agent;
  agent.send(
      StartJob{"long", "exec", shell_spec("printf '%040000d' 0 | tr 0 a; echo; echo after")});
  const auto events = agent.until_finished();
  const auto lines = lines_of(events, Stream::kStdout);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], std::string(16 * 1024, 'a') + " \u2026[cut]");
  EXPECT_EQ(lines[1], "after");
}

TEST_F(JobEngine, SameIdStartedTwiceRunsOnce) {
  const std::string file = home_ + "/ran";
  const std::string spec = shell_spec("echo ran >> " + file + "; sleep 0.3");
  {
    Agent first;
    first.send(StartJob{"once", "exec", spec});
    const auto events = first.until_finished();
    ASSERT_NE(finished_of(events), nullptr);
    Agent second;
    second.send(StartJob{"once", "exec", spec});
    const auto again = second.until_finished();
    ASSERT_GE(again.size(), 2u);
    const auto* started = std::get_if<JobStarted>(&again.front());
    ASSERT_NE(started, nullptr);
    EXPECT_TRUE(started->existing);
    EXPECT_EQ(started->seq, seq_of(events.back()));
    // Then the whole log again, as an attach from 0.
    EXPECT_EQ(std::vector<Message>(again.begin() + 1, again.end()), events);
  }
  {
    // Two agents racing on a new id: one claims it, the other finds it.
    Agent a, b;
    a.send(StartJob{"race", "exec", spec});
    b.send(StartJob{"race", "exec", spec});
    const auto ea = a.until_finished(), eb = b.until_finished();
    ASSERT_FALSE(ea.empty());
    ASSERT_FALSE(eb.empty());
    const bool a_existing = std::get<JobStarted>(ea.front()).existing;
    const bool b_existing = std::get<JobStarted>(eb.front()).existing;
    EXPECT_NE(a_existing, b_existing);
  }
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "ran\nran\n");  // once for "once", once for "race"
}

TEST_F(JobEngine, ReattachAfterTheServeProcessDiesMissesNothing) {
  const std::string file = home_ + "/ticks";
  auto first = std::make_unique<Agent>();
  first->send(StartJob{"ticker", "exec",
                       shell_spec("echo started >> " + file +
                                  "; for i in $(seq 1 15); do echo tick$i; sleep 0.1; done")});
  std::vector<Message> seen;
  while (lines_of(seen, Stream::kStdout).size() < 3) {
    auto m = first->next();
    ASSERT_TRUE(m) << "no events before the disconnect";
    ASSERT_FALSE(std::holds_alternative<JobFinished>(*m)) << "finished before the disconnect";
    seen.push_back(*m);
  }
  // The runner is detached: a session of its own, outliving the serve process.
  const pid_t runner = runner_pid(jobs_dir() + "/ticker");
  ASSERT_GT(runner, 1);
  EXPECT_EQ(getsid(runner), runner);
  first->kill();
  const uint64_t last = seq_of(seen.back());
  EXPECT_EQ(::kill(runner, 0), 0) << "the runner died with the serve process";

  Agent second;
  second.send(Attach{"ticker", last});
  const auto rest = second.until_finished();
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(seq_of(rest.front()), last + 1);
  std::vector<Message> all = seen;
  all.insert(all.end(), rest.begin(), rest.end());
  expect_seqs_from_one(all);
  std::vector<std::string> expected;
  for (int i = 1; i <= 15; ++i)
    expected.push_back("tick" + std::to_string(i));
  EXPECT_EQ(lines_of(all, Stream::kStdout), expected);
  ASSERT_NE(finished_of(all), nullptr);
  EXPECT_EQ(finished_of(all)->state, JobState::kSucceeded);
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "started\n");
}

TEST_F(JobEngine, TimeoutKillsTheWholeProcessGroup) {
  Agent agent;
  const auto begin = std::chrono::steady_clock::now();
  agent.send(StartJob{"slow", "exec",
                      shell_spec("sleep 30.123 & sleep 30.123", R"(, "timeout_ms": 500)")});
  const auto events = agent.until_finished(60s);
  const auto took = std::chrono::steady_clock::now() - begin;
  const auto* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kTimedOut);
  EXPECT_EQ(done->exit_code, 128 + SIGTERM);
  EXPECT_LT(took, 30s) << "the timeout did not stop it";
  EXPECT_GE(took, 500ms);
  EXPECT_EQ(processes_with("sleep 30.123"), 0);
}

TEST_F(JobEngine, CancelStopsAJob) {
  Agent agent;
  agent.send(StartJob{"long", "exec", R"({"argv": ["sleep", "30.456"]})"});
  auto started = agent.next();
  ASSERT_TRUE(started && std::holds_alternative<JobStarted>(*started));
  agent.send(CancelJob{"long"});
  const auto events = agent.until_finished(60s);
  const auto* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kCancelled);
  EXPECT_EQ(processes_with("sleep 30.456"), 0);
}

TEST_F(JobEngine, CancelEscalatesToSigkillWhenTermIsIgnored) {
  Agent agent;
  agent.send(StartJob{"stubborn", "exec",
                      shell_spec("trap '' TERM; echo armed; sleep 30.457; echo survived")});
  // The shell says when its trap is in place (an event, not a guessed delay).
  std::vector<Message> before;
  while (auto m = agent.next(60s)) {
    before.push_back(*m);
    if (lines_of(before, Stream::kStdout) == std::vector<std::string>{"armed"}) break;
  }
  ASSERT_EQ(lines_of(before, Stream::kStdout), std::vector<std::string>{"armed"});
  const auto begin = std::chrono::steady_clock::now();
  agent.send(CancelJob{"stubborn"});
  const auto events = agent.until_finished(60s);
  const auto took = std::chrono::steady_clock::now() - begin;
  const auto* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kCancelled);
  EXPECT_EQ(done->exit_code, 128 + SIGKILL);
  EXPECT_GE(took, 1500ms);  // the grace period was given
  EXPECT_LT(took, 30s) << "SIGKILL did not follow the grace period";
  EXPECT_TRUE(lines_of(events, Stream::kStdout).empty());
  EXPECT_EQ(processes_with("sleep 30.457"), 0);
}

TEST_F(JobEngine, BadRequestsAreRefusedAndLeaveNoSpool) {
  Agent agent;
  const std::vector<std::pair<StartJob, std::string>> cases = {
      {StartJob{"k1", "teleport", "{}"}, "unknown job kind \"teleport\""},
      {StartJob{"k2", "exec", "{\"argv\": [\"true\""}, "not valid JSON"},
      {StartJob{"k3", "exec", R"({"argv": []})"}, "\"argv\" must be a non-empty array"},
      {StartJob{"k4", "exec", R"({"argv": ["true"], "shell": "true"})"}, "exactly one of"},
      {StartJob{"k5", "exec", R"({"argv": ["true"], "bogus": 1})"}, "unknown exec field \"bogus\""},
      {StartJob{"k6", "exec", R"({"shell": "true", "timeout_ms": -5})"}, "timeout_ms"},
      {StartJob{"k7", "sync", R"({"local": "rel/dir", "remote": "/src/"})"}, "must be absolute"},
      {StartJob{"k8", "sync", R"({"local": "/d/", "remote": "/s/", "parallel": 0})"}, "parallel"},
      {StartJob{"k9", "sync", R"({"local": "/d/", "remote": "/s/", "mode": "guess"})"},
       "copy, estimate or verify"},
      {StartJob{"k10", "sync", R"({"local": "/d/", "remote": "s/", "peer": {"address": "a"}})"},
       "needs address, port (1-65535), host_key and key"},
      {StartJob{"k11", "sync", R"({"local": "/d/", "remote": "/s/", "rate": 5})"},
       "unknown sync field \"rate\""},
      {StartJob{"k12", "peer", R"({"action": "keygen", "name": "../x"})"}, "[A-Za-z0-9._-]"},
      {StartJob{"k13", "peer", R"({"action": "authorize", "name": "r", "public_key": "x"})"},
       "not an ssh public key"},
      {StartJob{"k14", "peer", R"({"action": "explode", "name": "r"})"}, "keygen, authorize"},
  };
  for (const auto& [request, expected] : cases) {
    agent.send(request);
    const auto m = agent.next();
    ASSERT_TRUE(m && std::holds_alternative<Error>(*m)) << request.job_id;
    const auto& error = std::get<Error>(*m);
    EXPECT_EQ(error.job_id, request.job_id);
    EXPECT_NE(error.message.find("job \"" + request.job_id + "\""), std::string::npos)
        << error.message;
    EXPECT_NE(error.message.find(expected), std::string::npos) << error.message;
    EXPECT_FALSE(fs::exists(jobs_dir() + "/" + request.job_id));
  }
  agent.send(Attach{"nobody", 0});
  const auto unknown = agent.next();
  ASSERT_TRUE(unknown && std::holds_alternative<Error>(*unknown));
  EXPECT_EQ(std::get<Error>(*unknown).code, ErrorCode::kUnknownJob);
  agent.send(Ack{"nobody", 0});
  const auto unknown_ack = agent.next();
  ASSERT_TRUE(unknown_ack && std::holds_alternative<Error>(*unknown_ack));
  EXPECT_EQ(std::get<Error>(*unknown_ack).code, ErrorCode::kUnknownJob);
}

TEST_F(JobEngine, ListJobsAndAckRemovesOnlyFinishedSpools) {
  Agent agent;
  agent.send(StartJob{"done", "exec", R"({"argv": ["echo", "hi"]})"});
  const auto events = agent.until_finished();
  ASSERT_NE(finished_of(events), nullptr);
  agent.send(StartJob{".", "exec", R"({"argv": ["sleep", "30.789"]})"});
  auto started = agent.next();
  ASSERT_TRUE(started && std::holds_alternative<JobStarted>(*started));
  EXPECT_TRUE(fs::exists(jobs_dir() + "/%2E/events"));

  agent.send(ListJobs{});
  std::optional<Message> list;
  while ((list = agent.next()) && !std::holds_alternative<JobList>(*list)) {
  }
  ASSERT_TRUE(list);
  const auto& jobs = std::get<JobList>(*list).jobs;
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0], (JobSummary{".", "exec", JobState::kRunning, jobs[0].last_seq}));
  EXPECT_GE(jobs[0].last_seq, 1u);
  EXPECT_EQ(jobs[1], (JobSummary{"done", "exec", JobState::kSucceeded, seq_of(events.back())}));

  agent.send(Ack{".", 0});
  std::optional<Message> refused;
  while ((refused = agent.next()) && !std::holds_alternative<Error>(*refused)) {
  }
  ASSERT_TRUE(refused);
  EXPECT_EQ(std::get<Error>(*refused).code, ErrorCode::kBadRequest);
  EXPECT_TRUE(fs::exists(jobs_dir() + "/%2E"));

  agent.send(Ack{"done", seq_of(events.back())});
  agent.send(CancelJob{"."});
  const auto cancelled = agent.until_finished();
  ASSERT_NE(finished_of(cancelled), nullptr);
  EXPECT_EQ(finished_of(cancelled)->state, JobState::kCancelled);
  EXPECT_FALSE(fs::exists(jobs_dir() + "/done"));
  agent.send(Ack{".", 0});
  agent.send(ListJobs{});
  const auto empty = agent.next();
  ASSERT_TRUE(empty && std::holds_alternative<JobList>(*empty));
  EXPECT_TRUE(std::get<JobList>(*empty).jobs.empty());
  EXPECT_FALSE(fs::exists(jobs_dir() + "/%2E"));
}

TEST_F(JobEngine, KilledRunnerIsReportedInsteadOfAwaitedForever) {
  Agent agent;
  agent.send(StartJob{"victim", "exec", R"({"argv": ["sleep", "30.321"]})"});
  auto started = agent.next();
  ASSERT_TRUE(started && std::holds_alternative<JobStarted>(*started));
  const pid_t runner = runner_pid(jobs_dir() + "/victim");
  ASSERT_GT(runner, 1);
  // JobStarted can come before the runner has spawned its command: wait for the command (an
  // event, not a time), so that killing the runner leaves it behind.
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (processes_with("sleep 30.321") == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  ASSERT_EQ(processes_with("sleep 30.321"), 1) << "the job's command never started";
  ASSERT_EQ(::kill(runner, SIGKILL), 0);
  const auto events = agent.until_finished(60s);
  const auto* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_NE(done->error.find("runner ended without a result"), std::string::npos) << done->error;
  // Its command outlived it, and is stopped before the job is said to have ended.
  EXPECT_NE(done->error.find("1 of its processes were still running and were stopped"),
            std::string::npos)
      << done->error;
  int left = 1;
  const auto gone_by = std::chrono::steady_clock::now() + 60s;
  while ((left = processes_with("sleep 30.321")) > 0 && std::chrono::steady_clock::now() < gone_by)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(left, 0);
  for (pid_t pid : processes_with_marker("sleep 30.321"))
    ::kill(pid, SIGKILL);
}

TEST_F(JobEngine, ClaimLeftHalfWayIsReportedAsNeverStarted) {
  // An agent that died between the claim (mkdir) and logging JobStarted: nothing ran.
  const std::string dir = jobs_dir() + "/half";
  fs::create_directories(dir);
  const timespec old[2] = {{time(nullptr) - 60, 0}, {time(nullptr) - 60, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, dir.c_str(), old, 0), 0);
  Agent agent;
  agent.send(Attach{"half", 0});
  const auto events = agent.until_finished(60s);
  const auto* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_NE(done->error.find("claimed but never started"), std::string::npos) << done->error;
  // A fresh claim is left alone: its agent may still be writing it.
  fs::create_directories(jobs_dir() + "/fresh");
  agent.send(Attach{"fresh", 0});
  EXPECT_FALSE(agent.next(1500ms).has_value());
  fs::remove_all(jobs_dir());  // no runner will ever write their `state`
}

// Blocks until no runner holds the job's spool lock (it holds it until it exits).
void wait_runner_gone(const std::string& job_dir) {
  const int fd = open(job_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << job_dir;
  ASSERT_EQ(flock(fd, LOCK_EX), 0);
  close(fd);
}

// Sets the job's events log's mtime (the moment it finished) to `ago` before now.
void finished_ago(const std::string& job_dir, std::chrono::seconds ago) {
  const time_t then = time(nullptr) - static_cast<time_t>(ago.count());
  const timespec times[2] = {{then, 0}, {then, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, (job_dir + "/events").c_str(), times, 0), 0);
}

// The HostFacts answering a Facts request (other events in between are skipped).
std::optional<HostFacts> facts_of(Agent& agent) {
  agent.send(Facts{});
  std::optional<Message> m;
  while ((m = agent.next()) && !std::holds_alternative<HostFacts>(*m)) {
  }
  if (!m) return std::nullopt;
  return std::get<HostFacts>(*m);
}

// The Error an Attach to job_id gets, or nullopt when it gets anything else.
std::optional<Error> attach_error(Agent& agent, const std::string& job_id) {
  agent.send(Attach{job_id, 0});
  const auto m = agent.next();
  if (!m || !std::holds_alternative<Error>(*m)) return std::nullopt;
  return std::get<Error>(*m);
}

// A job that appends a line to $HOME/<name>.runs each time it runs, and finishes.
StartJob counted_job(const std::string& name) {
  return StartJob{name, "exec", shell_spec("echo ran >> \"$HOME/" + name + ".runs\"")};
}

int runs_of(const std::string& home, const std::string& name) {
  std::ifstream in(home + "/" + name + ".runs");
  int n = 0;
  for (std::string line; std::getline(in, line);)
    ++n;
  return n;
}

class SpoolExpiry : public test::AgentHomeTest {
 protected:
  void TearDown() override {
    unsetenv("CUTPILOT_AGENT_SPOOL_MAX_AGE");
    test::AgentHomeTest::TearDown();
  }
};

TEST_F(SpoolExpiry, FinishedUnacknowledgedSpoolsGoAfterTheAgeRunningOnesNeverAndAttachSaysUnknown) {
  setenv("CUTPILOT_AGENT_SPOOL_MAX_AGE", "3600", 1);
  Agent agent;
  for (const char* name : {"old", "recent"}) {
    agent.send(counted_job(name));
    ASSERT_NE(finished_of(agent.until_finished()), nullptr) << name;
    wait_runner_gone(jobs_dir() + "/" + name);
  }
  agent.send(StartJob{"running", "exec", R"({"argv": ["sleep", "30.456"]})"});
  const auto started = agent.next();
  ASSERT_TRUE(started && std::holds_alternative<JobStarted>(*started));
  finished_ago(jobs_dir() + "/old", 2h);
  finished_ago(jobs_dir() + "/recent", 30min);
  finished_ago(jobs_dir() + "/running", 2h);  // a quiet log: still running, so it stays

  const auto facts = facts_of(agent);
  ASSERT_TRUE(facts);
  EXPECT_EQ(facts->kept_spools, 1u) << "only \"recent\" is finished and kept";
  EXPECT_FALSE(fs::exists(jobs_dir() + "/old"));
  EXPECT_TRUE(fs::exists(jobs_dir() + "/recent/events"));
  EXPECT_TRUE(fs::exists(jobs_dir() + "/running/events"));

  // Attach never starts a job: the expired one is unknown and runs no second time.
  const auto expired = attach_error(agent, "old");
  ASSERT_TRUE(expired);
  EXPECT_EQ(expired->code, ErrorCode::kUnknownJob);
  EXPECT_EQ(expired->job_id, "old");
  EXPECT_NE(expired->message.find("acknowledged or expired"), std::string::npos)
      << expired->message;
  // So is an acknowledged one.
  agent.send(Ack{"recent", 0});
  const auto acknowledged = attach_error(agent, "recent");
  ASSERT_TRUE(acknowledged);
  EXPECT_EQ(acknowledged->code, ErrorCode::kUnknownJob);
  EXPECT_FALSE(fs::exists(jobs_dir() + "/old"));
  EXPECT_FALSE(fs::exists(jobs_dir() + "/recent"));
  EXPECT_EQ(runs_of(home_, "old"), 1);
  EXPECT_EQ(runs_of(home_, "recent"), 1);
  EXPECT_EQ(facts_of(agent)->kept_spools, 0u);

  agent.send(CancelJob{"running"});
  ASSERT_NE(finished_of(agent.until_finished()), nullptr);
}

TEST_F(SpoolExpiry, WithoutTheOverrideASpoolIsKeptSevenDays) {
  Agent agent;
  for (const char* name : {"six-days", "eight-days"}) {
    agent.send(counted_job(name));
    ASSERT_NE(finished_of(agent.until_finished()), nullptr) << name;
    wait_runner_gone(jobs_dir() + "/" + name);
  }
  finished_ago(jobs_dir() + "/six-days", std::chrono::hours(6 * 24));
  finished_ago(jobs_dir() + "/eight-days", std::chrono::hours(8 * 24));
  const auto facts = facts_of(agent);
  ASSERT_TRUE(facts);
  EXPECT_EQ(facts->kept_spools, 1u);
  EXPECT_TRUE(fs::exists(jobs_dir() + "/six-days/events"));
  EXPECT_FALSE(fs::exists(jobs_dir() + "/eight-days"));
}

}  // namespace
}  // namespace cutpilot
