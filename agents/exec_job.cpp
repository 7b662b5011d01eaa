#include "agents/exec_job.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

namespace cutpilot::agent {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

// How long a process group gets between SIGTERM and SIGKILL.
constexpr auto kKillGrace = std::chrono::seconds(2);
// How long output is still read after the command exited (a background child may hold the pipes).
constexpr auto kDrainAfterExit = std::chrono::seconds(2);

bool fail(std::string& error, std::string message) {
  error = std::move(message);
  return false;
}

bool parse_into(const Json& j, ExecSpec& spec, std::string& error) {
  if (!j.is_object()) return fail(error, "the exec spec must be a JSON object");
  for (const auto& [key, value] : j.items()) {
    if (key == "argv") {
      if (!value.is_array() || value.empty())
        return fail(error, "\"argv\" must be a non-empty array of strings");
      for (const auto& arg : value) {
        if (!arg.is_string()) return fail(error, "\"argv\" must be a non-empty array of strings");
        spec.argv.push_back(arg.get<std::string>());
      }
    } else if (key == "shell") {
      if (!value.is_string() || value.get<std::string>().empty())
        return fail(error, "\"shell\" must be a non-empty string");
    } else if (key == "env") {
      if (!value.is_object()) return fail(error, "\"env\" must be an object of strings");
      for (const auto& [name, v] : value.items()) {
        if (!v.is_string() || name.empty() || name.find('=') != std::string::npos)
          return fail(error,
                      "\"env\" must map variable names to strings (bad entry \"" + name + "\")");
        spec.env[name] = v.get<std::string>();
      }
    } else if (key == "cwd") {
      if (!value.is_string()) return fail(error, "\"cwd\" must be a string");
      spec.cwd = value.get<std::string>();
    } else if (key == "timeout_ms") {
      if (!value.is_number_unsigned())
        return fail(error, "\"timeout_ms\" must be a non-negative integer");
      spec.timeout_ms = value.get<uint64_t>();
    } else {
      return fail(error, "unknown exec field \"" + key +
                             "\" (expected argv or shell, env, cwd, timeout_ms)");
    }
  }
  const bool has_argv = j.contains("argv"), has_shell = j.contains("shell");
  if (has_argv == has_shell) return fail(error, "the exec spec needs exactly one of argv or shell");
  if (has_shell) spec.argv = {"/bin/sh", "-c", j["shell"].get<std::string>()};
  return true;
}

// Why the command could not be started: written by the child to a close-on-exec pipe.
struct StartFailure {
  int stage = 0;  // 1: chdir, 2: exec
  int error = 0;
};

[[noreturn]] void exec_child(const ExecSpec& spec, int out, int err, int report) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);
  setpgid(0, 0);
  dup2(out, 1);
  dup2(err, 2);
  StartFailure failure;
  if (!spec.cwd.empty() && chdir(spec.cwd.c_str()) != 0) {
    failure = {1, errno};
  } else {
    for (const auto& [name, value] : spec.env)
      setenv(name.c_str(), value.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : spec.argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    failure = {2, errno};
  }
  [[maybe_unused]] ssize_t n = write(report, &failure, sizeof failure);
  _exit(127);
}

int exit_code_of(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int ms_until(Clock::time_point when) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(when - Clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

}  // namespace

std::optional<ExecSpec> parse_exec_spec(std::string_view json, std::string& error) {
  const Json j = Json::parse(json.begin(), json.end(), nullptr, false);
  if (j.is_discarded()) {
    error = "the exec spec is not valid JSON";
    return std::nullopt;
  }
  ExecSpec spec;
  if (!parse_into(j, spec, error)) return std::nullopt;
  return spec;
}

void LineSplitter::feed(std::string_view bytes, std::vector<std::string>& lines) {
  while (!bytes.empty()) {
    const size_t newline = bytes.find('\n');
    const std::string_view piece = bytes.substr(0, newline);
    if (!skipping_) {
      const size_t room = kMaxLineBytes - partial_.size();
      if (piece.size() > room) {
        // Cut as soon as the line is too long, so memory stays bounded.
        partial_.append(piece.substr(0, room));
        lines.push_back(partial_ + std::string(kCutMarker));
        partial_.clear();
        skipping_ = true;
      } else {
        partial_.append(piece);
      }
    }
    if (newline == std::string_view::npos) break;
    if (!skipping_) lines.push_back(std::move(partial_));
    partial_.clear();
    skipping_ = false;
    bytes.remove_prefix(newline + 1);
  }
}

void LineSplitter::finish(std::vector<std::string>& lines) {
  if (!skipping_ && !partial_.empty()) lines.push_back(std::move(partial_));
  partial_.clear();
  skipping_ = false;
}

proto::JobFinished run_exec(std::string_view spec_json, JobContext& job) {
  proto::JobFinished done{job.job_id(), 0, proto::JobState::kFailed, -1, ""};
  std::string error;
  const std::optional<ExecSpec> spec = parse_exec_spec(spec_json, error);
  if (!spec) {
    done.error = error;
    return done;
  }
  if (job.cancel_requested()) {
    done.state = proto::JobState::kCancelled;
    done.error = "cancelled before it started";
    return done;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGCHLD);
  const int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
  int out[2], err[2], report[2];
  if (signal_fd < 0 || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || pipe2(report, O_CLOEXEC)) {
    done.error = std::string("cannot set up the command: ") + std::strerror(errno);
    return done;
  }
  const pid_t pid = fork();
  if (pid == 0) exec_child(*spec, out[1], err[1], report[1]);
  close(out[1]);
  close(err[1]);
  close(report[1]);
  if (pid < 0) {
    done.error = std::string("cannot fork: ") + std::strerror(errno);
    return done;
  }
  setpgid(pid, pid);  // also in the child: whichever runs first, the group exists before a kill

  StartFailure failure;
  if (read(report[0], &failure, sizeof failure) == sizeof failure) {
    const char* what = failure.stage == 1 ? "cannot enter " : "cannot run ";
    done.error = what + (failure.stage == 1 ? spec->cwd : spec->argv[0]) + ": " +
                 std::strerror(failure.error);
    job.log(proto::Stream::kAgent, done.error);
  }
  close(report[0]);

  LineSplitter splitters[2];
  int fds[2] = {out[0], err[0]};
  std::optional<int> status;
  bool cancelled = false, timed_out = false;
  std::optional<Clock::time_point> timeout_at, kill_at, drain_until;
  if (spec->timeout_ms > 0) timeout_at = Clock::now() + std::chrono::milliseconds(spec->timeout_ms);
  auto stop = [&](bool by_timeout) {
    if (cancelled || timed_out || status) return;
    (by_timeout ? timed_out : cancelled) = true;
    killpg(pid, SIGTERM);
    kill_at = Clock::now() + kKillGrace;
  };

  std::vector<std::string> lines;
  while (!status || ((fds[0] >= 0 || fds[1] >= 0) && Clock::now() < *drain_until)) {
    int wait_ms = -1;
    for (const auto& when : {timeout_at, kill_at, drain_until})
      if (when) wait_ms = wait_ms < 0 ? ms_until(*when) : std::min(wait_ms, ms_until(*when));
    pollfd pfds[3] = {{signal_fd, POLLIN, 0}, {fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
    if (poll(pfds, 3, wait_ms) < 0 && errno != EINTR) break;
    if (pfds[0].revents & POLLIN) {
      signalfd_siginfo info{};
      while (read(signal_fd, &info, sizeof info) == sizeof info)
        if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) stop(false);
    }
    if (!status) {
      int s = 0;
      if (waitpid(pid, &s, WNOHANG) == pid) {
        status = s;
        drain_until = Clock::now() + kDrainAfterExit;
        // A stopped job leaves nothing behind in its group.
        if (cancelled || timed_out) killpg(pid, SIGKILL);
      }
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i] < 0 || !(pfds[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buffer[64 * 1024];
      const ssize_t n = read(fds[i], buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      lines.clear();
      if (n > 0) {
        splitters[i].feed(std::string_view(buffer, static_cast<size_t>(n)), lines);
      } else {
        splitters[i].finish(lines);
        close(fds[i]);
        fds[i] = -1;
      }
      for (auto& line : lines)
        job.log(i == 0 ? proto::Stream::kStdout : proto::Stream::kStderr, std::move(line));
    }
    if (timeout_at && Clock::now() >= *timeout_at && !status) stop(true);
    if (kill_at && Clock::now() >= *kill_at) {
      killpg(pid, SIGKILL);
      kill_at.reset();
    }
    if (status) timeout_at.reset();
  }
  for (int i = 0; i < 2; ++i) {
    if (fds[i] < 0) continue;
    lines.clear();
    splitters[i].finish(lines);
    for (auto& line : lines)
      job.log(i == 0 ? proto::Stream::kStdout : proto::Stream::kStderr, std::move(line));
    close(fds[i]);
  }
  close(signal_fd);

  done.exit_code = status ? exit_code_of(*status) : -1;
  if (cancelled) {
    done.state = proto::JobState::kCancelled;
    done.error = "cancelled";
  } else if (timed_out) {
    done.state = proto::JobState::kTimedOut;
    done.error = "timed out after " + std::to_string(spec->timeout_ms) + " ms";
  } else if (done.error.empty()) {
    done.state = done.exit_code == 0 ? proto::JobState::kSucceeded : proto::JobState::kFailed;
    if (done.exit_code != 0) done.error = "exit code " + std::to_string(done.exit_code);
  }
  return done;
}

}  // namespace cutpilot::agent
