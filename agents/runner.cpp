#include "agents/runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "agents/db_job.h"
#include "agents/dns_update.h"
#include "agents/exec_job.h"
#include "agents/file_job.h"
#include "agents/health_job.h"
#include "agents/image_job.h"
#include "agents/leftovers.h"
#include "agents/peer_job.h"
#include "agents/spool.h"
#include "agents/sync_job.h"
#include "agents/track_job.h"

namespace cutpilot::agent {
namespace {

bool validate_exec(std::string_view spec, std::string& error) {
  return parse_exec_spec(spec, error).has_value();
}

// Every job kind the agent runs. file, sync, db and health join this table.
constexpr JobKind kJobKinds[] = {
    {"exec", validate_exec, run_exec},
    {"file", validate_file_spec, run_file},
    {"sync", validate_sync_spec, run_sync},
    {"peer", validate_peer_spec, run_peer},
    {"health", validate_health_spec, run_health},
    {"db", validate_db_spec, run_db},
    {"dns", validate_dns_update_spec, run_dns_update},
    {"image", validate_image_spec, run_image},
    {"track", validate_track_spec, run_track},
};

}  // namespace

proto::JobFinished cancelled_before_start(const JobContext& job) {
  proto::JobFinished done = failed_result(job.job_id(), "cancelled before it started");
  done.state = proto::JobState::kCancelled;
  return done;
}

int cancel_signal_fd(std::string& error) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  const int fd = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) error = std::string("cannot watch signals: ") + std::strerror(errno);
  return fd;
}

bool cancel_arrived(int signal_fd, int wait_ms) {
  pollfd pfd{signal_fd, POLLIN, 0};
  while (poll(&pfd, 1, wait_ms) < 0 && errno == EINTR) {
  }
  signalfd_siginfo info{};
  bool cancelled = false;
  while (read(signal_fd, &info, sizeof info) == sizeof info)
    cancelled = cancelled || info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT;
  return cancelled;
}

bool JobContext::emit(proto::Message event) {
  std::visit(
      [&](auto& m) {
        if constexpr (requires { m.job_id; }) m.job_id = job_id_;
      },
      event);
  set_seq(event, next_seq_);
  if (!append_event(log_fd_, event)) return false;
  ++next_seq_;
  return true;
}

bool JobContext::log(proto::Stream stream, std::string line) {
  return emit(proto::LogLine{job_id_, 0, stream, std::move(line)});
}

void JobContext::progress(proto::Progress update) {
  held_ = std::move(update);
  progress_tick();
}

void JobContext::progress_tick() {
  if (held_ && std::chrono::steady_clock::now() - last_progress_ >= kProgressEvery)
    flush_progress();
}

void JobContext::flush_progress() {
  if (!held_) return;
  last_progress_ = std::chrono::steady_clock::now();
  emit(std::move(*held_));
  held_.reset();
}

proto::JobFinished failed_result(std::string job_id, std::string error, uint64_t seq) {
  return {std::move(job_id), seq, proto::JobState::kFailed, -1, std::move(error), ""};
}

const JobKind* find_job_kind(std::string_view name) {
  for (const auto& kind : kJobKinds)
    if (kind.name == name) return &kind;
  return nullptr;
}

std::string job_kind_names() {
  std::string names;
  for (const auto& kind : kJobKinds)
    names += (names.empty() ? "" : ", ") + std::string(kind.name);
  return names;
}

int run_job(const std::string& dir, const JobKind& kind, const std::string& spec) {
  // Cancellation and child exits are read through a signalfd; block them before anything.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGCHLD, SIGHUP})
    sigaddset(&signals, s);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  // A command that stops reading its piped stdin must not take the runner with it.
  signal(SIGPIPE, SIG_IGN);

  // The lock must not leak into the job's commands: a leftover grandchild would keep it held.
  if (fcntl(kRunnerLockFd, F_SETFD, FD_CLOEXEC) != 0 ||
      flock(kRunnerLockFd, LOCK_EX | LOCK_NB) != 0) {
    std::fprintf(stderr, "cutpilot-job: %s: the job's lock is not held on fd %d\n", dir.c_str(),
                 kRunnerLockFd);
    return 1;
  }
  const std::string job_id = unescape_job_id(dir.substr(dir.rfind('/') + 1));
  const int log_fd = open((dir + "/events").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (log_fd < 0) {
    std::fprintf(stderr, "cutpilot-job: %s is not a job spool\n", dir.c_str());
    return 1;
  }
  // Seq 1, JobStarted, was logged by serve just before it forked this runner.
  JobContext job(job_id, dir, log_fd, 2);
  // A note on the spool (no file made per job); not synced: it names its boot, after a reboot
  // its pids mean nothing (agents/leftovers.h).
  if (!set_spool_note(dir, kRunnerLockFd, "runner", runner_note()))
    std::fprintf(stderr, "cutpilot-job: %s: cannot note the runner's pid: %s\n", dir.c_str(),
                 std::strerror(errno));
  // CancelJob writes `cancel` before reading the pids: one of the two sides sees the other.
  if (access((dir + "/cancel").c_str(), F_OK) == 0) job.request_cancel();

  proto::JobFinished done = kind.run(spec, job);
  job.flush_progress();
  const bool logged = job.emit(done);
  fsync(log_fd);
  close(log_fd);
  return logged ? 0 : 1;
}

}  // namespace cutpilot::agent
