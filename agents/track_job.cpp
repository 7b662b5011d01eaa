#include "agents/track_job.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <tuple>

#include "agents/change_watch.h"
#include "agents/spec_fields.h"
#include "agents/spool.h"
#include "agents/sync_rsync.h"
#include "agents/words.h"

namespace cutpilot::agent {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

// The most changed paths a watch keeps by default: a longer list is no faster than a scan.
constexpr uint64_t kDefaultMaxPaths = 250000;
// How long a seal waits for the watch's answer by default.
constexpr uint64_t kDefaultSealTimeoutMs = 60000;
// How often a waiting seal looks whether the watch is still there.
constexpr int kSealLookEveryMs = 500;

// A parsed track spec: a watch (path) or a seal (seal).
struct TrackSpec {
  std::string path, seal, backend = "auto";
  uint64_t max_paths = kDefaultMaxPaths, timeout_ms = kDefaultSealTimeoutMs;
};

std::optional<TrackSpec> parse(std::string_view text, std::string& error) {
  const Json j = Json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) {
    error = "the track spec is not valid JSON";
    return std::nullopt;
  }
  TrackSpec spec;
  const FieldHandlers fields = {
      {"path", text_field(spec.path, error, "path")},
      {"seal", text_field(spec.seal, error, "seal")},
      {"max_paths", count_field(spec.max_paths)},
      {"timeout_ms", count_field(spec.timeout_ms)},
      {"backend", text_field(spec.backend, error, "backend")},
  };
  if (!read_fields(j, "track", fields, error)) return std::nullopt;
  if (spec.path.empty() == spec.seal.empty())
    error = "track needs either \"path\" (a tree to watch) or \"seal\" (a watch's job id)";
  else if (!spec.path.empty() && spec.path[0] != '/')
    error = "track \"path\" must be absolute";
  else if (spec.backend != "auto" && spec.backend != "inotify" && spec.backend != "fanotify")
    error = "track \"backend\" must be auto, inotify or fanotify";
  else if (spec.max_paths == 0)
    error = "track \"max_paths\" must be at least 1";
  if (!error.empty()) return std::nullopt;
  return spec;
}

// A job that ended as it should, with result (JSON text).
proto::JobFinished succeeded(const JobContext& job, std::string result) {
  proto::JobFinished done = failed_result(job.job_id(), "");
  done.state = proto::JobState::kSucceeded;
  done.exit_code = 0;
  done.result = std::move(result);
  return done;
}

// The watch's answer to one seal request: the list first, then the JSON that points to it.
bool answer_seal(const ChangeWatch& watch, const std::string& prefix, const std::string& id,
                 JobContext& job) {
  const std::string list_path = job.dir() + "/sealed-" + id + ".list";
  std::vector<std::string> list;
  uint64_t bytes = 0, hard_linked = 0;
  if (watch.complete()) {
    list = final_sync_list(watch, prefix);
    for (const auto& [rel, size] : watch.paths()) {
      struct stat st {};
      const std::string path = rel == "." ? watch.root() : watch.root() + "/" + rel;
      if (lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      bytes += st.st_size;
      if (st.st_nlink > 1) ++hard_linked;
    }
  }
  if (!sync_parts::write_name_list(list_path, list).empty()) return false;
  const Json answer = {{"complete", watch.complete()},
                       {"lost", watch.lost()},
                       {"paths", list.size()},
                       {"bytes", bytes},
                       {"hard_linked", hard_linked},
                       {"directories", watch.directories()},
                       {"list", list_path}};
  job.log(proto::Stream::kAgent, watch.complete()
                                     ? "sealed: " + counted(list.size(), "path") + " (" +
                                           human_bytes(bytes) + ") changed since the watch began"
                                     : "sealed: the set is incomplete: " + watch.lost());
  return write_file_atomic(job.dir() + "/sealed-" + id + ".json", answer.dump(),
                           Durability::kAtomicOnly);
}

// The seal requests in a watch's spool that have no answer yet.
std::vector<std::string> pending_requests(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (!d) return names;
  while (const dirent* entry = readdir(d)) {
    const std::string name = entry->d_name;
    if (name.starts_with("seal-") &&
        access((dir + "/sealed-" + name.substr(5) + ".json").c_str(), F_OK) != 0)
      names.push_back(name);
  }
  closedir(d);
  return names;
}

proto::Progress watch_progress(const ChangeWatch& watch) {
  proto::Progress p;
  p.bytes = watch.bytes();
  p.files = watch.paths().size();
  p.detail = watch.complete()
                 ? counted(watch.paths().size(), "changed path") + " (" +
                       human_bytes(watch.bytes()) + ") in " +
                       counted(watch.directories(), "watched directory", "watched directories")
                 : "a full scan will be needed: " + watch.lost();
  return p;
}

proto::JobFinished run_watch(const TrackSpec& spec, int signal_fd, JobContext& job) {
  // "dir/" is the directory's contents, through a symlink too (rsync follows it there).
  std::string root = spec.path;
  if (root.back() == '/') {
    char resolved[PATH_MAX];
    if (realpath(root.c_str(), resolved)) root = resolved;
  }
  ChangeWatch watch(root, spec.max_paths,
                    spec.backend == "inotify"    ? WatchBackend::kInotify
                    : spec.backend == "fanotify" ? WatchBackend::kFanotify
                                                 : WatchBackend::kAuto);
  std::string error;
  if (!watch.arm(error) || !watch.watch_names(job.dir(), error))
    return failed_result(job.job_id(), "cannot watch " + spec.path + ": " + error);
  std::string prefix;
  if (spec.path.back() != '/') prefix = spec.path.substr(spec.path.rfind('/') + 1) + "/";
  job.log(proto::Stream::kAgent,
          "watching " + spec.path + " with " + watch.backend() +
              (watch.fanotify_refused().empty() ? std::string()
                                                : " (fanotify: " + watch.fanotify_refused() + ")") +
              ": " + counted(watch.directories(), "directory", "directories") +
              "; every change from now on is recorded");
  job.progress(watch_progress(watch));
  job.flush_progress();  // the cockpit starts the sync once it sees the watch armed
  bool lost_told = false;
  std::set<std::string> answered;
  std::tuple<size_t, uint64_t, bool> shown{watch.paths().size(), watch.bytes(), true};
  for (;;) {
    std::vector<pollfd> fds = {{signal_fd, POLLIN, 0}};
    for (const int fd : watch.fds())
      fds.push_back({fd, POLLIN, 0});
    if (poll(fds.data(), fds.size(), static_cast<int>(kProgressEvery.count())) < 0 &&
        errno != EINTR)
      return failed_result(job.job_id(), std::string("poll: ") + std::strerror(errno));
    if (fds[0].revents && cancel_arrived(signal_fd, 0)) break;
    std::vector<std::string> requests;
    watch.drain(requests);
    if (!watch.complete() && !lost_told) {
      job.log(proto::Stream::kAgent,
              "the change set is incomplete, the final sync will scan "
              "the whole tree: " +
                  watch.lost());
      lost_told = true;
    }
    // An overflowed queue may have dropped a request's own event: an incomplete set answers
    // every request the spool holds (whatever came before it, the answer is "incomplete").
    if (!watch.complete()) requests = pending_requests(job.dir());
    for (const auto& name : requests)
      if (name.starts_with("seal-") && answered.insert(name).second &&
          !answer_seal(watch, prefix, name.substr(5), job))
        job.log(proto::Stream::kAgent, "cannot write the answer to " + name + " in " + job.dir());
    // Reported when it changed: a quiet tree logs nothing for hours.
    const std::tuple<size_t, uint64_t, bool> now{watch.paths().size(), watch.bytes(),
                                                 watch.complete()};
    if (now != shown) job.progress(watch_progress(watch));
    shown = now;
    job.progress_tick();
  }
  return succeeded(job, Json{{"complete", watch.complete()},
                             {"lost", watch.lost()},
                             {"paths", watch.paths().size()},
                             {"directories", watch.directories()}}
                            .dump());
}

// Whether the job whose spool is dir has a live runner (it holds the directory's lock).
bool runner_alive(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd);
  return held;
}

// Why the watch in dir cannot answer ("" when it can): gone, ended, not running.
std::string watch_gone(const std::string& dir, const std::string& id) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0)
    return "no watch " + id + " on this host (its record is gone: removed, or the host restarted)";
  const JobStatus status = read_status(dir);
  if (status.kind != "track") return "job " + id + " is not a watch";
  if (status.finished)
    return "the watch ended: " +
           (status.finished->error.empty() ? std::string("stopped") : status.finished->error);
  if (!runner_alive(dir))
    return "the watch is not running any more (its process was killed, or the host restarted)";
  return "";
}

proto::JobFinished incomplete(const std::string& why, JobContext& job) {
  job.log(proto::Stream::kAgent, "the change set is incomplete: " + why);
  return succeeded(job, Json{{"complete", false}, {"lost", why}}.dump());
}

proto::JobFinished run_seal(const TrackSpec& spec, int signal_fd, JobContext& job) {
  const std::string dir = jobs_root() + "/" + escape_job_id(spec.seal);
  if (std::string why = watch_gone(dir, spec.seal); !why.empty()) return incomplete(why, job);
  std::random_device random;
  const std::string id = std::to_string(random()) + std::to_string(random());
  const std::string answer = "sealed-" + id + ".json";
  // The answer's watch before the request: it cannot come before we look.
  const int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0 || inotify_add_watch(fd, dir.c_str(), IN_MOVED_TO | IN_ONLYDIR) < 0) {
    if (fd >= 0) close(fd);
    return incomplete("cannot watch " + dir + " for the answer: " + std::strerror(errno), job);
  }
  const int request = open((dir + "/seal-" + id).c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
  if (request < 0) {
    close(fd);
    return incomplete("cannot ask the watch: " + dir + ": " + std::strerror(errno), job);
  }
  close(request);
  const auto deadline = Clock::now() + std::chrono::milliseconds(spec.timeout_ms);
  std::string why;
  while (why.empty()) {
    if (access((dir + "/" + answer).c_str(), F_OK) == 0) break;
    pollfd fds[2] = {{fd, POLLIN, 0}, {signal_fd, POLLIN, 0}};
    poll(fds, 2, kSealLookEveryMs);
    if (fds[1].revents && cancel_arrived(signal_fd, 0)) {
      close(fd);
      proto::JobFinished done = failed_result(job.job_id(), "cancelled");
      done.state = proto::JobState::kCancelled;
      return done;
    }
    char drain[4096];
    while (read(fd, drain, sizeof drain) > 0) {
    }
    if (access((dir + "/" + answer).c_str(), F_OK) == 0) break;
    why = watch_gone(dir, spec.seal);
    if (why.empty() && Clock::now() > deadline)
      why = "the watch did not answer within " + std::to_string(spec.timeout_ms / 1000) + " s";
  }
  close(fd);
  unlink((dir + "/seal-" + id).c_str());
  if (!why.empty()) return incomplete(why, job);
  const auto text = read_file(dir + "/" + answer);
  const Json json = text ? Json::parse(*text, nullptr, false) : Json();
  if (!json.is_object()) return incomplete("the watch's answer " + answer + " is unreadable", job);
  job.log(proto::Stream::kAgent,
          json.value("complete", false)
              ? "the watch recorded " + counted(json.value("paths", uint64_t{0}), "changed path") +
                    " (" + human_bytes(json.value("bytes", uint64_t{0})) + ")"
              : "the change set is incomplete: " + json.value("lost", std::string()));
  return succeeded(job, json.dump());
}

}  // namespace

bool validate_track_spec(std::string_view spec, std::string& error) {
  return parse(spec, error).has_value();
}

proto::JobFinished run_track(std::string_view text, JobContext& job) {
  std::string error;
  const std::optional<TrackSpec> spec = parse(text, error);
  if (!spec) return failed_result(job.job_id(), error);
  if (job.cancel_requested()) return cancelled_before_start(job);
  const int signal_fd = cancel_signal_fd(error);
  if (signal_fd < 0) return failed_result(job.job_id(), error);
  proto::JobFinished done =
      spec->seal.empty() ? run_watch(*spec, signal_fd, job) : run_seal(*spec, signal_fd, job);
  close(signal_fd);
  return done;
}

}  // namespace cutpilot::agent
