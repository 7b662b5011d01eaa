#include "agents/db_session.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "agents/db_run.h"

namespace cutpilot::agent {

namespace {

// Output lines wait in a pipe this large while the copy runs and nobody reads them.
constexpr int kPipeBytes = 1 << 20;

}  // namespace

DbSession::DbSession(const Command& command, std::string err_path)
    : err_path_(std::move(err_path)) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) {
    start_error_ = "cannot make a pipe";
    return;
  }
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    start_error_ = "cannot make a pipe";
    return;
  }
  fcntl(out[0], F_SETPIPE_SZ, kPipeBytes);
  const int err = open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  pid_ = spawn_command(command, in[0], out[1], err, start_error_);
  close(in[0]);
  close(out[1]);
  if (err >= 0) close(err);
  in_ = in[1];
  out_ = out[0];
  fcntl(in_, F_SETFL, O_NONBLOCK);
  fcntl(out_, F_SETFL, O_NONBLOCK);
  if (pid_ < 0) ended_ = true;
  write(command.stdin_text);
}

DbSession::~DbSession() {
  if (in_ >= 0) close(in_);
  if (out_ >= 0) close(out_);
  if (pid_ > 0) {
    kill(-pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
}

void DbSession::write(std::string_view sql) {
  pending_ += sql;
  pump(std::chrono::steady_clock::now(), false);
}

bool DbSession::pump(std::chrono::steady_clock::time_point deadline, bool wait) {
  while (!ended_) {
    sigset_t pending;
    sigpending(&pending);
    if (sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT)) return false;
    pollfd fds[2] = {{out_, POLLIN, 0},
                     {in_, static_cast<short>(pending_.empty() ? 0 : POLLOUT), 0}};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    const int timeout = wait ? static_cast<int>(std::clamp<int64_t>(left.count(), 0, 100)) : 0;
    if (poll(fds, 2, timeout) < 0 && errno != EINTR) return false;
    bool moved = false;
    if (fds[1].revents & (POLLOUT | POLLERR)) {
      const ssize_t n = ::write(in_, pending_.data(), pending_.size());
      if (n > 0) pending_.erase(0, static_cast<size_t>(n));
      if (n < 0 && errno != EAGAIN) pending_.clear();  // the client is gone: its exit says why
      moved = n > 0;
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buffer[65536];
      const ssize_t n = read(out_, buffer, sizeof buffer);
      if (n > 0) splitter_.feed(std::string_view(buffer, static_cast<size_t>(n)), lines_);
      if (n == 0) {
        splitter_.finish(lines_);
        ended_ = true;
      }
      moved = moved || n > 0;
    }
    if (!wait && !moved) return true;
    if (wait) return true;
  }
  return false;
}

std::optional<std::vector<std::string>> DbSession::read_until(
    std::string_view marker, std::chrono::steady_clock::time_point deadline, std::string& error) {
  for (;;) {
    const auto found = std::find(lines_.begin(), lines_.end(), marker);
    if (found != lines_.end()) {
      std::vector<std::string> before(lines_.begin(), found);
      lines_.erase(lines_.begin(), found + 1);
      return before;
    }
    if (!start_error_.empty()) {
      error = start_error_;
      return std::nullopt;
    }
    if (ended_) {
      int status = 0;
      if (pid_ > 0 && waitpid(pid_, &status, 0) == pid_) pid_ = -1;
      const std::string said = complaints();
      error = "the client ended" + (said.empty() ? std::string() : ": " + said);
      return std::nullopt;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      error = "no answer in time";
      return std::nullopt;
    }
    if (!pump(deadline, true)) {
      if (ended_) continue;
      error = "cancelled";
      return std::nullopt;
    }
  }
}

std::string DbSession::complaints() const {
  std::ifstream in(err_path_);
  Complaints said;
  std::string line;
  while (std::getline(in, line))
    said.add(line);
  return said.text();
}

}  // namespace cutpilot::agent
