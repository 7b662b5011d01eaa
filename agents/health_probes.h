// The checks of the `health` job kind: what each looks at once, as a list of targets with a
// status. The job (health_job.h) repeats them, reports changes and decides when to stop.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agents/docker.h"
#include "agents/runner.h"

namespace cutpilot::agent {

// How often a health job looks: once, until everything is good, or until cancelled.
enum class HealthMode { kOnce, kWait, kWatch };

// A parsed health spec (the JSON fields are documented in health_job.h).
struct HealthSpec {
  std::string check;  // containers, http, tcp, disk, load, systemd, dns
  HealthMode mode = HealthMode::kOnce;
  uint64_t timeout_ms = 0;  // the whole job; 0: none
  uint64_t interval_ms = 1000;
  uint64_t request_timeout_ms = 5000;  // one probe (an HTTP exchange, a connect, a command)
  // containers
  std::string socket;  // "": DOCKER_HOST's unix socket, else /var/run/docker.sock
  ContainerSelector select;
  std::string action;  // "", "stop", "start" or "restart": done first, then the mode
  uint64_t stop_timeout_s = 10;
  // http
  std::string url;
  uint64_t expect_status = 200;
  std::string expect_body;  // a substring the body must contain
  std::string host_header;
  std::string connect_to;
  bool tls_verify = true;
  std::string ca_file;
  // tcp
  std::string address;
  uint64_t port = 0;
  // tcp: "open" (default) or "closed"; systemd: the ActiveState wanted ("active" by default)
  std::string expect;
  // disk
  std::string path;
  std::optional<uint64_t> min_free_bytes;
  std::optional<double> min_free_percent;
  // load
  double max_load1 = 0;
  // systemd
  std::string unit;
  // dns: name's records of record_type (A or AAAA) at each server ("ADDRESS[:PORT]"; none:
  // the host's resolv.conf), equal to expect_addresses when given, TTL at most max_ttl_s
  std::string name;
  std::string record_type = "A";
  std::vector<std::string> servers;
  std::vector<std::string> expect_addresses;
  std::optional<uint64_t> max_ttl_s;
};

// One target as a check saw it.
struct Observation {
  std::string target;  // container name, URL, host:port, path, unit
  std::string status;  // healthy, unhealthy, starting, running, exited, open, closed, ok, low...
  std::string detail;  // short, and stable while nothing changes (reports are de-duplicated)
  bool good = false;   // what the check wants to see
  nlohmann::json facts = nlohmann::json::object();  // numbers for the job's JSON result
};

// What one look found.
struct ProbeResult {
  std::vector<Observation> targets;
  std::string fatal;       // the check cannot work here at all (no systemctl): the job fails
  bool cancelled = false;  // a cancel arrived while looking
  // The look failed as a whole (the Docker API did not answer): targets holds only the
  // error, and the targets seen before are kept as they were rather than reported removed.
  bool keep_previous = false;
};

// What a probe may use: how long it may take, what cancels it, the job (for commands).
struct ProbeEnv {
  std::chrono::milliseconds timeout;
  int cancel_fd;
  JobContext& job;
};

// One check kind: its name and how it looks once.
struct CheckKind {
  std::string_view name;
  ProbeResult (*probe)(const HealthSpec& spec, const ProbeEnv& env);
};

// The check kind called name, or nullptr.
const CheckKind* find_check(std::string_view name);
// Every check kind's name, comma-separated (for error messages).
std::string check_names();

// Runs spec.action on every selected container; "" when done, else why not ("cancelled"
// when cancelled). A name that matches no container fails it before anything is touched.
std::string run_container_action(const HealthSpec& spec, const ProbeEnv& env);

}  // namespace cutpilot::agent
