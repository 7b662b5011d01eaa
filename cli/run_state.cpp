#include "cli/run_state.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "cli/run_plan.h"
#include "run/executor.h"
#include "transport/sha256.h"

namespace cutpilot::cli {
namespace {

constexpr const char* kPlanLock = "lock";

std::string absolute(const std::string& path) {
  char buffer[PATH_MAX];
  if (realpath(path.c_str(), buffer)) return buffer;
  if (!path.empty() && path[0] == '/') return path;
  char cwd[PATH_MAX];
  return getcwd(cwd, sizeof cwd) ? std::string(cwd) + "/" + path : path;
}

// What the holder of a lock wrote into it ("run ID in DIR, pid N"), or "".
std::string holder_of(int fd) {
  char text[1024];
  const ssize_t n = pread(fd, text, sizeof text - 1, 0);
  if (n <= 0) return "";
  std::string out(text, static_cast<size_t>(n));
  while (!out.empty() && out.back() == '\n')
    out.pop_back();
  return out;
}

bool try_lock(int fd) {
  while (flock(fd, LOCK_EX | LOCK_NB) != 0)
    if (errno != EINTR) return false;
  return true;
}

}  // namespace

std::string plan_state_dir(const std::string& plan_path) {
  return default_state_root() + "/" + plan_slug(plan_path) + "-" +
         transport::sha256_hex(absolute(plan_path)).substr(0, 12);
}

RunLocks::~RunLocks() {
  if (run_fd_ >= 0) close(run_fd_);
  if (plan_fd_ >= 0) close(plan_fd_);
}

bool RunLocks::lock_plan(const std::string& plan_dir, std::string& error) {
  const std::string path = plan_dir + "/" + kPlanLock;
  plan_fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (plan_fd_ < 0) {
    error = "cannot open the plan's lock " + path + ": " + std::strerror(errno);
    return false;
  }
  if (try_lock(plan_fd_)) return true;
  const std::string holder = holder_of(plan_fd_);
  error = "another cockpit is running this plan" + (holder.empty() ? "" : " (" + holder + ")") +
          "; talk to it with `cutpilot status|approve|abort --state-dir DIR`, or leave it (q) "
          "before starting another";
  close(plan_fd_);
  plan_fd_ = -1;
  return false;
}

bool RunLocks::lock_run(const std::string& state_dir, const std::string& run_id,
                        std::string& error) {
  run_fd_ = open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (run_fd_ < 0) {
    error = "cannot open the state directory " + state_dir + ": " + std::strerror(errno);
    return false;
  }
  if (!try_lock(run_fd_)) {
    error = "run " + run_id + " in " + state_dir +
            " is held by another cockpit (a live or a stopped — SIGSTOPped — process); "
            "find it with `fuser -v " +
            state_dir + "`";
    close(run_fd_);
    run_fd_ = -1;
    return false;
  }
  if (plan_fd_ >= 0) {
    const std::string note =
        "run " + run_id + " in " + state_dir + ", pid " + std::to_string(getpid()) + "\n";
    if (ftruncate(plan_fd_, 0) == 0) [[maybe_unused]]
      ssize_t ignored = pwrite(plan_fd_, note.data(), note.size(), 0);
  }
  return true;
}

bool run_is_live(const std::string& state_dir) {
  const int fd = open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool free = flock(fd, LOCK_SH | LOCK_NB) == 0;
  close(fd);
  return !free;
}

std::vector<EarlierRun> earlier_runs(const std::string& plan_dir, const plans::Plan& plan) {
  std::vector<std::string> names;
  if (DIR* dir = opendir(plan_dir.c_str())) {
    while (dirent* entry = readdir(dir)) {
      const std::string name = entry->d_name;
      if (name.empty() || name[0] == '.' || name == kPlanLock) continue;
      names.push_back(name);
    }
    closedir(dir);
  }
  // Run ids start with their UTC start time: the names sort oldest first.
  std::sort(names.begin(), names.end());
  std::vector<EarlierRun> runs;
  for (const auto& name : names) {
    EarlierRun run;
    run.dir = absolute(plan_dir + "/" + name);  // a --state-dir run by its own name
    std::string error;
    auto journal = plans::replay_journal(run.dir, error);
    if (!journal) continue;
    run.journal = std::move(*journal);
    run.live = run_is_live(run.dir);
    for (const auto& step : plan.steps) {
      const auto it = run.journal.steps.find(step.id);
      if (step.point_of_no_return && it != run.journal.steps.end() &&
          it->second.state != "pending" && it->second.state != "awaiting-approval")
        run.past_no_return.push_back(step.id);
    }
    runs.push_back(std::move(run));
  }
  return runs;
}

plans::PastRuns past_of(const std::string& plan_dir, const plans::Plan& plan,
                        const std::string& skip_run) {
  const auto runs = earlier_runs(plan_dir, plan);
  std::vector<const plans::JournalState*> journals;
  for (const auto& run : runs)
    journals.push_back(&run.journal);
  return plans::past_runs(journals, plans::step_fingerprints(plan), skip_run);
}

std::string new_run_refusal(const plans::Plan& plan, const std::vector<EarlierRun>& runs,
                            bool new_run, const std::string& confirmed_name) {
  if (runs.empty()) return "";
  const EarlierRun& last = runs.back();
  const std::string which = "run " + last.journal.run_id + " of this plan (" + last.dir + ")";
  if (last.live)
    return which + " is live in another cockpit: talk to it with `cutpilot status --state-dir " +
           last.dir + "`";
  const bool unfinished = !last.journal.ended || *last.journal.ended == "failed";
  if (!last.past_no_return.empty()) {
    std::string steps;
    for (const auto& id : last.past_no_return)
      steps += (steps.empty() ? "" : ", ") + id;
    if (new_run && confirmed_name == plan.settings.name) return "";
    return which + (unfinished ? " stopped unfinished" : " ended (" + *last.journal.ended + ")") +
           " after its point of no return (" + steps +
           "): a new run would repeat the migration over what is live now. " +
           (unfinished ? "Continue it with --resume, or abort it with `cutpilot abort "
                         "--state-dir " +
                             last.dir + "`. "
                       : "") +
           "To start over anyway, type the plan's name: --new-run='" + plan.settings.name + "'";
  }
  if (unfinished && !new_run)
    return which + " stopped unfinished" +
           (last.journal.ended ? " (failed)" : " (its cockpit is gone)") +
           ": continue it with --resume, abort it with `cutpilot abort --state-dir " + last.dir +
           "`, or start over with --new-run";
  return "";
}

std::string link_run(const std::string& plan_dir, const std::string& run_id,
                     const std::string& state_dir) {
  const std::string link = plan_dir + "/" + run_id;
  const std::string target = absolute(state_dir);
  if (link == target) return "";
  if (symlink(target.c_str(), link.c_str()) != 0 && errno != EEXIST)
    return "cannot note the run in " + plan_dir + ": " + std::strerror(errno) +
           " (`--resume` without --state-dir will not find it)";
  return "";
}

}  // namespace cutpilot::cli
