#include "agents/jobs.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "agents/leftovers.h"
#include "agents/runner.h"
#include "agents/spool.h"

namespace cutpilot::agent {
namespace {

// How often the serve loop looks at the logs it follows: their growth wakes it through
// inotify at once; the timer finds runners that died (and is all there is without inotify).
constexpr int kFollowPollMs = 250;
constexpr int kFollowPollNoInotifyMs = 50;
// Every this many idle polls, a followed job is checked for a runner that died.
constexpr uint32_t kOrphanCheckEvery = 4;
// A claim without JobStarted this old (seconds) was left by an agent that died while claiming.
constexpr time_t kDeadClaimAfterS = 10;
// Escaped job ids stay well below NAME_MAX (255).
constexpr size_t kMaxEscapedId = 200;

proto::Error job_error(proto::ErrorCode code, const std::string& job_id, std::string message) {
  return proto::Error{code, "job \"" + job_id + "\": " + message, job_id};
}

bool exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

// The runner's process group from the spool's "runner" note (0 when not written yet).
pid_t runner_group(const std::string& dir) {
  return note_group(spool_note(dir, "runner"));
}

}  // namespace

Jobs::Jobs(std::string root, time_t spool_max_age_s)
    : root_(std::move(root)),
      spool_max_age_s_(spool_max_age_s),
      notify_fd_(inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) {}

Jobs::~Jobs() {
  if (notify_fd_ >= 0) close(notify_fd_);
}

bool Jobs::unwatch(const Follower& f) const {
  if (notify_fd_ >= 0 && f.watch >= 0) inotify_rm_watch(notify_fd_, f.watch);
  return true;
}

void Jobs::drain_notifications() {
  alignas(inotify_event) char buffer[4096];
  while (notify_fd_ >= 0 && read(notify_fd_, buffer, sizeof buffer) > 0) {
  }
}

std::string Jobs::dir_of(const std::string& job_id) const {
  return root_ + "/" + escape_job_id(job_id);
}

bool Jobs::check_id(const std::string& job_id, std::vector<proto::Message>& out) const {
  if (root_.empty()) {
    out.push_back(job_error(proto::ErrorCode::kInternal, job_id,
                            "HOME is not set, so the agent has no spool directory"));
    return false;
  }
  if (job_id.empty() || escape_job_id(job_id).size() > kMaxEscapedId) {
    out.push_back(job_error(proto::ErrorCode::kBadRequest, job_id,
                            "a job id must be non-empty and at most 200 bytes once escaped"));
    return false;
  }
  return true;
}

void Jobs::start(const proto::StartJob& request, std::vector<proto::Message>& out) {
  const std::string& id = request.job_id;
  if (!check_id(id, out)) return;
  const JobKind* kind = find_job_kind(request.kind);
  if (!kind)
    return out.push_back(job_error(
        proto::ErrorCode::kUnsupported, id,
        "unknown job kind \"" + request.kind + "\" (this agent runs: " + job_kind_names() + ")"));
  std::string error;
  if (!kind->validate(request.spec, error))
    return out.push_back(
        job_error(proto::ErrorCode::kBadRequest, id, "bad " + request.kind + " spec: " + error));

  const std::string dir = dir_of(id);
  // Made once per session (a mkdir per path component is most of a claim's syscalls); a
  // spool root removed under a live session fails the claim's mkdir below, clearly.
  if (!root_made_ && !(root_made_ = make_dirs(root_)))
    return out.push_back(job_error(proto::ErrorCode::kInternal, id,
                                   "cannot create " + root_ + ": " + std::strerror(errno)));
  // mkdir is the claim: of two agents racing on one id, exactly one creates the directory.
  if (mkdir(dir.c_str(), 0700) != 0) {
    if (errno != EEXIST)
      return out.push_back(job_error(proto::ErrorCode::kInternal, id,
                                     "cannot create " + dir + ": " + std::strerror(errno)));
    out.push_back(proto::JobStarted{id, read_status(dir).last_seq, true});
    return follow(id, 0, out);
  }

  // Held from the claim until the runner exits (it inherits this open file description).
  const int lock_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const bool locked = lock_fd >= 0 && flock(lock_fd, LOCK_EX) == 0;
  const int log_fd =
      open((dir + "/events").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  // JobStarted in the log is the claim, and one fsync makes it durable: on ext4 (with a
  // journal: the commit holds every earlier metadata change; without: fsync writes the new
  // parents too), xfs (the log is forced past the mkdir) and btrfs (new names are logged),
  // the file's fsync also persists its new directory entry and the job directory's.
  bool ok = locked && log_fd >= 0 && set_spool_note(dir, lock_fd, "kind", request.kind) &&
            append_event(log_fd, proto::JobStarted{id, 1, false}) && fsync(log_fd) == 0;
  if (!ok) {
    error = std::strerror(errno);
    if (log_fd >= 0) close(log_fd);
    if (lock_fd >= 0) close(lock_fd);
    remove_tree(dir);
    return out.push_back(
        job_error(proto::ErrorCode::kInternal, id, "cannot write the spool " + dir + ": " + error));
  }
  if (!spawn_runner(dir, *kind, request.spec, lock_fd, error)) {
    append_event(log_fd, failed_result(id, "cannot start the job runner: " + error, 2));
    fsync(log_fd);
  }
  close(log_fd);
  close(lock_fd);
  // The log holds JobStarted and nothing else yet: sent from memory, followed from there on.
  out.push_back(proto::JobStarted{id, 1, false});
  follow(id, 1, out);
}

bool Jobs::spawn_runner(const std::string& dir, const JobKind& kind, const std::string& spec,
                        int lock_fd, std::string& error) const {
  // serve reaps nothing itself: its runners are reaped by the kernel (SIGCHLD ignored in
  // serve), so a runner need not be a grandchild, and one fork per job is enough.
  const pid_t runner = fork();
  if (runner < 0) {
    error = std::strerror(errno);
    return false;
  }
  if (runner != 0) return true;
  // setsid() detaches the runner from the SSH session: neither serve ending nor the
  // session closing takes it down.
  setsid();
  int null_fd = open("/dev/null", O_RDWR);
  // One diagnostics file for all runners (each line names its job): a file per job would be
  // one more inode made and removed per job.
  const int log_fd = open((root_ + "/../runner.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (null_fd < 0) null_fd = log_fd;
  dup2(null_fd, 0);
  dup2(log_fd, 1);
  dup2(log_fd, 2);
  if (lock_fd != kRunnerLockFd) dup2(lock_fd, kRunnerLockFd);
  fcntl(kRunnerLockFd, F_SETFD, 0);
  // The runner is this process, not an exec of the agent: a second start-up of a 6 MB
  // static binary (its CPU probing traps on a VM) costs more than a short job. Nothing
  // of serve's may leak into it: no descriptor but the standard ones and the lock, no
  // blocked signal, no ignored SIGPIPE or SIGCHLD.
  for (int fd = 3; fd < kRunnerLockFd; ++fd)
    close(fd);
  close_range(kRunnerLockFd + 1, ~0U, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);
  signal(SIGCHLD, SIG_DFL);
  prctl(PR_SET_NAME, "cutpilot-job");
  std::fflush(nullptr);
  _exit(run_job(dir, kind, spec));
}

void Jobs::attach(const proto::Attach& request, std::vector<proto::Message>& out) {
  if (!check_id(request.job_id, out)) return;
  // Attach never claims: an id without a spool was never started here, or was acknowledged
  // or expired, and the cockpit must hear that rather than have it run (again).
  if (!exists(dir_of(request.job_id)))
    return out.push_back(job_error(proto::ErrorCode::kUnknownJob, request.job_id,
                                   "no such job on this host (never started here, or its spool "
                                   "was acknowledged or expired)"));
  follow(request.job_id, request.after_seq, out);
}

void Jobs::follow(const std::string& job_id, uint64_t after_seq, std::vector<proto::Message>& out) {
  std::erase_if(followers_, [&](const Follower& f) { return f.job_id == job_id && unwatch(f); });
  Follower f{job_id, dir_of(job_id), 0, after_seq, 0};
  // Watched before the first read: an event logged in between still wakes the loop.
  if (notify_fd_ >= 0)
    f.watch = inotify_add_watch(notify_fd_, (f.dir + "/events").c_str(), IN_MODIFY);
  if (!pump(f, out)) {
    followers_.push_back(std::move(f));
  } else {
    unwatch(f);
  }
}

bool Jobs::pump(Follower& f, std::vector<proto::Message>& out) const {
  LogChunk chunk = read_events(f.dir + "/events", f.offset);
  f.offset = chunk.next_offset;
  for (auto& event : chunk.events) {
    const uint64_t seq = seq_of(event);
    if (seq <= f.after_seq) continue;
    f.after_seq = seq;
    const bool finished = std::holds_alternative<proto::JobFinished>(event);
    out.push_back(std::move(event));
    if (finished) return true;
  }
  if (!chunk.error.empty()) {
    out.push_back(job_error(proto::ErrorCode::kInternal, f.job_id, chunk.error));
    return true;
  }
  if (!chunk.events.empty()) {
    f.idle_polls = 0;
    return false;
  }
  if (!exists(f.dir)) {
    out.push_back(job_error(proto::ErrorCode::kUnknownJob, f.job_id,
                            "the job's spool was removed (acknowledged elsewhere, or expired)"));
    return true;
  }
  // A runner killed with SIGKILL (or a reboot) never logs JobFinished; say so instead of waiting.
  if (++f.idle_polls % kOrphanCheckEvery == 0 && finish_orphan(f.dir, f.job_id))
    return pump(f, out);
  return false;
}

bool Jobs::finish_orphan(const std::string& dir, const std::string& job_id) const {
  // Without JobStarted the claim may still be being written (the lock is taken just after
  // the mkdir); one that old was left by an agent that died while claiming.
  JobStatus status = read_status(dir);
  const bool claimed = status.last_seq >= 1;
  struct stat st {};
  if (!claimed && (stat(dir.c_str(), &st) != 0 || time(nullptr) - st.st_mtime < kDeadClaimAfterS))
    return false;
  const int lock_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock_fd < 0) return false;
  bool finished = false;
  if (flock(lock_fd, LOCK_EX | LOCK_NB) == 0) {
    status = read_status(dir);  // again, under the lock
    const int log_fd =
        open((dir + "/events").c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (!status.finished && log_fd >= 0) {
      // Its commands outlive a runner killed by SIGKILL: stop them before saying it ended.
      const size_t stopped = claimed ? stop_leftovers(spool_note(dir, "runner"), boot_id()) : 0;
      const std::string what =
          !claimed ? "the job was claimed but never started (the agent claiming it died first); "
                     "nothing of it ran"
          : stopped == 0
              ? "the job's runner ended without a result (killed, or the host rebooted); the "
                "job may have partly run"
              : "the job's runner ended without a result (killed); " + std::to_string(stopped) +
                    " of its processes were still running and were stopped; the job may have "
                    "partly run";
      finished = append_event(log_fd, failed_result(job_id, what, status.last_seq + 1));
      fsync(log_fd);
    }
    if (log_fd >= 0) close(log_fd);
  }
  close(lock_fd);
  return finished;
}

void Jobs::cancel(const proto::CancelJob& request, std::vector<proto::Message>& out) {
  const std::string& id = request.job_id;
  if (!check_id(id, out)) return;
  const std::string dir = dir_of(id);
  if (!exists(dir))
    return out.push_back(job_error(proto::ErrorCode::kUnknownJob, id, "no such job on this host"));
  if (read_status(dir).finished || finish_orphan(dir, id)) return;  // nothing left to stop
  // The runner reads `cancel` after writing its pids: whichever comes second sees the other.
  write_file_atomic(dir + "/cancel", "");
  // The runner turns SIGTERM into SIGTERM to the command's group and SIGKILL after a grace.
  if (const pid_t group = runner_group(dir); group > 1) killpg(group, SIGTERM);
}

void Jobs::list(std::vector<proto::Message>& out) {
  proto::JobList answer;
  if (DIR* dir = root_.empty() ? nullptr : opendir(root_.c_str())) {
    while (dirent* entry = readdir(dir)) {
      const std::string name = entry->d_name;
      if (name.empty() || name[0] == '.') continue;
      const std::string path = root_ + "/" + name;
      const std::string id = unescape_job_id(name);
      JobStatus status = read_status(path);
      if (!status.finished && finish_orphan(path, id)) status = read_status(path);
      answer.jobs.push_back(proto::JobSummary{
          id, status.kind, status.finished ? status.finished->state : proto::JobState::kRunning,
          status.last_seq});
    }
    closedir(dir);
  }
  std::sort(answer.jobs.begin(), answer.jobs.end(),
            [](const auto& a, const auto& b) { return a.job_id < b.job_id; });
  out.push_back(std::move(answer));
}

void Jobs::ack(const proto::Ack& request, std::vector<proto::Message>& out) {
  const std::string& id = request.job_id;
  if (!check_id(id, out)) return;
  const std::string dir = dir_of(id);
  if (!exists(dir))
    return out.push_back(job_error(proto::ErrorCode::kUnknownJob, id, "no such job on this host"));
  if (!read_status(dir).finished && !finish_orphan(dir, id))
    return out.push_back(job_error(proto::ErrorCode::kBadRequest, id,
                                   "still running; only a finished job can be acknowledged"));
  // Renamed first so no reader ever sees a half-removed spool under the job's name.
  const std::string trash = root_ + "/.ack-" + escape_job_id(id) + "-" + std::to_string(getpid());
  if (rename(dir.c_str(), trash.c_str()) != 0 || !remove_tree(trash))
    return out.push_back(job_error(proto::ErrorCode::kInternal, id,
                                   "cannot remove the spool " + dir + ": " + std::strerror(errno)));
  std::erase_if(followers_, [&](const Follower& f) { return f.job_id == id && unwatch(f); });
}

uint32_t Jobs::expire_spools() {
  uint32_t kept = 0;
  DIR* dir = root_.empty() ? nullptr : opendir(root_.c_str());
  if (!dir) return kept;
  const time_t now = time(nullptr);
  while (dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name.empty() || name[0] == '.') continue;
    const std::string path = root_ + "/" + name;
    const std::string id = unescape_job_id(name);
    if (!read_status(path).finished && !finish_orphan(path, id)) continue;  // still running
    struct stat st {};
    const bool old =
        stat((path + "/events").c_str(), &st) == 0 && now - st.st_mtime >= spool_max_age_s_;
    // A runner holds the lock until it exits; one still writing its last words keeps the spool.
    const int lock_fd = old ? open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    bool removed = false;
    if (lock_fd >= 0 && flock(lock_fd, LOCK_EX | LOCK_NB) == 0) {
      // Renamed first, as ack does: nobody sees a half-removed spool under the job's name.
      const std::string trash = root_ + "/.expired-" + name + "-" + std::to_string(getpid());
      removed = rename(path.c_str(), trash.c_str()) == 0;
      if (removed) remove_tree(trash);
    }
    if (lock_fd >= 0) close(lock_fd);
    if (removed) {
      std::erase_if(followers_, [&](const Follower& f) { return f.job_id == id && unwatch(f); });
    } else {
      ++kept;
    }
  }
  closedir(dir);
  return kept;
}

void Jobs::tick(std::vector<proto::Message>& out) {
  std::erase_if(followers_, [&](Follower& f) { return pump(f, out) && unwatch(f); });
}

int Jobs::wait_ms() const {
  if (followers_.empty()) return -1;
  return notify_fd_ >= 0 ? kFollowPollMs : kFollowPollNoInotifyMs;
}

}  // namespace cutpilot::agent
