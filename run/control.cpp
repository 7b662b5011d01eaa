#include "run/control.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace cutpilot::plans {
namespace {

// Requests are small; a client that sends more is dropped.
constexpr size_t kMaxRequest = 64 * 1024;
// How long a client may take to answer or be answered.
constexpr int kClientTimeoutMs = 5000;

bool make_address(const std::string& path, sockaddr_un& address, std::string& error) {
  address = {};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) {
    error = "the control socket path is too long for a unix socket (" +
            std::to_string(path.size()) + " bytes): " + path + " — use a shorter --state-dir";
    return false;
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return true;
}

std::string user_name(uid_t uid) {
  if (const passwd* pw = getpwuid(uid)) return pw->pw_name;
  return "uid" + std::to_string(uid);
}

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

// Writes line to a socket. MSG_NOSIGNAL: a peer that hung up is EPIPE here, never a SIGPIPE
// that ends the cockpit (or the `cutpilot status` client).
void write_line(int fd, const std::string& line) {
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = send(fd, line.data() + done, line.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

}  // namespace

std::string operator_identity() {
  return user_name(getuid()) + "@" + host_name();
}

ControlServer::~ControlServer() {
  for (const auto& c : clients_)
    close(c.fd);
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    unlink(path_.c_str());
  }
}

bool ControlServer::open(const std::string& path, std::string& error) {
  sockaddr_un address;
  if (!make_address(path, address, error)) return false;
  std::string probe_error;
  if (control_request(path, {{"cmd", "ping"}}, probe_error)) {
    error = "another cockpit is running this run (its control socket " + path + " answers)";
    return false;
  }
  unlink(path.c_str());  // a stale socket left by a cockpit that was killed
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const mode_t old_mask = umask(0177);
  const bool bound = listen_fd_ >= 0 &&
                     bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  umask(old_mask);
  if (!bound || chmod(path.c_str(), 0600) != 0 || listen(listen_fd_, 8) != 0) {
    error = "cannot listen on the control socket " + path + ": " + std::strerror(errno);
    return false;
  }
  path_ = path;
  return true;
}

void ControlServer::prepare(std::vector<pollfd>& fds) const {
  if (listen_fd_ >= 0) fds.push_back({listen_fd_, POLLIN, 0});
  for (const auto& c : clients_)
    fds.push_back({c.fd, POLLIN, 0});
}

void ControlServer::service(const std::vector<pollfd>&, const ControlHandler& handler) {
  if (listen_fd_ < 0) return;
  for (;;) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) break;
    ucred cred{};
    socklen_t length = sizeof cred;
    Client client{fd, "", ""};
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) == 0)
      client.who = user_name(cred.uid) + "@" + host_name();
    timeval timeout{kClientTimeoutMs / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    clients_.push_back(std::move(client));
  }
  for (auto& c : clients_) {
    char buffer[4096];
    ssize_t n;
    bool closed = false;
    while ((n = read(c.fd, buffer, sizeof buffer)) > 0)
      c.in.append(buffer, static_cast<size_t>(n));
    if (n == 0) closed = true;
    const size_t newline = c.in.find('\n');
    if (newline == std::string::npos) {
      if (closed || c.in.size() > kMaxRequest) {
        close(c.fd);
        c.fd = -1;
      }
      continue;
    }
    nlohmann::json request = nlohmann::json::parse(c.in.substr(0, newline), nullptr, false);
    nlohmann::json answer;
    if (!request.is_object()) {
      answer = {{"ok", false}, {"error", "a request is one JSON object on one line"}};
    } else {
      request["by"] = c.who;
      answer = handler(request);
    }
    write_line(c.fd, answer.dump() + "\n");
    close(c.fd);
    c.fd = -1;
  }
  clients_.erase(
      std::remove_if(clients_.begin(), clients_.end(), [](const Client& c) { return c.fd < 0; }),
      clients_.end());
}

std::optional<nlohmann::json> control_request(const std::string& path,
                                              const nlohmann::json& request, std::string& error) {
  sockaddr_un address;
  if (!make_address(path, address, error)) return std::nullopt;
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    error = "no cockpit answers at " + path + ": " + std::strerror(errno);
    if (fd >= 0) close(fd);
    return std::nullopt;
  }
  timeval timeout{kClientTimeoutMs / 1000, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  write_line(fd, request.dump() + "\n");
  std::string in;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof buffer)) > 0) {
    in.append(buffer, static_cast<size_t>(n));
    if (in.find('\n') != std::string::npos) break;
  }
  close(fd);
  auto answer = nlohmann::json::parse(in.substr(0, in.find('\n')), nullptr, false);
  if (!answer.is_object()) {
    error = in.empty() ? "the cockpit at " + path + " did not answer in time"
                       : "the cockpit at " + path + " answered something unreadable";
    return std::nullopt;
  }
  return answer;
}

}  // namespace cutpilot::plans
