#include "agents/health_job.h"

#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "agents/dns_query.h"
#include "agents/health_probes.h"
#include "agents/http_client.h"

namespace cutpilot::agent {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

// How long a wait waits when the spec does not say.
constexpr uint64_t kDefaultWaitMs = 300000;
// The shortest interval between two looks.
constexpr uint64_t kMinIntervalMs = 50;
// A wait's first retry comes this soon, the next ones twice as late, up to the interval: a
// service that is nearly up is seen at once (inside a downtime window each wasted part of
// an interval is downtime, and a wait that passes at 0.1 s or at 1 s makes a poor forecast).
constexpr uint64_t kFirstRetryMs = 100;
// At most this many targets are named in an error message.
constexpr size_t kMaxNamed = 20;

bool fail(std::string& error, std::string message) {
  error = std::move(message);
  return false;
}

bool read_text(const Json& v, std::string& out, std::string_view name, std::string& error) {
  if (!v.is_string() || v.get<std::string>().empty())
    return fail(error, "\"" + std::string(name) + "\" must be a non-empty string");
  out = v.get<std::string>();
  return true;
}

bool read_count(const Json& v, uint64_t& out, std::string_view name, std::string& error) {
  if (!v.is_number_unsigned())
    return fail(error, "\"" + std::string(name) + "\" must be a non-negative integer");
  out = v.get<uint64_t>();
  return true;
}

bool read_texts(const Json& v, std::vector<std::string>& out, std::string_view name,
                std::string& error) {
  const auto bad = [&] {
    return fail(error, "\"" + std::string(name) + "\" must be an array of non-empty strings");
  };
  if (!v.is_array()) return bad();
  for (const Json& item : v) {
    if (!item.is_string() || item.get<std::string>().empty()) return bad();
    out.push_back(item.get<std::string>());
  }
  return true;
}

bool read_number(const Json& v, double& out, std::string_view name, std::string& error) {
  if (!v.is_number() || v.get<double>() < 0)
    return fail(error, "\"" + std::string(name) + "\" must be a non-negative number");
  out = v.get<double>();
  return true;
}

bool read_mode(const Json& v, HealthSpec& s, std::string& error) {
  const std::string mode = v.is_string() ? v.get<std::string>() : "";
  if (mode == "once") s.mode = HealthMode::kOnce;
  if (mode == "wait") s.mode = HealthMode::kWait;
  if (mode == "watch") s.mode = HealthMode::kWatch;
  return mode == "once" || mode == "wait" || mode == "watch" ||
         fail(error, "\"mode\" must be once, wait or watch");
}

bool read_select(const Json& v, HealthSpec& s, std::string& error) {
  if (!v.is_object()) return fail(error, "\"select\" must be an object");
  for (const auto& [key, value] : v.items()) {
    if (key == "names") {
      if (!value.is_array()) return fail(error, "\"select.names\" must be an array of names");
      for (const auto& name : value) {
        if (!name.is_string() || name.get<std::string>().empty())
          return fail(error, "\"select.names\" must be an array of non-empty strings");
        s.select.names.push_back(name.get<std::string>());
      }
    } else if (key == "labels") {
      if (!value.is_object()) return fail(error, "\"select.labels\" must be an object of strings");
      for (const auto& [label, wanted] : value.items()) {
        if (label.empty() || !wanted.is_string())
          return fail(error, "\"select.labels\" must map label names to strings");
        s.select.labels[label] = wanted.get<std::string>();
      }
    } else if (key == "project") {
      if (!read_text(value, s.select.project, "select.project", error)) return false;
    } else {
      return fail(error, "unknown select field \"" + key + "\" (expected names, labels, project)");
    }
  }
  return true;
}

// One spec field: the checks it belongs to ("" for all) and how it is read.
struct Field {
  std::string_view name;
  std::string_view checks;  // space-separated
  bool (*read)(const Json& value, HealthSpec& spec, std::string& error);
};

// Every field a health spec may have.
constexpr Field kFields[] = {
    {"check", "", [](const Json&, HealthSpec&, std::string&) { return true; }},
    {"mode", "", read_mode},
    {"timeout_ms", "",
     [](const Json& v, HealthSpec& s, std::string& e) {
       return read_count(v, s.timeout_ms, "timeout_ms", e);
     }},
    {"interval_ms", "",
     [](const Json& v, HealthSpec& s, std::string& e) {
       return read_count(v, s.interval_ms, "interval_ms", e);
     }},
    {"request_timeout_ms", "",
     [](const Json& v, HealthSpec& s, std::string& e) {
       return read_count(v, s.request_timeout_ms, "request_timeout_ms", e);
     }},
    {"select", "containers", read_select},
    {"socket", "containers",
     [](const Json& v, HealthSpec& s, std::string& e) {
       return read_text(v, s.socket, "socket", e);
     }},
    {"action", "containers",
     [](const Json& v, HealthSpec& s, std::string& e) {
       return read_text(v, s.action, "action", e);
     }},
    {"stop_timeout_s", "containers",
     [](const Json& v, HealthSpec& s, std::string& e) {
       return read_count(v, s.stop_timeout_s, "stop_timeout_s", e);
     }},
    {"url", "http",
     [](const Json& v, HealthSpec& s, std::string& e) { return read_text(v, s.url, "url", e); }},
    {"expect_status", "http",
     [](const Json& v, HealthSpec& s, std::string& e) {
       return read_count(v, s.expect_status, "expect_status", e);
     }},
    {"expect_body", "http",
     [](const Json& v, HealthSpec& s, std::string& e) {
       return read_text(v, s.expect_body, "expect_body", e);
     }},
    {"host_header", "http",
     [](const Json& v, HealthSpec& s, std::string& e) {
       return read_text(v, s.host_header, "host_header", e);
     }},
    {"connect_to", "http",
     [](const Json& v, HealthSpec& s, std::string& e) {
       return read_text(v, s.connect_to, "connect_to", e);
     }},
    {"tls_verify", "http",
     [](const Json& v, HealthSpec& s, std::string& e) {
       if (v.is_boolean()) s.tls_verify = v.get<bool>();
       return v.is_boolean() || fail(e, "\"tls_verify\" must be true or false");
     }},
    {"ca_file", "http",
     [](const Json& v, HealthSpec& s, std::string& e) {
       return read_text(v, s.ca_file, "ca_file", e);
     }},
    {"address", "tcp",
     [](const Json& v, HealthSpec& s, std::string& e) {
       return read_text(v, s.address, "address", e);
     }},
    {"port", "tcp",
     [](const Json& v, HealthSpec& s, std::string& e) { return read_count(v, s.port, "port", e); }},
    {"expect", "tcp systemd",
     [](const Json& v, HealthSpec& s, std::string& e) {
       return read_text(v, s.expect, "expect", e);
     }},
    {"path", "disk",
     [](const Json& v, HealthSpec& s, std::string& e) { return read_text(v, s.path, "path", e); }},
    {"min_free_bytes", "disk",
     [](const Json& v, HealthSpec& s, std::string& e) {
       s.min_free_bytes = 0;
       return read_count(v, *s.min_free_bytes, "min_free_bytes", e);
     }},
    {"min_free_percent", "disk",
     [](const Json& v, HealthSpec& s, std::string& e) {
       s.min_free_percent = 0;
       return read_number(v, *s.min_free_percent, "min_free_percent", e);
     }},
    {"max_load1", "load",
     [](const Json& v, HealthSpec& s, std::string& e) {
       return read_number(v, s.max_load1, "max_load1", e);
     }},
    {"unit", "systemd",
     [](const Json& v, HealthSpec& s, std::string& e) { return read_text(v, s.unit, "unit", e); }},
    {"name", "dns",
     [](const Json& v, HealthSpec& s, std::string& e) { return read_text(v, s.name, "name", e); }},
    {"record_type", "dns",
     [](const Json& v, HealthSpec& s, std::string& e) {
       return read_text(v, s.record_type, "record_type", e);
     }},
    {"servers", "dns",
     [](const Json& v, HealthSpec& s, std::string& e) {
       return read_texts(v, s.servers, "servers", e);
     }},
    {"expect_addresses", "dns",
     [](const Json& v, HealthSpec& s, std::string& e) {
       return read_texts(v, s.expect_addresses, "expect_addresses", e);
     }},
    {"max_ttl_s", "dns",
     [](const Json& v, HealthSpec& s, std::string& e) {
       s.max_ttl_s = 0;
       return read_count(v, *s.max_ttl_s, "max_ttl_s", e);
     }},
};

bool belongs_to(const Field& field, std::string_view check) {
  if (field.checks.empty()) return true;
  std::string_view rest = field.checks;
  while (!rest.empty()) {
    const size_t space = rest.find(' ');
    if (rest.substr(0, space) == check) return true;
    rest = space == std::string_view::npos ? "" : rest.substr(space + 1);
  }
  return false;
}

// The fields check takes, for an error message.
std::string field_names(std::string_view check) {
  std::string names;
  for (const auto& field : kFields)
    if (belongs_to(field, check)) names += (names.empty() ? "" : ", ") + std::string(field.name);
  return names;
}

// A dns spec: a name, A or AAAA, servers as ADDRESS[:PORT] with an IP address, expected
// addresses of the type asked (kept in canonical text, sorted, for comparing).
bool check_dns(HealthSpec& s, std::string& error) {
  if (s.name.empty()) return fail(error, "dns needs \"name\"");
  if (s.record_type != "A" && s.record_type != "AAAA")
    return fail(error, "dns \"record_type\" must be A or AAAA");
  if (dns_build_query(0, s.name, kDnsTypeA).empty())
    return fail(error, "dns \"name\" " + s.name + " is not a DNS name");
  for (const std::string& server : s.servers) {
    const auto split = split_host_port(server, 53);
    in6_addr any{};
    if (!split || (inet_pton(AF_INET, split->first.c_str(), &any) != 1 &&
                   inet_pton(AF_INET6, split->first.c_str(), &any) != 1))
      return fail(error,
                  "dns server \"" + server + "\" must be an IP address with an optional port");
  }
  const int family = s.record_type == "A" ? AF_INET : AF_INET6;
  for (std::string& address : s.expect_addresses) {
    in6_addr bytes{};
    char text[INET6_ADDRSTRLEN] = {};
    if (inet_pton(family, address.c_str(), &bytes) != 1)
      return fail(error, "dns expects \"" + address + "\", which is not an " +
                             (family == AF_INET ? "IPv4" : "IPv6") + " address (record_type " +
                             s.record_type + ")");
    address = inet_ntop(family, &bytes, text, sizeof text);
  }
  std::sort(s.expect_addresses.begin(), s.expect_addresses.end());
  return true;
}

// What every check needs besides well-typed fields.
bool check_complete(HealthSpec& s, std::string& error) {
  if (s.interval_ms < kMinIntervalMs)
    return fail(error, "\"interval_ms\" must be at least " + std::to_string(kMinIntervalMs));
  if (s.request_timeout_ms == 0) return fail(error, "\"request_timeout_ms\" must be positive");
  if (s.check == "containers") {
    if (s.select.empty())
      return fail(error, "containers needs \"select\" with names, labels or a project");
    if (!s.action.empty() && s.action != "stop" && s.action != "start" && s.action != "restart")
      return fail(error, "\"action\" must be stop, start or restart");
  } else if (s.check == "http") {
    if (s.url.empty()) return fail(error, "http needs \"url\"");
    if (!parse_url(s.url, error)) return false;
    if (!s.connect_to.empty() && !split_host_port(s.connect_to, 1))
      return fail(error, "\"connect_to\" must be ADDRESS[:PORT] or [IPV6]:PORT");
    if (s.expect_status < 100 || s.expect_status > 599)
      return fail(error, "\"expect_status\" must be an HTTP status (100-599)");
  } else if (s.check == "tcp") {
    if (s.address.empty() || s.port == 0 || s.port > 65535)
      return fail(error, "tcp needs \"address\" and \"port\" (1-65535)");
    if (s.expect.empty()) s.expect = "open";
    if (s.expect != "open" && s.expect != "closed")
      return fail(error, "tcp \"expect\" must be open or closed");
  } else if (s.check == "disk") {
    if (s.path.empty() || s.path[0] != '/') return fail(error, "disk needs an absolute \"path\"");
    if (!s.min_free_bytes && !s.min_free_percent)
      return fail(error, "disk needs \"min_free_bytes\" or \"min_free_percent\"");
    if (s.min_free_percent && *s.min_free_percent > 100)
      return fail(error, "\"min_free_percent\" must be at most 100");
  } else if (s.check == "load") {
    if (s.max_load1 <= 0) return fail(error, "load needs a positive \"max_load1\"");
  } else if (s.check == "systemd") {
    if (s.unit.empty()) return fail(error, "systemd needs \"unit\"");
    if (s.expect.empty()) s.expect = "active";
  } else if (s.check == "dns") {
    return check_dns(s, error);
  }
  return true;
}

std::optional<HealthSpec> parse(std::string_view text, std::string& error) {
  const Json j = Json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) {
    error = "the health spec is not valid JSON";
    return std::nullopt;
  }
  if (!j.is_object() || !j.contains("check") || !j["check"].is_string() ||
      !find_check(j["check"].get<std::string>())) {
    error = "the health spec needs \"check\": one of " + check_names();
    return std::nullopt;
  }
  HealthSpec spec;
  spec.check = j["check"].get<std::string>();
  for (const auto& item : j.items()) {
    const std::string& key = item.key();
    const Json& value = item.value();
    const auto field = std::find_if(std::begin(kFields), std::end(kFields),
                                    [&](const Field& f) { return f.name == key; });
    if (field == std::end(kFields) || !belongs_to(*field, spec.check)) {
      error = "unknown " + spec.check + " health field \"" + key + "\" (expected " +
              field_names(spec.check) + ")";
      return std::nullopt;
    }
    if (!field->read(value, spec, error)) return std::nullopt;
  }
  if (!j.contains("timeout_ms") && spec.mode == HealthMode::kWait) spec.timeout_ms = kDefaultWaitMs;
  if (!check_complete(spec, error)) return std::nullopt;
  return spec;
}

// "web (unhealthy: failing streak 3, last check: ...); db (exited: exit code 1)".
std::string not_good(const std::vector<Observation>& targets) {
  std::string out;
  size_t named = 0, bad = 0;
  for (const auto& t : targets) {
    if (t.good) continue;
    if (++bad > kMaxNamed) continue;
    out += (named++ ? "; " : "") + t.target + " (" + t.status +
           (t.detail.empty() ? "" : ": " + t.detail) + ")";
  }
  if (bad > kMaxNamed) out += "; and " + std::to_string(bad - kMaxNamed) + " more";
  return out;
}

// Sends a Health event for each target whose (status, detail) changed, and for each gone.
class Reporter {
 public:
  void publish(const std::vector<Observation>& now, JobContext& job) {
    std::map<std::string, std::pair<std::string, std::string>> seen;
    for (const auto& o : now) {
      const auto it = last_.find(o.target);
      if (it == last_.end() || it->second != std::pair{o.status, o.detail})
        job.emit(proto::Health{job.job_id(), 0, o.target, o.status, o.detail});
      seen[o.target] = {o.status, o.detail};
    }
    for (const auto& [target, state] : last_)
      if (!seen.count(target)) job.emit(proto::Health{job.job_id(), 0, target, "removed", ""});
    last_ = std::move(seen);
  }

 private:
  std::map<std::string, std::pair<std::string, std::string>> last_;
};

// The job's end: state, error and the JSON summary of every target's last state.
proto::JobFinished finish(const HealthSpec& spec, const std::vector<Observation>& targets,
                          Clock::time_point started, proto::JobState state, std::string error,
                          JobContext& job) {
  static constexpr const char* kModes[] = {"once", "wait", "watch"};
  proto::JobFinished done = failed_result(job.job_id(), std::move(error));
  done.state = state;
  if (state == proto::JobState::kSucceeded) done.exit_code = 0;
  Json list = Json::array();
  bool good = !targets.empty();
  for (const auto& t : targets) {
    Json entry = {
        {"target", t.target}, {"status", t.status}, {"detail", t.detail}, {"good", t.good}};
    entry.update(t.facts);
    list.push_back(std::move(entry));
    good = good && t.good;
  }
  done.result = Json{{"check", spec.check},
                     {"mode", kModes[static_cast<int>(spec.mode)]},
                     {"good", good},
                     {"seconds", std::chrono::duration<double>(Clock::now() - started).count()},
                     {"targets", std::move(list)}}
                    .dump();
  return done;
}

proto::JobFinished run(const HealthSpec& spec, int signal_fd, JobContext& job) {
  const auto started = Clock::now();
  const bool bounded = spec.timeout_ms > 0;
  const auto deadline =
      bounded ? started + std::chrono::milliseconds(spec.timeout_ms) : Clock::time_point::max();
  using proto::JobState;
  std::vector<Observation> targets;
  // Not cut to the deadline: the last look before giving up must be a real one.
  const ProbeEnv env{std::chrono::milliseconds(spec.request_timeout_ms), signal_fd, job};
  auto cancelled = [&]() {
    return finish(spec, targets, started, JobState::kCancelled, "cancelled", job);
  };
  if (!spec.action.empty()) {
    const std::string error = run_container_action(spec, env);
    if (error == "cancelled" || cancel_arrived(signal_fd, 0)) return cancelled();
    if (!error.empty()) return finish(spec, targets, started, JobState::kFailed, error, job);
  }
  const CheckKind* check = find_check(spec.check);
  Reporter reporter;
  uint64_t pause_ms =
      spec.mode == HealthMode::kWait ? std::min(kFirstRetryMs, spec.interval_ms) : spec.interval_ms;
  for (;;) {
    ProbeResult look = check->probe(spec, env);
    if (look.cancelled || cancel_arrived(signal_fd, 0)) return cancelled();
    if (!look.fatal.empty())
      return finish(spec, targets, started, JobState::kFailed, look.fatal, job);
    if (look.keep_previous) {
      // The source failed as a whole: what was seen before still stands, beside the error.
      for (auto& t : targets)
        if (std::none_of(look.targets.begin(), look.targets.end(),
                         [&](const auto& o) { return o.target == t.target; }))
          look.targets.push_back(std::move(t));
    }
    targets = std::move(look.targets);
    reporter.publish(targets, job);
    const bool good = !targets.empty() && std::all_of(targets.begin(), targets.end(),
                                                      [](const auto& t) { return t.good; });
    const bool out_of_time = bounded && Clock::now() >= deadline;
    if (spec.mode == HealthMode::kOnce || (spec.mode == HealthMode::kWait && good) ||
        (spec.mode == HealthMode::kWatch && out_of_time)) {
      if (good) {
        if (spec.mode == HealthMode::kWait)
          job.log(proto::Stream::kAgent,
                  "all " + std::to_string(targets.size()) + " good after " +
                      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         Clock::now() - started)
                                         .count()) +
                      " ms");
        return finish(spec, targets, started, JobState::kSucceeded, "", job);
      }
      return finish(spec, targets, started, JobState::kFailed, "not healthy: " + not_good(targets),
                    job);
    }
    if (out_of_time)
      return finish(spec, targets, started, JobState::kTimedOut,
                    "timed out after " + std::to_string(spec.timeout_ms) +
                        " ms; not yet healthy: " + not_good(targets),
                    job);
    const auto wake = std::min(Clock::now() + std::chrono::milliseconds(pause_ms), deadline);
    pause_ms = std::min(pause_ms * 2, spec.interval_ms);
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(wake - Clock::now());
    if (cancel_arrived(signal_fd, static_cast<int>(std::max<int64_t>(0, wait.count()))))
      return cancelled();
  }
}

}  // namespace

bool validate_health_spec(std::string_view spec, std::string& error) {
  return parse(spec, error).has_value();
}

proto::JobFinished run_health(std::string_view text, JobContext& job) {
  std::string error;
  const std::optional<HealthSpec> spec = parse(text, error);
  if (!spec) return failed_result(job.job_id(), error);
  if (job.cancel_requested()) return cancelled_before_start(job);
  // The runner blocks the cancel signals; a cancel interrupts any wait through this descriptor.
  const int signal_fd = cancel_signal_fd(error);
  if (signal_fd < 0) return failed_result(job.job_id(), error);
  proto::JobFinished done = run(*spec, signal_fd, job);
  close(signal_fd);
  return done;
}

}  // namespace cutpilot::agent
