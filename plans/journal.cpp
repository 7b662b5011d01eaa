#include "plans/journal.h"

#include "plans/downtime.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>

namespace cutpilot::plans {
namespace {

std::string text_of(const nlohmann::json& record, const char* key) {
  const auto it = record.find(key);
  return it != record.end() && it->is_string() ? it->get<std::string>() : std::string();
}

uint32_t count_of(const nlohmann::json& record, const char* key) {
  const auto it = record.find(key);
  return it != record.end() && it->is_number_unsigned() ? it->get<uint32_t>() : 0;
}

// Applies one record to the state being rebuilt.
void apply_record(JournalState& state, const nlohmann::json& record) {
  const std::string kind = text_of(record, "r");
  const double t = record.value("t", 0.0);
  if (kind == "run") {
    state.run_id = text_of(record, "run");
    state.plan_path = text_of(record, "plan");
    state.plan_sha256 = text_of(record, "sha256");
    state.started_unix = t;
    if (const auto it = record.find("fingerprints"); it != record.end() && it->is_object())
      for (const auto& item : it->items())
        if (item.value().is_string())
          state.fingerprints[item.key()] = item.value().get<std::string>();
  } else if (kind == "resume") {
    state.plan_sha256 = text_of(record, "sha256");
    state.ended.reset();
    if (const auto it = record.find("fingerprints"); it != record.end() && it->is_object())
      for (const auto& item : it->items())
        if (item.value().is_string())
          state.fingerprints[item.key()] = item.value().get<std::string>();
  } else if (kind == "step") {
    JournalStep& step = state.steps[text_of(record, "step")];
    const std::string next = text_of(record, "state");
    const uint32_t attempt = count_of(record, "attempt");
    const uint32_t round = count_of(record, "round");
    if (next == "running" &&
        (attempt != step.attempt || round != step.round || step.state != "running")) {
      step.results.clear();
      step.started_unix = t;
    }
    if (next == "succeeded" || next == "failed" || next == "skipped" || next == "rolled-back")
      step.ended_unix = t;
    step.state = next;
    step.attempt = attempt;
    step.round = round;
    step.detail = text_of(record, "detail");
  } else if (kind == "approve") {
    state.steps[text_of(record, "step")].approved = true;
  } else if (kind == "job") {
    state.jobs.push_back(JournalJob{text_of(record, "step"), text_of(record, "host"),
                                    text_of(record, "job"), record.value("rollback", false),
                                    std::nullopt});
  } else if (kind == "done") {
    const std::string id = text_of(record, "job");
    for (auto& job : state.jobs)
      if (job.job_id == id) {
        job.finished = record;
        if (!job.rollback)
          state.steps[job.step].results.push_back(record.value("result", nlohmann::json()));
      }
  } else if (kind == "downtime") {
    const std::string which = text_of(record, "state");
    if (which == "started") state.downtime_started_unix = t;
    if (which == "ended") state.downtime_ended_unix = t;
    if (record.contains("predicted_s") && record["predicted_s"].is_number())
      state.predicted_s = record["predicted_s"].get<double>();
  } else if (kind == "abort") {
    state.aborting = true;
  } else if (kind == "end") {
    state.ended = text_of(record, "state");
  }
}

}  // namespace

// Writes all of line and syncs it; false with error set when the disk refused.
static bool write_synced(int fd, const std::string& line, const std::string& path,
                         std::string& error) {
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = "cannot write " + path + ": " + std::strerror(errno);
      // A torn line must not glue onto the next record: end it.
      if (done > 0) [[maybe_unused]]
        ssize_t ignored = ::write(fd, "\n", 1);
      return false;
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    error = "cannot sync " + path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

Journal::~Journal() {
  if (fd_ >= 0) close(fd_);
  if (audit_fd_ >= 0) close(audit_fd_);
}

bool Journal::open(const std::string& dir, std::string& error) {
  path_ = dir + "/" + kJournalFile;
  audit_path_ = dir + "/" + kAuditFile;
  audit_fd_ = ::open(audit_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (audit_fd_ < 0) {
    error = "cannot open the audit log " + audit_path_ + ": " + std::strerror(errno);
    return false;
  }
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    error = "cannot open the journal " + path_ + ": " + std::strerror(errno);
    return false;
  }
  // The file's directory entry must survive a crash too.
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return true;
}

bool Journal::append(nlohmann::json record) {
  if (fd_ < 0) {
    error_ = "the journal is not open";
    return false;
  }
  record["t"] = unix_now();
  return write_synced(fd_,
                      record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                      path_, error_);
}

bool Journal::audit(const std::string& action, const std::string& step, const std::string& by,
                    const std::string& plan_sha256, const std::string& run_id) {
  if (audit_fd_ < 0) {
    error_ = "the audit log is not open";
    return false;
  }
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
  std::string line = std::string(stamp) + " " + action + (step.empty() ? "" : " step=" + step) +
                     " by=" + (by.empty() ? "unknown" : by) + " plan=sha256:" + plan_sha256 +
                     " run=" + run_id + "\n";
  return write_synced(audit_fd_, line, audit_path_, error_);
}

std::optional<JournalState> replay_journal(const std::string& dir, std::string& error) {
  const std::string path = dir + "/" + kJournalFile;
  std::ifstream in(path);
  if (!in) {
    error = "no journal at " + path;
    return std::nullopt;
  }
  JournalState state;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
    if (record.is_discarded() || !record.is_object()) {
      ++state.torn;
      continue;
    }
    apply_record(state, record);
    ++state.records;
  }
  if (state.run_id.empty()) {
    error = path + " does not start a run (no \"run\" record)";
    return std::nullopt;
  }
  return state;
}

std::string latest_run_dir(const std::string& plan_dir) {
  std::vector<std::string> runs;
  if (DIR* dir = opendir(plan_dir.c_str())) {
    while (dirent* entry = readdir(dir)) {
      const std::string name = entry->d_name;
      if (name.empty() || name[0] == '.') continue;
      if (access((plan_dir + "/" + name + "/" + kJournalFile).c_str(), F_OK) == 0)
        runs.push_back(name);
    }
    closedir(dir);
  }
  if (runs.empty()) return "";
  return plan_dir + "/" + *std::max_element(runs.begin(), runs.end());
}

}  // namespace cutpilot::plans
