#include "agents/command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace cutpilot::agent {
namespace {

using Clock = std::chrono::steady_clock;

// How long a process group gets between SIGTERM and SIGKILL.
constexpr auto kKillGrace = std::chrono::seconds(2);
// How long output is still read after a command exited (a background child may hold the pipes).
constexpr auto kDrainAfterExit = std::chrono::seconds(2);
// How often the caller's tick runs while commands run.
constexpr auto kTickEvery = std::chrono::milliseconds(100);

}  // namespace

// posix_spawn (a vfork underneath) copies none of the runner's page tables: a fork of the
// 6 MB static agent cost more than a short command itself.
bool on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/bin:/bin";
  while (!dirs.empty()) {
    const size_t colon = dirs.find(':');
    const std::string dir(dirs.substr(0, colon));
    dirs = colon == std::string_view::npos ? "" : dirs.substr(colon + 1);
    if (!dir.empty() && access((dir + "/" + name).c_str(), X_OK) == 0) return true;
  }
  return false;
}

pid_t spawn_command(const Command& command, int in, int out, int err, std::string& error) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  if (in >= 0) {
    posix_spawn_file_actions_adddup2(&actions, in, 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, out, 1);
  posix_spawn_file_actions_adddup2(&actions, err, 2);
  if (!command.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, command.cwd.c_str());
  // A clean start: no blocked signal, SIGPIPE back to its default, a group of its own.
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_USEVFORK);

  // The runner's environment with the command's variables added or replaced.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    const std::string_view entry(*e);
    const std::string name(entry.substr(0, entry.find('=')));
    if (!command.env.contains(name)) env_strings.emplace_back(entry);
  }
  for (const auto& [name, value] : command.env)
    env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (auto& e : env_strings)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (const auto& a : command.argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  pid_t pid = -1;
  const int failed = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (failed == 0) return pid;
  // posix_spawn reports the child's failure to enter cwd and to exec alike; tell them apart.
  struct stat st {};
  if (!command.cwd.empty() && (stat(command.cwd.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
                               access(command.cwd.c_str(), X_OK) != 0)) {
    error = "cannot enter " + command.cwd + ": " +
            std::strerror(stat(command.cwd.c_str(), &st) != 0 ? errno
                          : S_ISDIR(st.st_mode)               ? EACCES
                                                              : ENOTDIR);
  } else {
    error = "cannot run " + command.argv[0] + ": " + std::strerror(failed);
  }
  return -1;
}

namespace {

int exit_code_of(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int ms_until(Clock::time_point when) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(when - Clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

// The most piped bytes held for a consumer; the producer is not read while it is full.
constexpr size_t kPipeBuffer = 1 << 20;

// One started command and what is left to read of it (and to write to it).
struct Child {
  pid_t pid = -1;
  int fds[2] = {-1, -1};  // stdout, stderr
  LineSplitter splitters[2];
  bool exited = false;
  Clock::time_point drain_until;
  int in = -1;                  // our end of its stdin, when it reads one
  std::string inbox;            // bytes waiting to be written to in
  bool inbox_closed = false;    // nothing more will come: close in once inbox is empty
  std::optional<size_t> feeds;  // the consumer its stdout is pumped to
  bool reported = false;        // RunOptions::finished was told
  bool output_ended = false;    // a producer's stdout reached EOF (its consumer not told yet)
  std::chrono::milliseconds read_every{0};  // Command::read_every
  Clock::time_point next_read;              // its stdout is not read before then
};

bool set_nonblocking(int fd) {
  const int flags = fcntl(fd, F_GETFL);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

// Starts command; on failure the result says why and no child is left.
Child start(const Command& command, CommandResult& result) {
  Child child;
  child.splitters[0] = LineSplitter(command.split_cr);
  child.splitters[1] = LineSplitter(command.split_cr);
  int out[2], err[2], in[2] = {-1, -1};
  if (command.argv.empty()) {
    result.start_error = "empty command";
    return child;
  }
  const bool reads = command.stdin_from || !command.stdin_text.empty();
  if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || (reads && pipe2(in, O_CLOEXEC))) {
    result.start_error = std::string("cannot set up the command: ") + std::strerror(errno);
    return child;
  }
  const pid_t pid = spawn_command(command, in[0], out[1], err[1], result.start_error);
  close(out[1]);
  close(err[1]);
  if (in[0] >= 0) close(in[0]);
  if (pid < 0) {
    result.exit_code = 127;  // what a shell reports for a command it could not run
    for (int fd : {out[0], err[0], in[1]})
      if (fd >= 0) close(fd);
    return child;
  }
  if (in[1] >= 0) {
    set_nonblocking(in[1]);
    child.in = in[1];
    child.inbox = command.stdin_text;
    child.inbox_closed = !command.stdin_from;
  }
  child.pid = pid;
  child.fds[0] = out[0];
  child.fds[1] = err[0];
  child.read_every = command.read_every;
  if (child.read_every.count() > 0) {
    // Read until it is empty on each turn, with room to fill meanwhile.
    set_nonblocking(out[0]);
    fcntl(out[0], F_SETPIPE_SZ, static_cast<int>(kPipeBuffer));
  }
  return child;
}

}  // namespace

void LineSplitter::feed(std::string_view bytes, std::vector<std::string>& lines) {
  while (!bytes.empty()) {
    const size_t end = split_cr_ ? bytes.find_first_of("\r\n") : bytes.find('\n');
    const std::string_view piece = bytes.substr(0, end);
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
    if (end == std::string_view::npos) break;
    if (!skipping_) lines.push_back(std::move(partial_));
    partial_.clear();
    skipping_ = false;
    bytes.remove_prefix(end + 1);
  }
}

void LineSplitter::finish(std::vector<std::string>& lines) {
  if (!skipping_ && !partial_.empty()) lines.push_back(std::move(partial_));
  partial_.clear();
  skipping_ = false;
}

RunResult run_commands(const std::vector<Command>& commands, const LineSink& sink,
                       const RunOptions& options, JobContext& job) {
  RunResult run;
  run.commands.resize(commands.size());
  if (job.cancel_requested()) {
    run.stop = StopReason::kCancelled;
    return run;
  }
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGCHLD})
    sigaddset(&signals, s);
  const int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd < 0) {
    for (auto& c : run.commands)
      c.start_error = std::string("cannot watch signals: ") + std::strerror(errno);
    return run;
  }
  std::vector<Child> children;
  for (size_t i = 0; i < commands.size(); ++i) {
    children.push_back(start(commands[i], run.commands[i]));
    if (!run.commands[i].start_error.empty())
      sink(i, proto::Stream::kAgent, run.commands[i].start_error);
  }
  for (size_t i = 0; i < commands.size(); ++i) {
    const auto from = commands[i].stdin_from;
    if (from && *from < children.size() && *from != i && children[i].in >= 0) {
      children[*from].feeds = i;
      // Bigger pipes on a pumped path: fewer wake-ups of the three processes per MiB.
      for (int fd : {children[*from].fds[0], children[i].in})
        if (fd >= 0) fcntl(fd, F_SETPIPE_SZ, static_cast<int>(kPipeBuffer));
    } else if (children[i].in >= 0)
      children[i].inbox_closed = true;  // nothing will be piped in
  }

  std::optional<Clock::time_point> timeout_at, kill_at;
  if (options.timeout.count() > 0) timeout_at = Clock::now() + options.timeout;
  auto next_tick = Clock::now() + kTickEvery;
  auto stop = [&](StopReason why) {
    if (run.stop != StopReason::kNone) return;
    run.stop = why;
    for (const auto& c : children)
      if (c.pid > 0 && !c.exited) killpg(c.pid, SIGTERM);
    kill_at = Clock::now() + kKillGrace;
  };
  auto busy = [&](const Child& c) {
    if (c.pid <= 0) return false;
    if (!c.exited) return true;
    // What a producer wrote is pumped for as long as its consumer runs.
    if (c.feeds && c.fds[0] >= 0 && !children[*c.feeds].exited) return true;
    return (c.fds[0] >= 0 || c.fds[1] >= 0) && Clock::now() < c.drain_until;
  };
  auto deliver = [&](size_t i, int stream, std::vector<std::string>& lines) {
    for (auto& line : lines)
      sink(i, stream == 0 ? proto::Stream::kStdout : proto::Stream::kStderr, std::move(line));
    lines.clear();
  };
  auto close_fd = [](int& fd) {
    if (fd >= 0) close(fd);
    fd = -1;
  };
  // A consumer that stopped reading (exited, closed stdin) takes no more input.
  auto drop_consumer = [&](Child& c) {
    close_fd(c.in);
    c.inbox.clear();
  };

  std::vector<std::string> lines;
  std::vector<pollfd> pfds;
  while (std::any_of(children.begin(), children.end(), busy)) {
    int wait_ms = ms_until(next_tick);
    for (const auto& when : {timeout_at, kill_at})
      if (when) wait_ms = std::min(wait_ms, ms_until(*when));
    // Only a drain still under way bounds the wait: once drain_until has passed it is 0 for
    // good, and poll(…, 0) would spin on a core the other commands need.
    for (const auto& c : children)
      if (c.exited && (c.fds[0] >= 0 || c.fds[1] >= 0) && Clock::now() < c.drain_until)
        wait_ms = std::min(wait_ms, ms_until(c.drain_until));
    pfds.assign(1, {signal_fd, POLLIN, 0});
    const auto now = Clock::now();
    for (const auto& c : children) {
      // A producer is read only while its consumer has room (backpressure); a throttled
      // stdout not before its time.
      const bool room = !c.feeds || children[*c.feeds].inbox.size() < kPipeBuffer;
      const bool due = c.exited || now >= c.next_read;
      if (!due && c.fds[0] >= 0) wait_ms = std::min(wait_ms, ms_until(c.next_read));
      pfds.push_back({room && due ? c.fds[0] : -1, POLLIN, 0});  // poll() ignores negative fds
      pfds.push_back({c.fds[1], POLLIN, 0});
      pfds.push_back({c.inbox.empty() ? -1 : c.in, POLLOUT, 0});
    }
    if (poll(pfds.data(), pfds.size(), wait_ms) < 0 && errno != EINTR) break;
    if (pfds[0].revents & POLLIN) {
      signalfd_siginfo info{};
      while (read(signal_fd, &info, sizeof info) == sizeof info)
        if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) stop(StopReason::kCancelled);
    }
    for (size_t i = 0; i < children.size(); ++i) {
      Child& c = children[i];
      if (c.pid <= 0) continue;
      int status = 0;
      if (!c.exited && waitpid(c.pid, &status, WNOHANG) == c.pid) {
        c.exited = true;
        run.commands[i].exit_code = exit_code_of(status);
        c.drain_until = Clock::now() + kDrainAfterExit;
        drop_consumer(c);
        // A stopped command leaves nothing behind in its group.
        if (run.stop != StopReason::kNone) killpg(c.pid, SIGKILL);
      }
      const pollfd* p = &pfds[1 + 3 * i];
      if (c.in >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
        const ssize_t n = write(c.in, c.inbox.data(), c.inbox.size());
        if (n > 0) {
          c.inbox.erase(0, static_cast<size_t>(n));
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          drop_consumer(c);  // EPIPE: it closed its stdin
        }
      }
      for (int s = 0; s < 2; ++s) {
        if (c.fds[s] < 0 || !(p[s].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        if (s == 0 && c.feeds && children[*c.feeds].in >= 0 && children[*c.feeds].inbox.empty()) {
          // Pipe to pipe inside the kernel: the bytes are counted, never copied through here.
          Child& consumer = children[*c.feeds];
          const ssize_t moved = splice(c.fds[0], nullptr, consumer.in, nullptr, kPipeBuffer,
                                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
          if (moved > 0 && options.piped) options.piped(i, static_cast<uint64_t>(moved));
          if (moved == 0) {
            c.output_ended = true;
            close_fd(c.fds[0]);
          }
          if (moved >= 0 || errno == EINTR) continue;
          if (errno == EPIPE) drop_consumer(consumer);
          // EAGAIN: the consumer's pipe is full; the bytes wait in its inbox (read below).
        }
        if (s == 0 && c.read_every.count() > 0) {
          // Throttled: everything that piled up, then not again before read_every passed.
          c.next_read = Clock::now() + c.read_every;
          char buffer[64 * 1024];
          ssize_t n = 0;
          for (int turn = 0; turn < 16 && (n = read(c.fds[0], buffer, sizeof buffer)) > 0; ++turn)
            c.splitters[0].feed(std::string_view(buffer, static_cast<size_t>(n)), lines);
          if (n == 0) {
            c.splitters[0].finish(lines);
            close_fd(c.fds[0]);
          }
          deliver(i, 0, lines);
          continue;
        }
        char buffer[64 * 1024];
        const ssize_t n = read(c.fds[s], buffer, sizeof buffer);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (s == 0 && c.feeds) {
          Child& consumer = children[*c.feeds];
          if (n > 0) {
            if (consumer.in >= 0) consumer.inbox.append(buffer, static_cast<size_t>(n));
            if (options.piped) options.piped(i, static_cast<uint64_t>(n));
          } else {
            c.output_ended = true;
            close_fd(c.fds[0]);
          }
          // A consumer gone for good: stop reading, so the producer sees EPIPE and ends.
          if (consumer.in < 0 && consumer.exited) close_fd(c.fds[0]);
          continue;
        }
        if (n > 0) {
          c.splitters[s].feed(std::string_view(buffer, static_cast<size_t>(n)), lines);
        } else {
          c.splitters[s].finish(lines);
          close_fd(c.fds[s]);
        }
        deliver(i, s, lines);
      }
    }
    // A producer's end reaches its consumer once the producer's exit is known: a clean end
    // gets the consumer's stdin_after, then EOF; a failed one may stop the consumer instead.
    for (size_t i = 0; i < children.size(); ++i) {
      Child& c = children[i];
      if (!c.output_ended || !c.exited || !c.feeds) continue;
      c.output_ended = false;
      Child& consumer = children[*c.feeds];
      const Command& command = commands[*c.feeds];
      const bool clean = run.commands[i].exit_code == 0;
      if (clean && command.stdin_after && consumer.in >= 0) consumer.inbox += command.stdin_after();
      consumer.inbox_closed = true;
      if (!clean && command.stop_if_producer_fails && !consumer.exited) {
        sink(*c.feeds, proto::Stream::kAgent,
             "stopped: its input ended with a failure (" +
                 describe_exit(run.commands[i].exit_code.value_or(-1)) + ")");
        drop_consumer(consumer);
        killpg(consumer.pid, SIGTERM);
      }
    }
    for (auto& c : children)
      if (c.in >= 0 && c.inbox_closed && c.inbox.empty()) close_fd(c.in);
    // Commands that start when another is done (counting a copy's source once it was dumped).
    std::vector<Command> more;
    for (size_t i = 0; i < children.size(); ++i) {
      Child& c = children[i];
      if (c.pid <= 0 || !c.exited || c.reported || c.fds[0] >= 0 || c.fds[1] >= 0) continue;
      c.reported = true;
      if (options.finished && run.stop == StopReason::kNone)
        for (auto& command : options.finished(i, run.commands[i].exit_code.value_or(-1)))
          more.push_back(std::move(command));
    }
    if (options.ready && run.stop == StopReason::kNone)
      for (auto& command : options.ready())
        more.push_back(std::move(command));
    for (const auto& command : more) {
      run.commands.emplace_back();
      children.push_back(start(command, run.commands.back()));
      if (!run.commands.back().start_error.empty())
        sink(children.size() - 1, proto::Stream::kAgent, run.commands.back().start_error);
    }
    if (timeout_at && Clock::now() >= *timeout_at) {
      timeout_at.reset();
      stop(StopReason::kTimedOut);
    }
    if (kill_at && Clock::now() >= *kill_at) {
      for (const auto& c : children)
        if (c.pid > 0) killpg(c.pid, SIGKILL);
      kill_at.reset();
    }
    if (Clock::now() >= next_tick) {
      next_tick = Clock::now() + kTickEvery;
      if (options.tick) options.tick();
      job.progress_tick();
    }
  }
  for (size_t i = 0; i < children.size(); ++i) {
    for (int s = 0; s < 2; ++s) {
      if (children[i].fds[s] < 0) continue;
      if (!(s == 0 && children[i].feeds)) {
        children[i].splitters[s].finish(lines);
        deliver(i, s, lines);
      }
      close_fd(children[i].fds[s]);
    }
    close_fd(children[i].in);
  }
  close(signal_fd);
  if (options.tick) options.tick();
  return run;
}

Background::Background(const Command& command, const std::string& log_path, std::string& error) {
  const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log < 0) {
    error = "cannot start " + command.argv.front() + ": " + std::strerror(errno);
    return;
  }
  const pid_t pid = spawn_command(command, -1, log, log, error);
  close(log);
  if (pid > 0) pid_ = pid;
}

Background::~Background() {
  if (pid_ <= 0 || !running()) return;
  killpg(pid_, SIGTERM);
  for (int i = 0; i < 40 && running(); ++i)
    usleep(50 * 1000);
  if (running()) killpg(pid_, SIGKILL);
  if (!exited_) waitpid(pid_, nullptr, 0);
}

bool Background::running() {
  if (pid_ <= 0 || exited_) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) exited_ = true;
  return !exited_;
}

std::string describe_exit(int exit_code) {
  return "exit code " + std::to_string(exit_code);
}

}  // namespace cutpilot::agent
