// A child process with pipes on stdin/stdout/stderr, for tests that drive real binaries.
// Every wait is bounded so a hung child fails the test instead of hanging it.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace cutpilot::test {

// A running program whose standard streams the test holds.
class Child {
 public:
  // Starts argv[0] (searched in PATH) with pipes on all three streams.
  explicit Child(const std::vector<std::string>& argv) {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
      throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      dup2(err[1], 2);
      std::vector<char*> args;
      for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execvp(args[0], args.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    in_ = in[1];
    out_ = out[0];
    err_ = err[0];
    signal(SIGPIPE, SIG_IGN);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    close_stdin();
    if (out_ >= 0) close(out_);
    if (err_ >= 0) close(err_);
    if (!status_) {
      kill(pid_, SIGKILL);
      int s;
      waitpid(pid_, &s, 0);
    }
  }

  // Writes all of data to the child's stdin; false if the child closed it.
  bool write(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::write(in_, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Closes the child's stdin (EOF for the child).
  void close_stdin() {
    if (in_ >= 0) close(in_);
    in_ = -1;
  }
  // Reads what stdout has within timeout; "" at EOF or on timeout.
  std::string read_some(std::chrono::milliseconds timeout) { return read_fd(out_, timeout); }
  // Reads stdout until it holds at least n bytes or the deadline passes.
  std::string read_at_least(size_t n, std::chrono::milliseconds timeout) {
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (got.size() < n) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      std::string chunk = read_fd(out_, left);
      if (chunk.empty()) break;
      got += chunk;
    }
    return got;
  }
  // Everything the child wrote to stderr until it closed it (bounded by timeout).
  std::string read_stderr(std::chrono::milliseconds timeout) {
    std::string all, chunk;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!(chunk = read_fd(err_, std::chrono::duration_cast<std::chrono::milliseconds>(
                                       deadline - std::chrono::steady_clock::now())))
                .empty())
      all += chunk;
    return all;
  }
  // Waits for the child to exit; its exit status, or nullopt on timeout (or a signal: 128+N).
  std::optional<int> wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!status_) {
      int s = 0;
      pid_t r = waitpid(pid_, &s, WNOHANG);
      if (r == pid_) {
        status_ = WIFEXITED(s) ? WEXITSTATUS(s) : 128 + WTERMSIG(s);
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
      usleep(5000);
    }
    return status_;
  }

 private:
  static std::string read_fd(int fd, std::chrono::milliseconds timeout) {
    if (timeout.count() < 0) return "";
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(timeout.count())) <= 0) return "";
    char buffer[65536];
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
  }

  pid_t pid_ = -1;
  int in_ = -1, out_ = -1, err_ = -1;
  std::optional<int> status_;
};

// Runs a shell command and returns its stdout (for `file`, `ldd`, ...).
inline std::string capture(const std::string& command) {
  std::string out;
  if (FILE* p = popen(command.c_str(), "r")) {
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, p)) > 0)
      out.append(buffer, n);
    pclose(p);
  }
  return out;
}

// The first line a shell command prints, without its newline.
inline std::string capture_line(const std::string& command) {
  std::string out = capture(command);
  const size_t newline = out.find('\n');
  return newline == std::string::npos ? out : out.substr(0, newline);
}

}  // namespace cutpilot::test
