// The Docker Engine API on its unix socket: list, inspect, stop, start and restart
// containers, with dockerd or with podman's compatible service (`podman system service`).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cutpilot::agent {

// The API socket when a spec names none: DOCKER_HOST's unix:// path, else /var/run/docker.sock;
// nullopt with error set when DOCKER_HOST names something else (tcp://, ssh://).
std::optional<std::string> default_docker_socket(std::string& error);

// The label compose puts on every container of a project.
inline constexpr std::string_view kComposeProjectLabel = "com.docker.compose.project";
// The label compose puts on every container of a service.
inline constexpr std::string_view kComposeServiceLabel = "com.docker.compose.service";

// Which containers a check or an action means; every given criterion must hold.
struct ContainerSelector {
  // Container names, or compose service names; each must match at least one container.
  std::vector<std::string> names;
  std::map<std::string, std::string> labels;  // every label must have this value
  std::string project;                        // the compose project (its label)
  // True when nothing is selected by (a check must not mean "every container").
  bool empty() const { return names.empty() && labels.empty() && project.empty(); }
};

// One container as the API describes it (state and health from inspect: podman's list
// has no health).
struct ContainerStatus {
  std::string name;    // without the leading '/'; for a missing one, the name asked for
  std::string id;      // "" when missing
  std::string state;   // created, running, paused, restarting, exited, dead; or "missing"
  std::string health;  // healthy, unhealthy, starting; "" without a health check
  uint64_t restarts = 0;
  uint64_t failing_streak = 0;
  std::string last_check;  // the last health check's output, on one line, cut to 200 bytes
  int exit_code = 0;
  std::string error;  // the runtime's error, if it reported one
};

// A client of one Docker API socket; each call is one request bounded by timeout.
class DockerApi {
 public:
  // cancel_fd: when readable, a request stops with "cancelled" (-1: none).
  DockerApi(std::string socket, std::chrono::milliseconds timeout, int cancel_fd)
      : socket_(std::move(socket)), timeout_(timeout), cancel_fd_(cancel_fd) {}
  // The selected containers, sorted by name, plus a "missing" entry per name that matched none.
  std::optional<std::vector<ContainerStatus>> select(const ContainerSelector& selector,
                                                     std::string& error) const;
  // One container's state and health; nullopt with error set (e.g. "no such container").
  std::optional<ContainerStatus> inspect(const std::string& id, std::string& error) const;
  // Sends action (stop, start, restart) to a container and waits for it; an action with
  // nothing to do ("already stopped") counts as done. stop_timeout_s: before SIGKILL.
  bool control(const std::string& id, std::string_view action, uint64_t stop_timeout_s,
               std::string& error) const;
  // The socket this client talks to.
  const std::string& socket() const { return socket_; }

 private:
  // inspect, with gone set when the container does not exist (any more).
  std::optional<ContainerStatus> inspect_one(const std::string& id, std::string& error,
                                             bool* gone) const;

  std::string socket_;
  std::chrono::milliseconds timeout_;
  int cancel_fd_;
};

}  // namespace cutpilot::agent
