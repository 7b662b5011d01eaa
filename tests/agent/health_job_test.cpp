// The `health` job kind of the real cutpilot-agent binary, without the lab: spec errors,
// TCP open/closed (sockets the test holds), wait/watch/cancel and de-duplicated reports,
// disk, load, HTTP against a small Python server (Host header, connect_to, status and
// body mismatches, chunked bodies, a server that never answers), TLS with a self-signed
// certificate, systemd with and without systemctl, a Docker socket that is not there.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
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

// An HTTP(S) server for the probes: /echo answers "host=<Host header>", /status/N answers
// N, /chunked sends its body in chunks. With CERT and KEY it speaks TLS. Prints its port.
constexpr const char* kServer = R"PY(
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path.startswith("/status/"):
            body, code = b"status page\n", int(self.path[8:])
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"first part, ", b"x" * 70000, b", the end"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        else:
            body, code = ("host=%s\n" % self.headers.get("Host")).encode(), 200
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
if len(sys.argv) > 2:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
)PY";

// A TCP socket listening on 127.0.0.1 (connects succeed from the backlog, nobody answers).
class Listener {
 public:
  // Listens on port (0: any free one).
  explicit Listener(uint16_t port = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    socklen_t size = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &size);
    port_ = ntohs(addr.sin_port);
  }
  ~Listener() { close(fd_); }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// A port nothing listens on (one that was just free).
uint16_t closed_port() {
  return Listener().port();
}

// The Health events, in order.
std::vector<Health> healths_of(const std::vector<Message>& events) {
  std::vector<Health> out;
  for (const auto& m : events)
    if (const auto* h = std::get_if<Health>(&m)) out.push_back(*h);
  return out;
}

class HealthJob : public test::AgentHomeTest {
 protected:
  // Runs one health job to its end through a fresh agent; its events.
  std::vector<Message> run(const Json& spec, std::chrono::milliseconds timeout = 20s) {
    test::Agent agent(CUTPILOT_AGENT_PATH);
    agent.send(StartJob{"health-" + std::to_string(++jobs_), "health", spec.dump()});
    return agent.until_finished(timeout);
  }
  // The job's end; fails the test when there is none.
  const JobFinished& done_of(const std::vector<Message>& events) {
    const JobFinished* done = finished_of(events);
    if (!done) {
      ADD_FAILURE() << "no job-finished";
      static const JobFinished none{};
      return none;
    }
    return *done;
  }
  // Starts the test's HTTP server (TLS with cert and key); its port.
  uint16_t start_server(const std::string& cert = "", const std::string& key = "") {
    std::ofstream(home_ + "/server.py") << kServer;
    std::vector<std::string> argv = {"python3", home_ + "/server.py"};
    if (!cert.empty()) argv.insert(argv.end(), {cert, key});
    server_ = std::make_unique<test::Child>(argv);
    const std::string line = server_->read_some(10s);
    EXPECT_FALSE(line.empty()) << server_->read_stderr(1s);
    return static_cast<uint16_t>(std::atoi(line.c_str()));
  }
  // A self-signed certificate for shop.test and 127.0.0.1; its cert and key paths.
  std::pair<std::string, std::string> make_certificate() {
    const std::string cert = home_ + "/cert.pem", key = home_ + "/key.pem";
    const std::string command =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
        "-subj /CN=shop.test -addext subjectAltName=DNS:shop.test,IP:127.0.0.1 -keyout " +
        key + " -out " + cert + " >/dev/null 2>&1";
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
    return {cert, key};
  }
  // Puts dir first in PATH for the agents started from now on (restored at the end).
  void prepend_path(const std::string& dir) {
    saved_path_ = getenv("PATH");
    setenv("PATH", (dir + ":" + saved_path_).c_str(), 1);
  }
  void TearDown() override {
    if (!saved_path_.empty()) setenv("PATH", saved_path_.c_str(), 1);
    server_.reset();
    test::AgentHomeTest::TearDown();
  }

  int jobs_ = 0;
  std::unique_ptr<test::Child> server_;
  std::string saved_path_;
};

TEST_F(HealthJob, BadSpecsAreRefusedBeforeTheJobStarts) {
  const Json tcp = {{"check", "tcp"}, {"address", "127.0.0.1"}, {"port", 80}};
  auto with = [&](Json base, const Json& extra) {
    base.update(extra);
    return base;
  };
  const std::vector<std::pair<Json, std::string>> cases = {
      {Json::object(), "needs \"check\": one of containers, http, tcp, disk, load, systemd"},
      {{{"check", "ping"}}, "needs \"check\""},
      {with(tcp, {{"url", "http://x/"}}), "unknown tcp health field \"url\" (expected check, mode"},
      {with(tcp, {{"bogus", 1}}), "unknown tcp health field \"bogus\""},
      {{{"check", "tcp"}, {"address", "127.0.0.1"}}, "tcp needs \"address\" and \"port\""},
      {with(tcp, {{"port", 70000}}), "\"port\" (1-65535)"},
      {with(tcp, {{"expect", "ajar"}}), "tcp \"expect\" must be open or closed"},
      {with(tcp, {{"mode", "forever"}}), "\"mode\" must be once, wait or watch"},
      {with(tcp, {{"interval_ms", 1}}), "\"interval_ms\" must be at least 50"},
      {with(tcp, {{"timeout_ms", -5}}), "\"timeout_ms\" must be a non-negative integer"},
      {{{"check", "http"}, {"url", "ftp://x/"}}, "is not an http:// or https:// URL"},
      {{{"check", "http"}, {"url", "http://u:p@x/"}}, "must not carry user:password@"},
      {{{"check", "http"}, {"url", "http://x/"}, {"connect_to", "1.2.3.4:99999"}},
       "\"connect_to\" must be ADDRESS[:PORT]"},
      {{{"check", "http"}, {"url", "http://x/"}, {"tls_verify", "no"}},
       "\"tls_verify\" must be true or false"},
      {{{"check", "http"}, {"url", "http://x/"}, {"expect_status", 42}}, "\"expect_status\""},
      {{{"check", "containers"}}, "containers needs \"select\" with names, labels or a project"},
      {{{"check", "containers"}, {"select", {{"nmes", {"web"}}}}}, "unknown select field \"nmes\""},
      {{{"check", "containers"}, {"select", {{"names", {"web"}}}}, {"action", "kill"}},
       "\"action\" must be stop, start or restart"},
      {{{"check", "disk"}, {"path", "tmp"}, {"min_free_bytes", 1}}, "absolute \"path\""},
      {{{"check", "disk"}, {"path", "/"}}, "needs \"min_free_bytes\" or \"min_free_percent\""},
      {{{"check", "disk"}, {"path", "/"}, {"min_free_percent", 101}}, "at most 100"},
      {{{"check", "load"}}, "load needs a positive \"max_load1\""},
      {{{"check", "systemd"}}, "systemd needs \"unit\""},
      {{{"check", "systemd"}, {"unit", "x"}, {"port", 1}}, "unknown systemd health field \"port\""},
  };
  test::Agent agent(CUTPILOT_AGENT_PATH);
  for (const auto& [spec, expected] : cases) {
    agent.send(StartJob{"bad", "health", spec.dump()});
    const auto m = agent.next();
    ASSERT_TRUE(m && std::holds_alternative<Error>(*m)) << spec.dump();
    const std::string& message = std::get<Error>(*m).message;
    EXPECT_NE(message.find("bad health spec: "), std::string::npos) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  }
  agent.send(StartJob{"bad", "health", "{not json"});
  const auto m = agent.next();
  ASSERT_TRUE(m && std::holds_alternative<Error>(*m));
  EXPECT_NE(std::get<Error>(*m).message.find("not valid JSON"), std::string::npos);
}

TEST_F(HealthJob, TcpOpenAndClosedPorts) {
  Listener open;
  const uint16_t closed = closed_port();
  const std::string open_target = "127.0.0.1:" + std::to_string(open.port());
  const std::string closed_target = "127.0.0.1:" + std::to_string(closed);

  auto events = run({{"check", "tcp"}, {"address", "127.0.0.1"}, {"port", open.port()}});
  EXPECT_EQ(done_of(events).state, JobState::kSucceeded) << done_of(events).error;
  auto healths = healths_of(events);
  ASSERT_EQ(healths.size(), 1u);
  EXPECT_EQ(healths[0].target, open_target);
  EXPECT_EQ(healths[0].status, "open");
  const Json result = Json::parse(done_of(events).result);
  EXPECT_EQ(result["good"], true);
  EXPECT_EQ(result["targets"][0]["status"], "open");

  events = run({{"check", "tcp"}, {"address", "127.0.0.1"}, {"port", closed}});
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_EQ(done_of(events).error,
            "not healthy: " + closed_target + " (closed: Connection refused, expected open)");
  healths = healths_of(events);
  ASSERT_EQ(healths.size(), 1u);
  EXPECT_EQ(healths[0].status, "closed");

  // A port that must be closed (the old host after its service stopped).
  events =
      run({{"check", "tcp"}, {"address", "127.0.0.1"}, {"port", closed}, {"expect", "closed"}});
  EXPECT_EQ(done_of(events).state, JobState::kSucceeded) << done_of(events).error;
  events = run(
      {{"check", "tcp"}, {"address", "localhost"}, {"port", open.port()}, {"expect", "closed"}});
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_NE(done_of(events).error.find("(open: expected closed)"), std::string::npos)
      << done_of(events).error;

  // IPv6, where the machine has it.
  const int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  socklen_t size = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 4) ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size)) {
    if (fd >= 0) close(fd);
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  const int port6 = ntohs(addr.sin6_port);
  events = run({{"check", "tcp"}, {"address", "::1"}, {"port", port6}});
  close(fd);
  EXPECT_EQ(done_of(events).state, JobState::kSucceeded) << done_of(events).error;
  ASSERT_EQ(healths_of(events).size(), 1u);
  EXPECT_EQ(healths_of(events)[0].target, "[::1]:" + std::to_string(port6));
}

TEST_F(HealthJob, WaitReportsEachChangeOnceUntilThePortOpens) {
  const uint16_t port = closed_port();
  test::Agent agent(CUTPILOT_AGENT_PATH);
  agent.send(StartJob{"wait-port", "health",
                      Json{{"check", "tcp"},
                           {"address", "127.0.0.1"},
                           {"port", port},
                           {"mode", "wait"},
                           {"interval_ms", 50},
                           {"timeout_ms", 20000}}
                          .dump()});
  std::this_thread::sleep_for(700ms);  // ~14 looks at a closed port
  Listener listener(port);
  const auto events = agent.until_finished(120s);
  EXPECT_EQ(done_of(events).state, JobState::kSucceeded) << done_of(events).error;
  const auto healths = healths_of(events);
  ASSERT_EQ(healths.size(), 2u);  // closed once (not once per look), then open
  EXPECT_EQ(healths[0].status, "closed");
  EXPECT_EQ(healths[1].status, "open");
  EXPECT_LT(healths[0].seq, healths[1].seq);
  const auto notes = lines_of(events, Stream::kAgent);
  ASSERT_FALSE(notes.empty());
  EXPECT_NE(notes.back().find("all 1 good after"), std::string::npos) << notes.back();
}

TEST_F(HealthJob, WaitTimesOutNamingWhatIsNotGood) {
  const uint16_t port = closed_port();
  const auto started = std::chrono::steady_clock::now();
  const auto events = run({{"check", "tcp"},
                           {"address", "127.0.0.1"},
                           {"port", port},
                           {"mode", "wait"},
                           {"interval_ms", 100},
                           {"timeout_ms", 600}});
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(done_of(events).state, JobState::kTimedOut);
  EXPECT_EQ(done_of(events).error,
            "timed out after 600 ms; not yet healthy: 127.0.0.1:" + std::to_string(port) +
                " (closed: Connection refused, expected open)");
  EXPECT_GE(took, 600ms);
  EXPECT_LT(took, 60s) << "the wait outlived its timeout";
  EXPECT_EQ(healths_of(events).size(), 1u);
}

TEST_F(HealthJob, WatchStreamsUntilCancelled) {
  Listener open;
  test::Agent agent(CUTPILOT_AGENT_PATH);
  agent.send(StartJob{"watch", "health",
                      Json{{"check", "tcp"},
                           {"address", "127.0.0.1"},
                           {"port", open.port()},
                           {"mode", "watch"},
                           {"interval_ms", 50}}
                          .dump()});
  std::vector<Message> events;
  while (auto m = agent.next(60s)) {
    events.push_back(*m);
    if (std::holds_alternative<Health>(*m)) break;
  }
  ASSERT_EQ(healths_of(events).size(), 1u);
  std::this_thread::sleep_for(300ms);
  agent.send(CancelJob{"watch"});
  const auto rest = agent.until_finished(120s);
  EXPECT_EQ(done_of(rest).state, JobState::kCancelled);
  EXPECT_TRUE(healths_of(rest).empty()) << "an unchanged port was reported again";
  EXPECT_EQ(Json::parse(done_of(rest).result)["targets"][0]["status"], "open");
}

TEST_F(HealthJob, DiskFreeAgainstThresholds) {
  auto events = run({{"check", "disk"}, {"path", home_}, {"min_free_bytes", 1}});
  EXPECT_EQ(done_of(events).state, JobState::kSucceeded) << done_of(events).error;
  auto healths = healths_of(events);
  ASSERT_EQ(healths.size(), 1u);
  EXPECT_EQ(healths[0].target, home_);
  EXPECT_EQ(healths[0].status, "ok");
  EXPECT_NE(healths[0].detail.find(" free of "), std::string::npos) << healths[0].detail;
  EXPECT_GT(Json::parse(done_of(events).result)["targets"][0]["total"].get<uint64_t>(), 0u);

  events = run({{"check", "disk"}, {"path", home_}, {"min_free_bytes", uint64_t{1} << 60}});
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_NE(done_of(events).error.find("(low: "), std::string::npos) << done_of(events).error;
  EXPECT_NE(done_of(events).error.find("needs 1024.0 PiB"), std::string::npos)
      << done_of(events).error;

  events = run({{"check", "disk"}, {"path", home_ + "/nowhere"}, {"min_free_percent", 5}});
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_NE(done_of(events).error.find("(error: No such file or directory)"), std::string::npos)
      << done_of(events).error;
}

TEST_F(HealthJob, LoadAgainstAMaximum) {
  auto events = run({{"check", "load"}, {"max_load1", 1e6}});
  EXPECT_EQ(done_of(events).state, JobState::kSucceeded) << done_of(events).error;
  ASSERT_EQ(healths_of(events).size(), 1u);
  EXPECT_EQ(healths_of(events)[0].status, "ok");
  double load1 = 0;
  std::ifstream("/proc/loadavg") >> load1;
  if (load1 < 0.02) GTEST_SKIP() << "the machine is idle (load " << load1 << ")";
  events = run({{"check", "load"}, {"max_load1", 0.01}});
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_NE(done_of(events).error.find("load1 (high: load "), std::string::npos)
      << done_of(events).error;
}

TEST_F(HealthJob, HttpWithHostHeaderAndConnectTo) {
  const uint16_t port = start_server();
  const std::string p = std::to_string(port);
  // shop.test resolves nowhere: only connect_to gets the probe to the server.
  auto events = run({{"check", "http"},
                     {"url", "http://shop.test:" + p + "/echo"},
                     {"connect_to", "127.0.0.1:" + p},
                     {"expect_body", "host=shop.test:" + p}});
  EXPECT_EQ(done_of(events).state, JobState::kSucceeded) << done_of(events).error;
  auto healths = healths_of(events);
  ASSERT_EQ(healths.size(), 1u);
  EXPECT_EQ(healths[0].target, "http://shop.test:" + p + "/echo via 127.0.0.1:" + p);
  EXPECT_EQ(healths[0].status, "ok");
  EXPECT_EQ(Json::parse(done_of(events).result)["targets"][0]["status_code"], 200);

  // connect_to without a port keeps the URL's; the Host header can be set on its own.
  events = run({{"check", "http"},
                {"url", "http://127.0.0.1:" + p + "/echo"},
                {"host_header", "www.shop.test"},
                {"connect_to", "127.0.0.1"},
                {"expect_body", "host=www.shop.test\n"}});
  EXPECT_EQ(done_of(events).state, JobState::kSucceeded) << done_of(events).error;

  events = run({{"check", "http"}, {"url", "http://shop.test:" + p + "/echo"}});
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_NE(done_of(events).error.find("(unreachable: cannot resolve shop.test: "),
            std::string::npos)
      << done_of(events).error;
}

TEST_F(HealthJob, HttpStatusAndBodyMismatches) {
  const std::string base = "http://127.0.0.1:" + std::to_string(start_server());
  auto events = run({{"check", "http"}, {"url", base + "/status/503"}});
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_NE(done_of(events).error.find("(unexpected: status 503, expected 200)"), std::string::npos)
      << done_of(events).error;

  events = run({{"check", "http"}, {"url", base + "/status/503"}, {"expect_status", 503}});
  EXPECT_EQ(done_of(events).state, JobState::kSucceeded) << done_of(events).error;

  events = run({{"check", "http"}, {"url", base + "/echo"}, {"expect_body", "maintenance"}});
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_NE(done_of(events).error.find("status 200, the body lacks \"maintenance\""),
            std::string::npos)
      << done_of(events).error;

  // A chunked body is put back together (the marker sits after a 70 kB chunk).
  events = run({{"check", "http"}, {"url", base + "/chunked"}, {"expect_body", "x, the end"}});
  EXPECT_EQ(done_of(events).state, JobState::kSucceeded) << done_of(events).error;
  EXPECT_EQ(Json::parse(done_of(events).result)["targets"][0]["body_bytes"], 70021);
}

TEST_F(HealthJob, HttpServerDownOrSilent) {
  const uint16_t closed = closed_port();
  auto events =
      run({{"check", "http"}, {"url", "http://127.0.0.1:" + std::to_string(closed) + "/"}});
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_NE(done_of(events).error.find("(unreachable: cannot connect to 127.0.0.1:" +
                                       std::to_string(closed) + ": Connection refused)"),
            std::string::npos)
      << done_of(events).error;

  Listener silent;  // accepts (backlog) and never answers
  events = run({{"check", "http"},
                {"url", "http://127.0.0.1:" + std::to_string(silent.port()) + "/"},
                {"request_timeout_ms", 300}});
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_NE(done_of(events).error.find("timed out after 300 ms waiting for the response"),
            std::string::npos)
      << done_of(events).error;
}

TEST_F(HealthJob, CancelStopsAProbeInFlight) {
  Listener silent;
  test::Agent agent(CUTPILOT_AGENT_PATH);
  agent.send(StartJob{"slow", "health",
                      Json{{"check", "http"},
                           {"url", "http://127.0.0.1:" + std::to_string(silent.port()) + "/"},
                           {"mode", "wait"},
                           {"request_timeout_ms", 600000}}
                          .dump()});
  const auto m = agent.next();
  ASSERT_TRUE(m && std::holds_alternative<JobStarted>(*m));
  std::this_thread::sleep_for(300ms);
  const auto cancelled_at = std::chrono::steady_clock::now();
  agent.send(CancelJob{"slow"});
  const auto events = agent.until_finished(120s);
  EXPECT_EQ(done_of(events).state, JobState::kCancelled);
  // Far sooner than the request's own 10-minute timeout, however loaded the machine.
  EXPECT_LT(std::chrono::steady_clock::now() - cancelled_at, 120s);
}

TEST_F(HealthJob, TlsIsVerifiedUnlessThePlanSaysOtherwise) {
  const auto [cert, key] = make_certificate();
  const std::string p = std::to_string(start_server(cert, key));
  const Json probe = {{"check", "http"},
                      {"url", "https://shop.test:" + p + "/echo"},
                      {"connect_to", "127.0.0.1:" + p},
                      {"expect_body", "host=shop.test"}};
  auto with = [&](const Json& extra) {
    Json spec = probe;
    spec.update(extra);
    return spec;
  };
  auto events = run(probe);
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_NE(done_of(events).error.find("TLS: certificate verify failed: self-signed certificate"),
            std::string::npos)
      << done_of(events).error;

  events = run(with({{"ca_file", cert}}));
  EXPECT_EQ(done_of(events).state, JobState::kSucceeded) << done_of(events).error;

  events = run(with({{"tls_verify", false}}));
  EXPECT_EQ(done_of(events).state, JobState::kSucceeded) << done_of(events).error;

  // The certificate is for shop.test and 127.0.0.1, not for another name.
  events = run(with({{"url", "https://other.test:" + p + "/echo"}, {"ca_file", cert}}));
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_NE(done_of(events).error.find("TLS: certificate verify failed: hostname mismatch"),
            std::string::npos)
      << done_of(events).error;
  events = run({{"check", "http"}, {"url", "https://127.0.0.1:" + p + "/echo"}, {"ca_file", cert}});
  EXPECT_EQ(done_of(events).state, JobState::kSucceeded) << done_of(events).error;

  events = run(with({{"ca_file", home_ + "/missing.pem"}}));
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_NE(done_of(events).error.find("TLS: cannot load CA file " + home_ + "/missing.pem"),
            std::string::npos)
      << done_of(events).error;
}

TEST_F(HealthJob, SystemdUnitsThroughSystemctl) {
  const std::string bin = home_ + "/bin";
  fs::create_directories(bin);
  // No systemctl at all (a container, a minimal host).
  saved_path_ = getenv("PATH");
  setenv("PATH", (home_ + "/empty").c_str(), 1);
  auto events = run({{"check", "systemd"}, {"unit", "shop.service"}});
  setenv("PATH", saved_path_.c_str(), 1);
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_EQ(done_of(events).error,
            "systemd units cannot be checked on this host: cannot run systemctl: No such file or "
            "directory");

  // A systemctl that cannot reach systemd says so, and the job passes its words on.
  std::ofstream(bin + "/systemctl")
      << "#!/bin/sh\necho 'System has not been booted with systemd as init system (PID 1). "
         "Can'\"'\"'t operate.' >&2\nexit 1\n";
  fs::permissions(bin + "/systemctl", fs::perms::owner_all);
  prepend_path(bin);
  events = run({{"check", "systemd"}, {"unit", "shop.service"}});
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_EQ(done_of(events).error,
            "systemctl show shop.service failed: System has not been booted with systemd as init "
            "system (PID 1). Can't operate.");

  // A host where systemd runs: what systemctl show prints decides.
  std::ofstream(bin + "/systemctl")
      << "#!/bin/sh\n[ \"$2\" = --property=LoadState,ActiveState,SubState,NRestarts ] || exit 9\n"
         "[ \"$4\" = shop.service ] || { echo LoadState=not-found; echo ActiveState=inactive; "
         "echo SubState=dead; exit 0; }\n"
         "printf 'LoadState=loaded\\nActiveState=active\\nSubState=running\\nNRestarts=2\\n'\n";
  events = run({{"check", "systemd"}, {"unit", "shop.service"}});
  EXPECT_EQ(done_of(events).state, JobState::kSucceeded) << done_of(events).error;
  ASSERT_EQ(healths_of(events).size(), 1u);
  EXPECT_EQ(healths_of(events)[0].status, "active");
  EXPECT_EQ(healths_of(events)[0].detail, "sub-state running, restarts 2");

  events = run({{"check", "systemd"}, {"unit", "shop.service"}, {"expect", "inactive"}});
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_EQ(done_of(events).error,
            "not healthy: shop.service (active: sub-state running, restarts 2, expected inactive)");

  events = run({{"check", "systemd"}, {"unit", "nope.service"}});
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_NE(done_of(events).error.find("nope.service (not-found: "), std::string::npos)
      << done_of(events).error;
}

TEST_F(HealthJob, ContainersWithoutADockerSocket) {
  const std::string socket = home_ + "/docker.sock";
  auto events =
      run({{"check", "containers"}, {"socket", socket}, {"select", {{"names", {"web"}}}}});
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_NE(done_of(events).error.find("(unreachable: Docker API: cannot connect to " + socket +
                                       ": No such file or directory"),
            std::string::npos)
      << done_of(events).error;

  // A control action that cannot reach the daemon fails without waiting.
  events = run({{"check", "containers"},
                {"socket", socket},
                {"select", {{"project", "shop"}}},
                {"action", "stop"}});
  EXPECT_EQ(done_of(events).state, JobState::kFailed);
  EXPECT_NE(done_of(events).error.find("Docker API: cannot connect to"), std::string::npos)
      << done_of(events).error;
}

}  // namespace
}  // namespace cutpilot
