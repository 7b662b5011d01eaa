#include "agents/health_probes.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "agents/command.h"
#include "agents/dns_query.h"
#include "agents/http_client.h"
#include "agents/net_stream.h"
#include "agents/spool.h"
#include "agents/words.h"

namespace cutpilot::agent {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

// How long a control action may take besides a container's stop grace period.
constexpr auto kControlTimeout = std::chrono::seconds(60);

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (const auto& part : parts)
    if (!part.empty()) out += (out.empty() ? "" : std::string(separator)) + part;
  return out;
}

std::string fixed(double value, int decimals) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

// The docker socket of spec, or nullopt with error set.
std::optional<std::string> socket_of(const HealthSpec& spec, std::string& error) {
  if (!spec.socket.empty()) return spec.socket;
  return default_docker_socket(error);
}

// The selection in the operator's words, for a selection that matched nothing.
std::string describe(const ContainerSelector& select) {
  std::vector<std::string> parts;
  if (!select.project.empty()) parts.push_back("project " + select.project);
  for (const auto& [key, value] : select.labels)
    parts.push_back("label " + key + "=" + value);
  return join(parts, ", ");
}

Observation container_observation(const ContainerStatus& c, bool want_stopped) {
  Observation o;
  o.target = c.name;
  o.status = c.state == "running" && !c.health.empty() ? c.health : c.state;
  std::vector<std::string> parts;
  if (c.restarts) parts.push_back("restarts " + std::to_string(c.restarts));
  if (c.state == "exited" || c.state == "dead")
    parts.push_back("exit code " + std::to_string(c.exit_code));
  if (!c.error.empty()) parts.push_back(c.error);
  if (c.failing_streak) parts.push_back("failing streak " + std::to_string(c.failing_streak));
  if (!c.last_check.empty() && c.health != "healthy")
    parts.push_back("last check: " + c.last_check);
  o.detail = join(parts, ", ");
  if (c.state == "missing") o.detail = "no such container";
  // podman passes through "stopping"; dockerd says running until the container exited.
  const bool stopped = c.state != "running" && c.state != "restarting" && c.state != "paused" &&
                       c.state != "stopping";
  o.good =
      want_stopped ? stopped : c.state == "running" && (c.health.empty() || c.health == "healthy");
  if (c.state != "missing")
    o.facts = {{"id", c.id.substr(0, 12)},
               {"state", c.state},
               {"health", c.health},
               {"restarts", c.restarts},
               {"failing_streak", c.failing_streak},
               {"last_check", c.last_check},
               {"exit_code", c.exit_code}};
  return o;
}

ProbeResult probe_containers(const HealthSpec& spec, const ProbeEnv& env) {
  ProbeResult result;
  std::string error;
  const auto socket = socket_of(spec, error);
  if (!socket) {
    result.fatal = error;
    return result;
  }
  const DockerApi api(*socket, env.timeout, env.cancel_fd);
  const auto found = api.select(spec.select, error);
  if (!found) {
    result.cancelled = error == "cancelled";
    // The daemon may be restarting: a wait goes on trying.
    result.targets.push_back({*socket, "unreachable", error, false});
    result.keep_previous = true;
    return result;
  }
  for (const auto& c : *found)
    result.targets.push_back(container_observation(c, spec.action == "stop"));
  if (found->empty())
    result.targets.push_back({describe(spec.select), "missing", "no container matches", false});
  return result;
}

ProbeResult probe_http(const HealthSpec& spec, const ProbeEnv& env) {
  HttpRequest request;
  request.url = spec.url;
  request.connect_to = spec.connect_to;
  if (!spec.host_header.empty()) request.headers.emplace_back("Host", spec.host_header);
  request.timeout = env.timeout;
  request.tls_verify = spec.tls_verify;
  request.ca_file = spec.ca_file;
  request.cancel_fd = env.cancel_fd;
  ProbeResult result;
  Observation o;
  o.target = spec.url + (spec.connect_to.empty() ? "" : " via " + spec.connect_to);
  const auto started = Clock::now();
  std::string error;
  const auto response = http_request(request, error);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  if (!response) {
    result.cancelled = error == "cancelled";
    o.status = "unreachable";
    o.detail = error;
    result.targets.push_back(std::move(o));
    return result;
  }
  std::vector<std::string> problems;
  if (static_cast<uint64_t>(response->status) != spec.expect_status)
    problems.push_back("expected " + std::to_string(spec.expect_status));
  if (!spec.expect_body.empty() && response->body.find(spec.expect_body) == std::string::npos)
    problems.push_back("the body lacks \"" + spec.expect_body + "\"");
  o.good = problems.empty();
  o.status = o.good ? "ok" : "unexpected";
  o.detail = join({"status " + std::to_string(response->status), join(problems, ", ")}, ", ");
  o.facts = {{"status_code", response->status},
             {"ms", ms},
             {"body_bytes", response->body.size()},
             {"truncated", response->truncated}};
  result.targets.push_back(std::move(o));
  return result;
}

ProbeResult probe_tcp(const HealthSpec& spec, const ProbeEnv& env) {
  ProbeResult result;
  Observation o;
  const auto port = static_cast<uint16_t>(spec.port);
  o.target = join_host_port(spec.address, port);
  const auto started = Clock::now();
  std::string error;
  const int fd = connect_tcp(spec.address, port, started + env.timeout, env.cancel_fd, error);
  if (fd >= 0) {
    close(fd);
    o.status = "open";
    o.facts["ms"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  } else {
    result.cancelled = error.ends_with(": cancelled");
    o.status = "closed";
    // "cannot connect to HOST:PORT: why" says the target twice; keep the why.
    const size_t colon = error.find(o.target + ": ");
    o.detail = colon == std::string::npos ? error : error.substr(colon + o.target.size() + 2);
    if (o.detail == "timed out")
      o.detail += " after " + std::to_string(env.timeout.count()) + " ms";
  }
  o.good = o.status == spec.expect;
  if (!o.good) o.detail = join({o.detail, "expected " + spec.expect}, ", ");
  result.targets.push_back(std::move(o));
  return result;
}

ProbeResult probe_disk(const HealthSpec& spec, const ProbeEnv&) {
  ProbeResult result;
  Observation o;
  o.target = spec.path;
  struct statvfs st {};
  if (statvfs(spec.path.c_str(), &st) != 0) {
    o.status = "error";
    o.detail = std::strerror(errno);
    result.targets.push_back(std::move(o));
    return result;
  }
  const uint64_t free = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  const uint64_t total = static_cast<uint64_t>(st.f_blocks) * st.f_frsize;
  const double percent = total ? 100.0 * static_cast<double>(free) / static_cast<double>(total) : 0;
  std::vector<std::string> short_of;
  if (spec.min_free_bytes && free < *spec.min_free_bytes)
    short_of.push_back("needs " + human_bytes(*spec.min_free_bytes));
  if (spec.min_free_percent && percent < *spec.min_free_percent)
    short_of.push_back("needs " + fixed(*spec.min_free_percent, 1) + "%");
  o.good = short_of.empty();
  o.status = o.good ? "ok" : "low";
  o.detail = join({human_bytes(free) + " free of " + human_bytes(total) + " (" +
                       fixed(std::floor(percent), 0) + "%)",
                   join(short_of, ", ")},
                  ", ");
  o.facts = {{"free", free}, {"total", total}, {"free_percent", percent}};
  result.targets.push_back(std::move(o));
  return result;
}

ProbeResult probe_load(const HealthSpec& spec, const ProbeEnv&) {
  ProbeResult result;
  const auto text = read_file("/proc/loadavg");
  double load1 = 0;
  if (!text || std::sscanf(text->c_str(), "%lf", &load1) != 1) {
    result.fatal = "cannot read the load average from /proc/loadavg";
    return result;
  }
  Observation o;
  o.target = "load1";
  o.good = load1 <= spec.max_load1;
  o.status = o.good ? "ok" : "high";
  o.detail = "load " + fixed(load1, 2) + " (max " + fixed(spec.max_load1, 2) + ")";
  o.facts = {{"load1", load1}, {"cores", sysconf(_SC_NPROCESSORS_ONLN)}};
  result.targets.push_back(std::move(o));
  return result;
}

ProbeResult probe_systemd(const HealthSpec& spec, const ProbeEnv& env) {
  ProbeResult result;
  std::map<std::string, std::string> properties;
  std::vector<std::string> errors;
  const Command show{.argv = {"systemctl", "show",
                              "--property=LoadState,ActiveState,SubState,NRestarts", "--",
                              spec.unit}};
  const RunResult run = run_commands(
      {show},
      [&](size_t, proto::Stream stream, std::string line) {
        const size_t eq = line.find('=');
        if (stream == proto::Stream::kStdout && eq != std::string::npos)
          properties[line.substr(0, eq)] = line.substr(eq + 1);
        else if (stream != proto::Stream::kStdout && !line.empty() && errors.size() < 5)
          errors.push_back(std::move(line));
      },
      {.timeout = env.timeout}, env.job);
  const CommandResult& command = run.commands.front();
  if (run.stop == StopReason::kCancelled) {
    result.cancelled = true;
    return result;
  }
  if (!command.start_error.empty()) {
    result.fatal = "systemd units cannot be checked on this host: " + command.start_error;
    return result;
  }
  if (run.stop == StopReason::kTimedOut || command.exit_code != 0 ||
      !properties.count("ActiveState")) {
    const std::string why = run.stop == StopReason::kTimedOut
                                ? "timed out after " + std::to_string(env.timeout.count()) + " ms"
                                : join(errors, "; ");
    result.fatal = "systemctl show " + spec.unit + " failed: " +
                   (why.empty() ? describe_exit(command.exit_code.value_or(-1)) : why);
    return result;
  }
  Observation o;
  o.target = spec.unit;
  const std::string& load = properties["LoadState"];
  o.status = load == "not-found" ? "not-found" : properties["ActiveState"];
  const std::string restarts = properties["NRestarts"];
  o.detail = join({properties["SubState"].empty() ? "" : "sub-state " + properties["SubState"],
                   restarts.empty() || restarts == "0" ? "" : "restarts " + restarts,
                   load == "loaded" || load == "not-found" ? "" : "load state " + load},
                  ", ");
  o.good = o.status == spec.expect;
  if (!o.good) o.detail = join({o.detail, "expected " + spec.expect}, ", ");
  o.facts = {{"load_state", load},
             {"active_state", properties["ActiveState"]},
             {"sub_state", properties["SubState"]}};
  result.targets.push_back(std::move(o));
  return result;
}

// One server's answer as an observation: good when it gives the name's records (the
// expected ones, when given) with a TTL within the bound.
Observation dns_observation(const HealthSpec& spec, const std::string& server, uint16_t port,
                            const ProbeEnv& env, bool& cancelled) {
  Observation o;
  o.target = join_host_port(server, port);
  const uint16_t type = spec.record_type == "AAAA" ? kDnsTypeAaaa : kDnsTypeA;
  std::string error;
  const auto answer =
      dns_query(server, port, spec.name, type, Clock::now() + env.timeout, env.cancel_fd, error);
  if (!answer) {
    cancelled = error == "cancelled";
    o.status = "unreachable";
    o.detail = error == "timed out" ? "no answer in " + std::to_string(env.timeout.count()) + " ms"
                                    : error;
    return o;
  }
  o.facts = {{"rcode", dns_rcode_name(answer->rcode)},
             {"addresses", answer->addresses},
             {"authoritative", answer->authoritative}};
  if (answer->ttl) o.facts["ttl"] = *answer->ttl;
  if (answer->rcode != 0 || answer->addresses.empty()) {
    o.status = answer->rcode != 0 ? dns_rcode_name(answer->rcode) : "no-records";
    o.detail = "no " + spec.record_type + " record for " + spec.name;
    return o;
  }
  std::vector<std::string> problems;
  const std::string got = join(answer->addresses, " ");
  if (!spec.expect_addresses.empty() && answer->addresses != spec.expect_addresses)
    problems.push_back("expected " + join(spec.expect_addresses, " "));
  if (spec.max_ttl_s && answer->ttl && *answer->ttl > *spec.max_ttl_s)
    problems.push_back("TTL above " + std::to_string(*spec.max_ttl_s) + " s");
  o.good = problems.empty();
  // The status changes only when the answer does (a resolver's TTL counts down every second).
  o.status = "answering " + got;
  o.detail =
      join({"TTL " + std::to_string(answer->ttl.value_or(0)) + " s", join(problems, ", ")}, ", ");
  return o;
}

ProbeResult probe_dns(const HealthSpec& spec, const ProbeEnv& env) {
  ProbeResult result;
  std::vector<std::string> servers = spec.servers;
  if (servers.empty()) {
    std::ifstream conf("/etc/resolv.conf");
    std::stringstream text;
    text << conf.rdbuf();
    servers = resolv_conf_servers(text.str());
    if (servers.empty()) {
      result.fatal = "no dns servers given and /etc/resolv.conf names none";
      return result;
    }
  }
  for (const std::string& server : servers) {
    const auto split = split_host_port(server, 53);
    if (!split) continue;  // refused when the spec was read
    result.targets.push_back(
        dns_observation(spec, split->first, split->second, env, result.cancelled));
    if (result.cancelled) break;
  }
  return result;
}

// Every check the health job runs.
constexpr CheckKind kChecks[] = {
    {"containers", probe_containers},
    {"http", probe_http},
    {"tcp", probe_tcp},
    {"disk", probe_disk},
    {"load", probe_load},
    {"systemd", probe_systemd},
    {"dns", probe_dns},
};

}  // namespace

const CheckKind* find_check(std::string_view name) {
  for (const auto& check : kChecks)
    if (check.name == name) return &check;
  return nullptr;
}

std::string check_names() {
  std::string names;
  for (const auto& check : kChecks)
    names += (names.empty() ? "" : ", ") + std::string(check.name);
  return names;
}

std::string run_container_action(const HealthSpec& spec, const ProbeEnv& env) {
  std::string error;
  const auto socket = socket_of(spec, error);
  if (!socket) return error;
  const DockerApi api(*socket, std::max<std::chrono::milliseconds>(env.timeout, kControlTimeout),
                      env.cancel_fd);
  const auto found = api.select(spec.select, error);
  if (!found) return error;
  if (found->empty()) return "no container matches " + describe(spec.select);
  for (const auto& c : *found)
    if (c.state == "missing") return "no container matches \"" + c.name + "\"";
  const std::string done = spec.action == "stop" ? "stopped" : spec.action + "ed";
  for (const auto& c : *found) {
    if (!api.control(c.id, spec.action, spec.stop_timeout_s, error))
      return error == "cancelled" ? error : c.name + ": " + error;
    env.job.log(proto::Stream::kAgent, done + " " + c.name);
  }
  return "";
}

}  // namespace cutpilot::agent
