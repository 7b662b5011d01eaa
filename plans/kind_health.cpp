// The health action kind: containers, HTTP, TCP, disk, load, systemd and DNS checks.
#include <arpa/inet.h>

#include "plans/duration.h"
#include "plans/kinds.h"
#include "plans/size.h"

namespace cutpilot::plans {
namespace {

using Json = nlohmann::json;

// The keys that name a check, in HealthCheck order; the one present says the kind.
constexpr std::string_view kChecks[] = {"containers", "http",    "tcp", "disk",
                                        "load",       "systemd", "dns"};
constexpr std::string_view kRecordTypes[] = {"A", "AAAA"};
constexpr std::string_view kModes[] = {"once", "wait", "watch"};
constexpr std::string_view kContainerActions[] = {"stop", "start", "restart"};
constexpr std::string_view kTcpExpect[] = {"open", "closed"};
// The shortest interval between two looks (agents/health_job.h).
constexpr Millis kMinInterval{50};

// A port written in a plan: 1 to 65535 in decimal digits; nullopt otherwise.
std::optional<uint16_t> port_number(const std::string& text) {
  if (text.empty() || text.size() > 5 || text.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  const unsigned long port = std::stoul(text);
  if (port == 0 || port > 65535) return std::nullopt;
  return static_cast<uint16_t>(port);
}

// A health table as read: which checks it named and which check-only keys it used.
struct HealthRead : HealthAction {
  std::vector<HealthCheck> named;
  // A key that belongs to one check kind, where it was written.
  struct Used {
    std::string_view key;
    HealthCheck check;
    SourcePos pos;
  };
  std::vector<Used> used;
  std::optional<SourcePos> expect_pos;  // where `expect` was written
};

// Records that a check-only key was used (checked against the check kind afterwards).
void used(Reader& r, const Entry& e, HealthRead& x, HealthCheck check) {
  x.used.push_back({e.key, check, r.source().key_pos(e.value, e.key)});
}

void read_containers(Reader& r, const Entry& e, HealthRead& x) {
  x.named.push_back(HealthCheck::kContainers);
  if (!e.value.is_table()) {
    if (auto v = r.strings(e, /*single=*/true, /*allow_empty=*/false)) x.names = *v;
    return;
  }
  for (const auto& [key, value] : r.source().entries_in_order(e.value)) {
    const Entry item{e.section, *key, *value};
    if (*key == "names") {
      if (auto v = r.strings(item, true, false)) x.names = *v;
    } else if (*key == "labels") {
      if (auto v = r.string_map(item)) x.labels = *v;
    } else if (*key == "project") {
      if (auto v = r.string(item)) x.project = *v;
    } else {
      r.error(r.source().key_pos(*value, *key),
              "unknown key " + quote(*key) + " in 'containers' of " + std::string(e.section) +
                  did_you_mean(*key, {"names", "labels", "project"}));
    }
  }
  if (x.names.empty() && x.labels.empty() && !x.project)
    r.value_error(e, "must select containers by names, labels or project");
}

// A key of one check kind: recorded (to be checked against the kind), then read by Read.
template <HealthCheck Check, void (*Read)(Reader&, const Entry&, HealthRead&)>
void only_for(Reader& r, const Entry& e, HealthRead& x) {
  used(r, e, x, Check);
  Read(r, e, x);
}

constexpr FieldSpec<HealthRead> kHealthFields[] = {
    {"containers", read_containers},
    {"http",
     [](Reader& r, const Entry& e, HealthRead& x) {
       x.named.push_back(HealthCheck::kHttp);
       auto v = r.string(e);
       if (v && v->rfind("http://", 0) != 0 && v->rfind("https://", 0) != 0)
         r.value_error(e, "must be an http:// or https:// URL");
       if (v) x.url = std::move(*v);
     }},
    {"tcp",
     [](Reader& r, const Entry& e, HealthRead& x) {
       x.named.push_back(HealthCheck::kTcp);
       auto v = r.string(e);
       if (!v) return;
       const size_t colon = v->rfind(':');
       const std::string port = colon == std::string::npos ? "" : v->substr(colon + 1);
       std::string address = colon == std::string::npos ? "" : v->substr(0, colon);
       if (address.size() > 2 && address.front() == '[' && address.back() == ']')
         address = address.substr(1, address.size() - 2);
       const std::optional<uint16_t> number = port_number(port);
       if (address.empty() || !number) {
         r.value_error(e, "must be ADDRESS:PORT, not " + quote(*v));
         return;
       }
       x.address = address;
       x.port = *number;
     }},
    {"disk",
     [](Reader& r, const Entry& e, HealthRead& x) {
       x.named.push_back(HealthCheck::kDisk);
       auto v = r.string(e);
       if (v && v->front() != '/') r.value_error(e, "must be an absolute path");
       if (v) x.path = std::move(*v);
     }},
    {"load",
     [](Reader& r, const Entry& e, HealthRead& x) {
       x.named.push_back(HealthCheck::kLoad);
       if (auto v = r.number(e, 0.01, 1e6)) x.max_load1 = *v;
     }},
    {"systemd",
     [](Reader& r, const Entry& e, HealthRead& x) {
       x.named.push_back(HealthCheck::kSystemd);
       if (auto v = r.string(e)) x.unit = std::move(*v);
     }},
    {"dns",
     [](Reader& r, const Entry& e, HealthRead& x) {
       x.named.push_back(HealthCheck::kDns);
       if (auto v = r.string(e)) x.dns_name = std::move(*v);
     }},
    {"servers",
     [](Reader& r, const Entry& e, HealthRead& x) {
       used(r, e, x, HealthCheck::kDns);
       if (auto v = r.strings(e, /*single=*/true, /*allow_empty=*/false)) x.servers = *v;
     }},
    {"type",
     [](Reader& r, const Entry& e, HealthRead& x) {
       used(r, e, x, HealthCheck::kDns);
       if (auto v = r.choice(e, kRecordTypes)) x.record_type = std::move(*v);
     }},
    {"max_ttl",
     [](Reader& r, const Entry& e, HealthRead& x) {
       used(r, e, x, HealthCheck::kDns);
       auto v = r.duration(e);
       if (v && *v % std::chrono::seconds(1) != Millis(0))
         r.value_error(e, "must be a whole number of seconds (a TTL is)");
       else if (v)
         x.max_ttl = *v;
     }},
    {"mode",
     [](Reader& r, const Entry& e, HealthRead& x) {
       if (auto v = r.choice(e, kModes))
         x.mode = *v == "once"   ? HealthMode::kOnce
                  : *v == "wait" ? HealthMode::kWait
                                 : HealthMode::kWatch;
     }},
    {"timeout", read_time<HealthRead, &HealthAction::timeout>},
    {"interval",
     [](Reader& r, const Entry& e, HealthRead& x) {
       auto v = r.duration(e);
       if (v && *v < kMinInterval) r.value_error(e, "must be at least 50ms");
       if (v) x.interval = *v;
     }},
    {"request_timeout", read_time<HealthRead, &HealthAction::request_timeout>},
    {"socket", only_for<HealthCheck::kContainers, read_text<HealthRead, &HealthAction::socket>>},
    {"action",
     [](Reader& r, const Entry& e, HealthRead& x) {
       used(r, e, x, HealthCheck::kContainers);
       if (auto v = r.choice(e, kContainerActions)) x.container_action = std::move(*v);
     }},
    {"stop_timeout",
     [](Reader& r, const Entry& e, HealthRead& x) {
       used(r, e, x, HealthCheck::kContainers);
       auto v = r.duration(e);
       if (v && *v % std::chrono::seconds(1) != Millis(0))
         r.value_error(e, "must be a whole number of seconds");
       else if (v)
         x.stop_timeout_s = static_cast<uint64_t>(v->count() / 1000);
     }},
    {"expect_status",
     [](Reader& r, const Entry& e, HealthRead& x) {
       used(r, e, x, HealthCheck::kHttp);
       if (auto v = r.integer(e, 100, 599)) x.expect_status = static_cast<uint16_t>(*v);
     }},
    {"expect_body",
     only_for<HealthCheck::kHttp, read_text<HealthRead, &HealthAction::expect_body>>},
    {"host_header",
     only_for<HealthCheck::kHttp, read_text<HealthRead, &HealthAction::host_header>>},
    {"connect_to", only_for<HealthCheck::kHttp, read_text<HealthRead, &HealthAction::connect_to>>},
    {"tls_verify", only_for<HealthCheck::kHttp, read_flag<HealthRead, &HealthAction::tls_verify>>},
    {"ca_file",
     [](Reader& r, const Entry& e, HealthRead& x) {
       used(r, e, x, HealthCheck::kHttp);
       if (r.expands_to_nothing(e)) return;  // "${env:CA:-}": the system's trust store
       if (auto v = r.string(e)) x.ca_file = std::move(*v);
     }},
    // tcp: open | closed; systemd: any ActiveState; dns: the addresses. Checked against the
    // kind afterwards.
    {"expect",
     [](Reader& r, const Entry& e, HealthRead& x) {
       used(r, e, x, HealthCheck::kTcp);
       auto v = r.strings(e, /*single=*/true, /*allow_empty=*/false);
       if (!v) return;
       x.expect_addresses = *v;
       x.expect = v->front();
       x.expect_pos = r.source().pos_of(e.value);
     }},
    {"min_free",
     [](Reader& r, const Entry& e, HealthRead& x) {
       used(r, e, x, HealthCheck::kDisk);
       if (auto v = r.size(e)) x.min_free_bytes = *v;
     }},
    {"min_free_percent",
     [](Reader& r, const Entry& e, HealthRead& x) {
       used(r, e, x, HealthCheck::kDisk);
       if (auto v = r.number(e, 0, 100)) x.min_free_percent = *v;
     }},
};

std::string check_name(HealthCheck check) {
  return std::string(kChecks[static_cast<int>(check)]);
}

// How long a look lasts in words: "wait up to 5m until", "check once that", "watch for 1h that".
std::string mode_words(const HealthAction& h) {
  switch (h.mode) {
    case HealthMode::kOnce:
      return "check once that ";
    case HealthMode::kWait:
      return "wait up to " + format_duration(h.timeout.value_or(std::chrono::minutes(5))) +
             " until ";
    case HealthMode::kWatch:
      return h.timeout ? "watch for " + format_duration(*h.timeout) + " that "
                       : "watch until cancelled that ";
  }
  return "";
}

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& word : words)
    out += (out.empty() ? "" : ", ") + word;
  return out;
}

}  // namespace

bool valid_dns_server(const std::string& text) {
  std::string address = text;
  std::string port;
  if (text.size() > 2 && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos) return false;
    address = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') return false;
      port = text.substr(close + 2);
    }
  } else if (const size_t colon = text.find(':');
             colon != std::string::npos && text.find(':', colon + 1) == std::string::npos) {
    address = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (port.empty()) return false;
  }
  if (!port.empty() && !port_number(port)) return false;
  in6_addr bytes{};
  return inet_pton(AF_INET, address.c_str(), &bytes) == 1 ||
         inet_pton(AF_INET6, address.c_str(), &bytes) == 1;
}

std::optional<Action> read_health_action(ActionInput& input) {
  Reader& reader = input.reader;
  const toml::value& table = input.entry.value;
  const size_t before = reader.diagnostics().size();
  const size_t unknown = reader.unknown_keys();
  HealthRead read;
  if (!read_action_table<HealthRead>(input, kHealthFields, read,
                                     "{ containers = [\"web\"], timeout = \"5m\" }"))
    return std::nullopt;
  HealthAction& health = read;
  const SourcePos at = reader.source().pos_of(table);
  if (read.named.empty() && reader.unknown_keys() != unknown) return std::nullopt;  // misspelt
  if (read.named.size() != 1) {
    std::string kinds;
    for (const std::string_view check : kChecks)
      kinds += (kinds.empty() ? "" : ", ") + std::string(check);
    reader.error(at, input.section + " needs exactly one check: " + kinds);
    return std::nullopt;
  }
  health.check = read.named.front();
  for (const HealthRead::Used& key : read.used) {
    const bool fits = key.check == health.check ||
                      (key.key == "expect" && (health.check == HealthCheck::kSystemd ||
                                               health.check == HealthCheck::kDns));
    if (!fits)
      reader.error(key.pos, quote(key.key) + " in " + input.section + " is for " +
                                (key.key == "expect" ? std::string("tcp, systemd and dns")
                                                     : check_name(key.check)) +
                                " checks, not " + check_name(health.check));
  }
  if (health.check == HealthCheck::kDns) {
    health.expect.reset();
  } else {
    if (read.expect_addresses.size() > 1)
      reader.error(*read.expect_pos, "'expect' in " + input.section + " takes one value for a " +
                                         check_name(health.check) + " check");
    health.expect_addresses.clear();
  }
  if (health.check == HealthCheck::kDns) {
    const int family = health.record_type == "A" ? AF_INET : AF_INET6;
    for (const std::string& address : health.expect_addresses) {
      in6_addr bytes{};
      if (inet_pton(family, address.c_str(), &bytes) != 1)
        reader.error(*read.expect_pos, "'expect' in " + input.section + ": " + quote(address) +
                                           " is not an " + (family == AF_INET ? "IPv4" : "IPv6") +
                                           " address (type " + health.record_type + ")");
    }
    for (const std::string& server : health.servers)
      if (!valid_dns_server(server))
        reader.error(at, input.section + ": dns server " + quote(server) +
                             " must be an IP address with an optional port (\"192.0.2.53\", "
                             "\"127.0.0.1:5353\", \"[2001:db8::53]:53\")");
  }
  if (health.check == HealthCheck::kTcp && health.expect &&
      std::find(std::begin(kTcpExpect), std::end(kTcpExpect), *health.expect) ==
          std::end(kTcpExpect))
    reader.error(at, input.section + " expects " + quote(*health.expect) +
                         "; a tcp check expects \"open\" or \"closed\"");
  if (health.check == HealthCheck::kDisk && !health.min_free_bytes && !health.min_free_percent)
    reader.error(at, input.section + " needs 'min_free' (a size) or 'min_free_percent'");
  if (errors_since(reader, before)) return std::nullopt;
  return Action(std::move(health));
}

Translation health_job(const HealthAction& h, const JobInput&) {
  static constexpr const char* kModeNames[] = {"once", "wait", "watch"};
  Json spec = {{"check", check_name(h.check)}, {"mode", kModeNames[static_cast<int>(h.mode)]}};
  if (h.timeout) spec["timeout_ms"] = h.timeout->count();
  if (h.interval) spec["interval_ms"] = h.interval->count();
  if (h.request_timeout) spec["request_timeout_ms"] = h.request_timeout->count();
  const auto put = [&spec](const char* key, const auto& value) {
    if (value) spec[key] = *value;
  };
  switch (h.check) {
    case HealthCheck::kContainers: {
      Json select = Json::object();
      if (!h.names.empty()) select["names"] = h.names;
      if (!h.labels.empty()) select["labels"] = h.labels;
      if (h.project) select["project"] = *h.project;
      spec["select"] = select;
      put("socket", h.socket);
      put("action", h.container_action);
      put("stop_timeout_s", h.stop_timeout_s);
      break;
    }
    case HealthCheck::kHttp:
      spec["url"] = h.url;
      put("expect_status", h.expect_status);
      put("expect_body", h.expect_body);
      put("host_header", h.host_header);
      put("connect_to", h.connect_to);
      put("tls_verify", h.tls_verify);
      put("ca_file", h.ca_file);
      break;
    case HealthCheck::kTcp:
      spec["address"] = h.address;
      spec["port"] = h.port;
      put("expect", h.expect);
      break;
    case HealthCheck::kDisk:
      spec["path"] = h.path;
      put("min_free_bytes", h.min_free_bytes);
      put("min_free_percent", h.min_free_percent);
      break;
    case HealthCheck::kLoad:
      spec["max_load1"] = h.max_load1;
      break;
    case HealthCheck::kSystemd:
      spec["unit"] = h.unit;
      put("expect", h.expect);
      break;
    case HealthCheck::kDns:
      spec["name"] = h.dns_name;
      spec["record_type"] = h.record_type;
      if (!h.servers.empty()) spec["servers"] = h.servers;
      if (!h.expect_addresses.empty()) spec["expect_addresses"] = h.expect_addresses;
      if (h.max_ttl) spec["max_ttl_s"] = h.max_ttl->count() / 1000;
      break;
  }
  return make_job("health", spec);
}

std::string describe_health(const HealthAction& h, const DescribeInput&) {
  std::string what;
  switch (h.check) {
    case HealthCheck::kContainers: {
      std::vector<std::string> select;
      if (!h.names.empty()) select.push_back(joined(h.names));
      for (const auto& [key, value] : h.labels)
        select.push_back("label " + key + "=" + value);
      if (h.project) select.push_back("compose project " + *h.project);
      const std::string containers = "containers " + joined(select);
      if (h.container_action == "stop")
        return "stop " + containers + ", then " + mode_words(h) + "they are stopped";
      if (h.container_action)
        return *h.container_action + " " + containers + ", then " + mode_words(h) +
               "they are running and healthy";
      what = containers + " are running and healthy";
      break;
    }
    case HealthCheck::kHttp:
      what = "GET " + h.url;
      if (h.connect_to) what += " (connecting to " + *h.connect_to + ")";
      if (h.host_header) what += " with Host: " + *h.host_header;
      what += " answers " + std::to_string(h.expect_status.value_or(200));
      if (h.expect_body) what += " containing " + quote(*h.expect_body);
      break;
    case HealthCheck::kTcp:
      what = h.address + ":" + std::to_string(h.port) + " is " + h.expect.value_or("open");
      break;
    case HealthCheck::kDisk:
      what = h.path + " has at least ";
      if (h.min_free_bytes) what += format_size(*h.min_free_bytes) + " free";
      if (h.min_free_bytes && h.min_free_percent) what += " and ";
      if (h.min_free_percent) {
        char percent[32];
        std::snprintf(percent, sizeof percent, "%g%% free", *h.min_free_percent);
        what += percent;
      }
      break;
    case HealthCheck::kLoad: {
      char load[48];
      std::snprintf(load, sizeof load, "the 1-minute load is at most %g", h.max_load1);
      what = load;
      break;
    }
    case HealthCheck::kSystemd:
      what = "systemd unit " + h.unit + " is " + h.expect.value_or("active");
      break;
    case HealthCheck::kDns:
      what = (h.servers.empty() ? std::string("the host's resolvers") : joined(h.servers)) +
             " answer " + h.dns_name + " " + h.record_type +
             (h.expect_addresses.empty() ? " with any address" : " " + joined(h.expect_addresses));
      if (h.max_ttl) what += ", TTL at most " + format_duration(*h.max_ttl);
      break;
  }
  return mode_words(h) + what;
}

}  // namespace cutpilot::plans
