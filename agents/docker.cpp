#include "agents/docker.h"

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "agents/http_client.h"

namespace cutpilot::agent {
namespace {

using Json = nlohmann::json;

// Paths carry no /vX.Y prefix: the daemon then answers in its own current version. A pinned
// one breaks sooner or later (dockerd 29 refuses anything below 1.44, podman 4 serves 1.41);
// the fields read here have been stable since API 1.25.
// The longest health-check output kept.
constexpr size_t kMaxCheckOutput = 200;

// A string member of j, or "" when it is missing or not a string.
std::string text_of(const Json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

uint64_t count_of(const Json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

// Health-check output on one line, cut to kMaxCheckOutput bytes.
std::string one_line(std::string text) {
  for (char& c : text)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  const auto first = text.find_first_not_of(' ');
  const auto last = text.find_last_not_of(' ');
  text = first == std::string::npos ? "" : text.substr(first, last - first + 1);
  if (text.size() > kMaxCheckOutput) text = text.substr(0, kMaxCheckOutput) + "...";
  return text;
}

// One request to the API; the response, or nullopt with error naming the call.
std::optional<HttpResponse> call(const std::string& socket, std::string_view method,
                                 const std::string& path, std::chrono::milliseconds timeout,
                                 int cancel_fd, std::string& error) {
  HttpRequest request;
  request.method = std::string(method);
  request.url = "http://docker" + path;
  request.unix_socket = socket;
  request.timeout = timeout;
  request.cancel_fd = cancel_fd;
  auto response = http_request(request, error);
  if (!response) {
    if (error != "cancelled" && error.starts_with("cannot connect to"))
      error = "Docker API: " + error + " (is dockerd or podman's API service running?)";
    else if (error != "cancelled")
      error = "Docker API: " + std::string(method) + " " + path.substr(0, path.find('?')) + ": " +
              error;
  }
  return response;
}

// The API's own words for a failed call ({"message": ...}), or the status line.
std::string api_error(const HttpResponse& response) {
  const Json j = Json::parse(response.body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string())
    return j["message"].get<std::string>();
  return std::to_string(response.status) + " " + response.reason;
}

// GETs path as JSON; not_found (when given) tells a 404 apart from other failures.
std::optional<Json> get_json(const std::string& socket, const std::string& path,
                             std::chrono::milliseconds timeout, int cancel_fd, std::string& error,
                             bool* not_found = nullptr) {
  const auto response = call(socket, "GET", path, timeout, cancel_fd, error);
  if (!response) return std::nullopt;
  if (not_found) *not_found = response->status == 404;
  if (response->status != 200) {
    error = "Docker API: GET " + path.substr(0, path.find('?')) + ": " + api_error(*response);
    return std::nullopt;
  }
  Json j = Json::parse(response->body, nullptr, false);
  if (j.is_discarded() || response->truncated) {
    error = "Docker API: GET " + path.substr(0, path.find('?')) + ": the answer is not JSON";
    return std::nullopt;
  }
  return j;
}

ContainerStatus status_from_inspect(const Json& j) {
  ContainerStatus c;
  c.id = text_of(j, "Id");
  c.name = text_of(j, "Name");
  if (c.name.starts_with("/")) c.name.erase(0, 1);
  c.restarts = count_of(j, "RestartCount");
  const Json state = j.value("State", Json::object());
  if (!state.is_object()) return c;
  c.state = text_of(state, "Status");
  c.error = one_line(text_of(state, "Error"));
  if (state.contains("ExitCode") && state["ExitCode"].is_number_integer())
    c.exit_code = state["ExitCode"].get<int>();
  // dockerd leaves Health out without a health check; podman sends it with Status "".
  const Json health = state.value("Health", Json::object());
  if (health.is_object()) {
    c.health = text_of(health, "Status");
    c.failing_streak = count_of(health, "FailingStreak");
    const auto log = health.find("Log");
    if (log != health.end() && log->is_array() && !log->empty() && log->back().is_object())
      c.last_check = one_line(text_of(log->back(), "Output"));
  }
  return c;
}

}  // namespace

std::optional<std::string> default_docker_socket(std::string& error) {
  const char* host = std::getenv("DOCKER_HOST");
  if (!host || !*host) return std::string("/var/run/docker.sock");
  const std::string value = host;
  if (value.starts_with("unix://")) return value.substr(7);
  error = "DOCKER_HOST=" + value + " is not a unix:// socket; name the socket in the spec";
  return std::nullopt;
}

std::optional<ContainerStatus> DockerApi::inspect(const std::string& id, std::string& error) const {
  return inspect_one(id, error, nullptr);
}

std::optional<ContainerStatus> DockerApi::inspect_one(const std::string& id, std::string& error,
                                                      bool* gone) const {
  const auto j = get_json(socket_, "/containers/" + url_encode(id) + "/json", timeout_, cancel_fd_,
                          error, gone);
  if (!j) return std::nullopt;
  if (!j->is_object()) {
    error = "Docker API: inspect " + id + ": not an object";
    return std::nullopt;
  }
  return status_from_inspect(*j);
}

std::optional<std::vector<ContainerStatus>> DockerApi::select(const ContainerSelector& selector,
                                                              std::string& error) const {
  Json labels = Json::array();
  for (const auto& [key, value] : selector.labels)
    labels.push_back(key + "=" + value);
  if (!selector.project.empty())
    labels.push_back(std::string(kComposeProjectLabel) + "=" + selector.project);
  std::string path = "/containers/json?all=1";
  if (!labels.empty()) path += "&filters=" + url_encode(Json{{"label", labels}}.dump());
  const auto listed = get_json(socket_, path, timeout_, cancel_fd_, error);
  if (!listed) return std::nullopt;
  if (!listed->is_array()) {
    error = "Docker API: the container list is not an array";
    return std::nullopt;
  }
  // Names are matched here, exactly: the API's name filter is a regular expression.
  std::set<std::string> unmatched(selector.names.begin(), selector.names.end());
  std::vector<ContainerStatus> found;
  for (const auto& entry : *listed) {
    if (!entry.is_object()) continue;
    std::string name;
    if (const auto names = entry.find("Names");
        names != entry.end() && names->is_array() && !names->empty() && names->front().is_string())
      name = names->front().get<std::string>();
    if (name.starts_with("/")) name.erase(0, 1);
    const Json entry_labels = entry.value("Labels", Json::object());
    const std::string service =
        entry_labels.is_object() ? text_of(entry_labels, kComposeServiceLabel.data()) : "";
    if (!selector.names.empty()) {
      const bool by_name = std::count(selector.names.begin(), selector.names.end(), name) > 0;
      const bool by_service =
          !service.empty() && std::count(selector.names.begin(), selector.names.end(), service);
      if (!by_name && !by_service) continue;
      unmatched.erase(name);
      unmatched.erase(service);
    }
    bool gone = false;
    auto status = inspect_one(text_of(entry, "Id"), error, &gone);
    if (!status && gone) continue;  // removed between the list and the inspect
    if (!status) return std::nullopt;
    found.push_back(std::move(*status));
  }
  for (const auto& name : unmatched)
    found.push_back({.name = name, .state = "missing"});
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return std::tie(a.name, a.id) < std::tie(b.name, b.id);
  });
  return found;
}

bool DockerApi::control(const std::string& id, std::string_view action, uint64_t stop_timeout_s,
                        std::string& error) const {
  std::string path = "/containers/" + url_encode(id) + "/" + std::string(action);
  auto timeout = timeout_;
  if (action != "start") {
    path += "?t=" + std::to_string(stop_timeout_s);
    // The call returns once the container stopped: allow the grace period and then some.
    timeout = std::max(timeout, std::chrono::milliseconds((stop_timeout_s + 30) * 1000));
  }
  const auto response = call(socket_, "POST", path, timeout, cancel_fd_, error);
  if (!response) return false;
  if (response->status == 204 || response->status == 304) return true;
  error = std::string(action) + " " + id + ": " + api_error(*response);
  return false;
}

}  // namespace cutpilot::agent
