// The `health` job kind of the real cutpilot-agent binary against the lab's real services:
// containers through podman's Docker-compatible API (a health check that fails until a file
// exists; wait, watch, stop, start, restart) and an HTTP probe of the lab's nginx under a
// production name (connect_to, Host header). Each test starts its own lab and stops it.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/support/agent_pipe.h"
#include "tests/support/lab.h"

namespace cutpilot {
namespace {

using namespace std::chrono_literals;
using namespace cutpilot::proto;
using Json = nlohmann::json;
using test::finished_of;
using test::lines_of;

// The Health events about target, in order.
std::vector<Health> healths_of(const std::vector<Message>& events, const std::string& target) {
  std::vector<Health> out;
  for (const auto& m : events)
    if (const auto* h = std::get_if<Health>(&m); h && h->target == target) out.push_back(*h);
  return out;
}

// KEY=VALUE lines of a lab env file (the values used here need no unquoting).
std::map<std::string, std::string> read_env(const std::string& path) {
  std::map<std::string, std::string> values;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (const size_t eq = line.find('='); !line.starts_with("#") && eq != std::string::npos)
      values[line.substr(0, eq)] = line.substr(eq + 1);
  return values;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class HealthLab : public test::AgentHomeTest {
 protected:
  void SetUp() override {
    test::AgentHomeTest::SetUp();
    lab_ = std::make_unique<test::Lab>(std::vector<std::string>{"h1"});
    ASSERT_TRUE(lab_->ok()) << read_text(lab_->dir() + "/test-lab.log");
  }
  void TearDown() override {
    lab_.reset();  // lab down: stops and removes the containers too
    test::AgentHomeTest::TearDown();
  }
  // Starts the lab's podman service; false (with why set) when podman is not installed.
  bool start_podman(std::string& why) {
    if (!lab_->run("podman", {"h1"})) {
      why = read_text(lab_->dir() + "/test-lab.log");
      EXPECT_NE(why.find("is not installed"), std::string::npos) << why;
      return false;
    }
    const auto env = read_env(lab_->host_dir("h1") + "/podman.env");
    socket_ = env.at("DOCKER_HOST").substr(std::string("unix://").size());
    wrapper_ = env.at("PODMAN_WRAPPER");
    return true;
  }
  // Runs the lab host's podman with args; its exit status (output in the lab's log).
  int podman(const std::string& args) {
    return test::shell(wrapper_ + " " + args + " >>" + lab_->dir() + "/podman-cli.log 2>&1");
  }
  // The end of what the lab host's podman said (for a failed call's message).
  std::string podman_said() {
    const std::string text = read_text(lab_->dir() + "/podman-cli.log");
    return "podman said: " + text.substr(text.size() > 2000 ? text.size() - 2000 : 0);
  }
  // What podman inspect --format says about a container.
  std::string inspect(const std::string& name, const std::string& format) {
    return test::capture_line(wrapper_ + " inspect --format '" + format + "' " + name +
                              " 2>/dev/null");
  }
  // A containers spec on the lab's socket, with extra fields.
  Json containers(const Json& extra) {
    Json spec = {{"check", "containers"}, {"socket", socket_}, {"interval_ms", 100}};
    spec.update(extra);
    return spec;
  }
  // Runs one health job to its end through a fresh agent; its events.
  std::vector<Message> run(const Json& spec, std::chrono::milliseconds timeout = 60s) {
    test::Agent agent(CUTPILOT_AGENT_PATH);
    agent.send(StartJob{"health-" + std::to_string(++jobs_), "health", spec.dump()});
    return agent.until_finished(timeout);
  }
  // Events until one is a Health event about target with status (included), or the timeout.
  static std::vector<Message> until_health(test::Agent& agent, const std::string& target,
                                           const std::string& status) {
    std::vector<Message> events;
    while (auto m = agent.next(20s)) {
      events.push_back(*m);
      if (const auto* h = std::get_if<Health>(&*m); h && h->target == target && h->status == status)
        return events;
      if (std::holds_alternative<JobFinished>(*m)) break;
    }
    ADD_FAILURE() << "no health event \"" << status << "\" for " << target;
    return events;
  }

  std::unique_ptr<test::Lab> lab_;
  std::string socket_, wrapper_;
  int jobs_ = 0;
};

// A container of compose project "shop" whose health check fails until /tmp/ready exists.
constexpr const char* kWeb =
    "run -d --name web --label com.docker.compose.project=shop "
    "--label com.docker.compose.service=web "
    "--health-cmd 'test -f /tmp/ready || { echo not ready; exit 1; }' "
    "--health-interval 1h --health-retries 1 localhost/busybox:lab sleep 600";
// A container of the same project without a health check.
constexpr const char* kWorker =
    "run -d --name worker --label com.docker.compose.project=shop localhost/busybox:lab sleep 600";

TEST_F(HealthLab, PodmanWaitUntilHealthyThenStopAndStart) {
  std::string why;
  if (!start_podman(why)) GTEST_SKIP() << why;
  ASSERT_EQ(podman(kWeb), 0) << podman_said();
  ASSERT_EQ(podman(kWorker), 0) << podman_said();
  ASSERT_EQ(podman("run -d --name other localhost/busybox:lab sleep 600"), 0) << podman_said();
  ASSERT_NE(podman("healthcheck run web"), 0);  // no /tmp/ready yet: unhealthy
  const Json project = {{"select", {{"project", "shop"}}}};

  // wait reports unhealthy and gives up, naming web with its check's output (not worker).
  auto events =
      run(containers({{"select", {{"project", "shop"}}}, {"mode", "wait"}, {"timeout_ms", 1500}}));
  const JobFinished* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kTimedOut);
  EXPECT_EQ(done->error,
            "timed out after 1500 ms; not yet healthy: web (unhealthy: failing streak 1, last "
            "check: not ready)");
  ASSERT_EQ(healths_of(events, "web").size(), 1u);  // one report, however many looks
  EXPECT_EQ(healths_of(events, "web")[0].status, "unhealthy");
  ASSERT_EQ(healths_of(events, "worker").size(), 1u);
  EXPECT_EQ(healths_of(events, "worker")[0].status, "running");
  EXPECT_TRUE(healths_of(events, "other").empty()) << "a container outside the project";
  Json result = Json::parse(done->result);
  ASSERT_EQ(result["targets"].size(), 2u);
  EXPECT_EQ(result["targets"][0]["target"], "web");
  EXPECT_EQ(result["targets"][0]["health"], "unhealthy");
  EXPECT_EQ(result["targets"][0]["last_check"], "not ready");

  // The same wait turns healthy once the file exists and the check has run again.
  {
    test::Agent agent(CUTPILOT_AGENT_PATH);
    agent.send(StartJob{
        "wait-web", "health",
        containers(
            {{"select", {{"names", {"web", "worker"}}}}, {"mode", "wait"}, {"timeout_ms", 60000}})
            .dump()});
    events = until_health(agent, "web", "unhealthy");
    ASSERT_EQ(podman("exec web touch /tmp/ready"), 0) << podman_said();
    ASSERT_EQ(podman("healthcheck run web"), 0) << podman_said();
    for (auto& m : agent.until_finished(30s))
      events.push_back(std::move(m));
  }
  done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kSucceeded) << done->error;
  const auto web = healths_of(events, "web");
  ASSERT_EQ(web.size(), 2u);
  EXPECT_EQ(web[1].status, "healthy");
  EXPECT_EQ(web[1].detail, "");  // no streak, and a healthy check's output is not news

  // stop through the API: the job says what it stopped, podman agrees.
  events = run(
      containers({{"select", {{"names", {"worker"}}}}, {"action", "stop"}, {"stop_timeout_s", 1}}));
  done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kSucceeded) << done->error;
  EXPECT_EQ(lines_of(events, Stream::kAgent), std::vector<std::string>{"stopped worker"});
  ASSERT_EQ(healths_of(events, "worker").size(), 1u);
  EXPECT_EQ(healths_of(events, "worker")[0].status, "exited");
  EXPECT_EQ(inspect("worker", "{{.State.Status}}"), "exited");

  // The project is not all up now.
  events = run(containers(project));
  done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_NE(done->error.find("not healthy: worker (exited: exit code "), std::string::npos)
      << done->error;

  // start through the API, then wait until it runs.
  events = run(containers({{"select", {{"names", {"worker"}}}},
                           {"action", "start"},
                           {"mode", "wait"},
                           {"timeout_ms", 30000}}));
  done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kSucceeded) << done->error;
  EXPECT_EQ(healths_of(events, "worker").back().status, "running");
  EXPECT_EQ(inspect("worker", "{{.State.Status}}"), "running");

  // A restart starts the health check over (podman keeps the failing streak from before).
  events = run(
      containers({{"select", {{"names", {"web"}}}}, {"action", "restart"}, {"stop_timeout_s", 1}}));
  done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(lines_of(events, Stream::kAgent), std::vector<std::string>{"restarted web"});
  ASSERT_EQ(healths_of(events, "web").size(), 1u);
  EXPECT_EQ(healths_of(events, "web")[0].status, "starting");
  EXPECT_EQ(done->state, JobState::kFailed);
}

TEST_F(HealthLab, PodmanNamesThatMatchNothing) {
  std::string why;
  if (!start_podman(why)) GTEST_SKIP() << why;
  ASSERT_EQ(podman(kWorker), 0) << podman_said();
  auto events = run(containers({{"select", {{"names", {"worker", "wrker"}}}}}));
  const JobFinished* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_EQ(done->error, "not healthy: wrker (missing: no such container)");

  // A control action with a name that matches nothing touches nothing.
  events = run(containers({{"select", {{"names", {"worker", "wrker"}}}}, {"action", "stop"}}));
  done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_EQ(done->error, "no container matches \"wrker\"");
  EXPECT_EQ(inspect("worker", "{{.State.Status}}"), "running");

  events = run(containers({{"select", {{"labels", {{"app", "none"}}}}}}));
  done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->error, "not healthy: label app=none (missing: no container matches)");
}

TEST_F(HealthLab, PodmanWatchStreamsEachChange) {
  std::string why;
  if (!start_podman(why)) GTEST_SKIP() << why;
  ASSERT_EQ(podman(kWorker), 0) << podman_said();
  test::Agent agent(CUTPILOT_AGENT_PATH);
  agent.send(StartJob{"watch", "health",
                      containers({{"select", {{"project", "shop"}}}, {"mode", "watch"}}).dump()});
  auto events = until_health(agent, "worker", "running");
  ASSERT_EQ(podman("stop -t 1 worker"), 0) << podman_said();
  for (auto& m : until_health(agent, "worker", "exited"))
    events.push_back(std::move(m));
  ASSERT_EQ(podman("rm worker"), 0) << podman_said();
  for (auto& m : until_health(agent, "worker", "removed"))
    events.push_back(std::move(m));
  agent.send(CancelJob{"watch"});
  for (auto& m : agent.until_finished(10s))
    events.push_back(std::move(m));
  const JobFinished* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kCancelled);
  std::vector<std::string> seen;
  for (const auto& h : healths_of(events, "worker"))
    // Podman may show "stopping" and, on a busy machine, "stopped" (before its cleanup
    // records the exit) in passing.
    if (h.status != "stopping" && h.status != "stopped") seen.push_back(h.status);
  EXPECT_EQ(seen, (std::vector<std::string>{"running", "exited", "removed"}));
}

TEST_F(HealthLab, NginxUnderTheProductionName) {
  ASSERT_TRUE(lab_->run("nginx", {"h1"})) << read_text(lab_->dir() + "/test-lab.log");
  const auto env = read_env(lab_->host_dir("h1") + "/nginx.env");
  const std::string port = env.at("NGINX_PORT");
  // shop.example.test is not in DNS: connect_to takes the probe to the new host's nginx.
  const Json probe = {{"check", "http"},
                      {"url", "http://shop.example.test/?probe=cutpilot"},
                      {"connect_to", "127.0.0.1:" + port},
                      {"expect_body", "cutpilot lab host h1"}};
  auto events = run(probe);
  const JobFinished* done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kSucceeded) << done->error;
  const std::string log = read_text(env.at("NGINX_PREFIX") + "/logs/access.log");
  EXPECT_NE(log.find("\"GET /?probe=cutpilot HTTP/1.1\" 200"), std::string::npos) << log;

  // The Host header is what nginx sees: one it refuses shows it arrived.
  Json bad_host = probe;
  bad_host["host_header"] = "bad/host";
  events = run(bad_host);
  done = finished_of(events);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state, JobState::kFailed);
  EXPECT_NE(done->error.find("(unexpected: status 400, expected 200, the body lacks"),
            std::string::npos)
      << done->error;
}

}  // namespace
}  // namespace cutpilot
