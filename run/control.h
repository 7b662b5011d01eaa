// The run's control socket: a unix socket in the state directory (mode 0600) through
// which `cutpilot status`, `approve`, `skip`, `retry` and `abort` reach a running
// cockpit from another tmux pane or a script. One JSON line in, one JSON line out.
#pragma once

#include <poll.h>

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cutpilot::plans {

// Answers a request; the request carries "by" (user@host of the peer, from its uid).
using ControlHandler = std::function<nlohmann::json(const nlohmann::json& request)>;

// The listening socket and its clients; driven by the run's poll loop.
class ControlServer {
 public:
  ControlServer() = default;
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Listens at path (a stale socket there is replaced; a live one is an error).
  bool open(const std::string& path, std::string& error);
  // Adds the listening socket and the clients to fds.
  void prepare(std::vector<pollfd>& fds) const;
  // Accepts clients and answers complete requests.
  void service(const std::vector<pollfd>& fds, const ControlHandler& handler);
  // The socket's path ("" before open).
  const std::string& path() const { return path_; }

 private:
  struct Client {
    int fd = -1;
    std::string in;
    std::string who;
  };
  int listen_fd_ = -1;
  std::string path_;
  std::vector<Client> clients_;
};

// Sends one request to the socket at path and returns the answer; nullopt with error set
// when nobody answers there.
std::optional<nlohmann::json> control_request(const std::string& path,
                                              const nlohmann::json& request, std::string& error);

// user@host of this process (for approvals given on the command line).
std::string operator_identity();

}  // namespace cutpilot::plans
