#include "transport/ssh_process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace cutpilot::transport {
namespace {

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  return args;
}

void read_some(int& fd, std::string& into) {
  char buffer[8192];
  const ssize_t n = read(fd, buffer, sizeof buffer);
  if (n > 0) {
    into.append(buffer, static_cast<size_t>(n));
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    close(fd);
    fd = -1;
  }
}

// Starts argv[0] (searched in PATH) with the given descriptors as its 0, 1 and 2.
// posix_spawn, not fork: the cockpit is large and threaded, and a fork copies its page
// tables (~15 ms of CPU per child on a loaded 2-core VM, once per host for `ssh -G`);
// posix_spawn shares the memory until the exec, as vfork does. -1 and errno when it cannot.
pid_t spawn(const std::vector<std::string>& argv, int in, int out, int err, bool new_session) {
  const std::vector<char*> args = c_argv(argv);
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_adddup2(&actions, in, 0);
  posix_spawn_file_actions_adddup2(&actions, out, 1);
  posix_spawn_file_actions_adddup2(&actions, err, 2);
  // The parent may ignore or block signals (SIGPIPE); the child starts with the defaults.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (new_session) flags |= POSIX_SPAWN_SETSID;  // no controlling terminal: nowhere to prompt
  posix_spawnattr_setflags(&attr, flags);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    errno = rc;
    return -1;
  }
  return pid;
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.pop_back();
  return text;
}

// A listening loopback socket on a port of the kernel's choice; -1 when there is none.
int listen_on_loopback(int& port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(fd, 8) != 0 || getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  port = ntohs(addr.sin_port);
  return fd;
}

// run_command's body; with listener >= 0, each connection to it runs proxy on it.
CommandOutput run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                  const std::string& input, int listener, const std::vector<std::string>& proxy) {
  CommandOutput result;
  int in[2], out[2], err[2];
  // stdin is a socket: a child that exits before reading it cannot SIGPIPE the cockpit.
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0 || pipe2(out, O_CLOEXEC) != 0 ||
      pipe2(err, O_CLOEXEC) != 0) {
    result.error = "pipe failed";
    return result;
  }
  const pid_t pid = spawn(argv, in[0], out[1], err[1], false);
  if (pid < 0) {
    result.error = "cannot run " + argv[0] + ": " + std::strerror(errno);
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]})
      close(fd);
    return result;
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  // Small inputs only (a key for ssh-keygen): it fits the pipe buffer.
  if (!input.empty() && send(in[1], input.data(), input.size(), MSG_NOSIGNAL) < 0)
    result.error = "cannot write to " + argv[0];
  close(in[1]);
  int fds[2] = {out[0], err[0]};
  std::vector<pid_t> proxies;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (fds[0] >= 0 || fds[1] >= 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      kill(pid, SIGKILL);
      result.error = argv[0] + " did not finish within " + std::to_string(timeout.count()) + " ms";
      break;
    }
    pollfd p[3] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}, {listener, POLLIN, 0}};
    if (poll(p, 3, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    if (fds[0] >= 0 && p[0].revents) read_some(fds[0], result.out);
    if (fds[1] >= 0 && p[1].revents) read_some(fds[1], result.err);
    if (listener >= 0 && p[2].revents) {
      const int conn = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      const int quiet = open("/dev/null", O_WRONLY | O_CLOEXEC);
      const pid_t child = conn < 0 || quiet < 0 ? -1 : spawn(proxy, conn, conn, quiet, true);
      if (child > 0) proxies.push_back(child);
      for (int fd : {conn, quiet})
        if (fd >= 0) close(fd);
    }
  }
  for (int fd : fds)
    if (fd >= 0) close(fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  // Its connections are closed now; a proxy still reading one is told to go.
  for (pid_t child : proxies) {
    kill(-child, SIGTERM);
    int ignored = 0;
    while (waitpid(child, &ignored, 0) < 0 && errno == EINTR) {
    }
  }
  if (WIFEXITED(status)) {
    result.exit_status = WEXITSTATUS(status);
    if (result.exit_status == 127 && result.error.empty()) result.error = "cannot run " + argv[0];
  }
  return result;
}

}  // namespace

CommandOutput run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                          const std::string& input) {
  return run(argv, timeout, input, -1, {});
}

CommandOutput run_command_through(const std::function<std::vector<std::string>(int)>& argv_for,
                                  const std::vector<std::string>& proxy,
                                  std::chrono::milliseconds timeout) {
  int port = 0;
  const int listener = listen_on_loopback(port);
  if (listener < 0) {
    CommandOutput result;
    result.error = std::string("cannot listen on the loopback: ") + std::strerror(errno);
    return result;
  }
  CommandOutput result = run(argv_for(port), timeout, "", listener, proxy);
  close(listener);
  return result;
}

ProxyProcess::~ProxyProcess() {
  if (socket_ >= 0) close(socket_);
  if (err_ >= 0) close(err_);
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

bool ProxyProcess::start(const std::vector<std::string>& argv, std::string& error) {
  int pair[2], err[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    error = std::string("cannot create a socket pair: ") + std::strerror(errno);
    return false;
  }
  pid_ = spawn(argv, pair[1], pair[1], err[1], true);
  if (pid_ < 0) {
    error = "cannot run " + argv[0] + ": " + std::strerror(errno);
    for (int fd : {pair[0], pair[1], err[0], err[1]})
      close(fd);
    return false;
  }
  close(pair[1]);
  close(err[1]);
  started_ = true;
  socket_ = pair[0];
  err_ = err[0];
  fcntl(err_, F_SETFL, O_NONBLOCK);
  return true;
}

int ProxyProcess::release_socket() {
  const int fd = socket_;
  socket_ = -1;
  return fd;
}

std::string ProxyProcess::stderr_text(bool wait) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (err_ >= 0) {
    pollfd p{err_, POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (poll(&p, 1, wait ? static_cast<int>(std::max<long>(left.count(), 0)) : 0) <= 0) break;
    read_some(err_, err_text_);
  }
  return trimmed(err_text_);
}

bool ProxyProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

}  // namespace cutpilot::transport
