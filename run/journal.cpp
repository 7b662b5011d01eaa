#include "run/journal.h"

#include "run/downtime.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
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

std::optional<double> number_of(const nlohmann::json& record, const char* key) {
  const auto it = record.find(key);
  if (it == record.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

// The fingerprints a "run" or "resume" record carries.
void read_fingerprints(JournalState& state, const nlohmann::json& record) {
  if (const auto it = record.find("fingerprints"); it != record.end() && it->is_object())
    for (const auto& item : it->items())
      if (item.value().is_string())
        state.fingerprints[item.key()] = item.value().get<std::string>();
}

// An approval: who, and how ("gate", "ahead", "--approve", "--approve-all"). Records written
// before "how" existed carry it in "by" as a " (--approve)" suffix.
void approve(JournalStep& step, const nlohmann::json& record, double t) {
  step.approved = true;
  step.approved_unix = t;
  step.approved_by = text_of(record, "by");
  step.approved_how = text_of(record, "how");
  for (const char* how : {"--approve-all", "--approve"}) {
    const std::string suffix = std::string(" (") + how + ")";
    const std::string& by = step.approved_by;
    if (by.size() < suffix.size() ||
        by.compare(by.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    step.approved_by.resize(by.size() - suffix.size());
    if (step.approved_how.empty()) step.approved_how = how;
  }
  if (step.approved_how.empty()) step.approved_how = "gate";
}

// Applies one step-state record.
void apply_step(JournalStep& step, const nlohmann::json& record, double t) {
  const std::string next = text_of(record, "state");
  const uint32_t attempt = count_of(record, "attempt");
  const uint32_t round = count_of(record, "round");
  if (next == "running" &&
      (attempt != step.attempt || round != step.round || step.state != "running")) {
    step.results.clear();
    step.done.clear();
    step.started_unix = t;
    step.ended_unix = 0;
    step.seconds.reset();
  }
  if (next == "succeeded") step.seconds = number_of(record, "seconds");
  if (next == "succeeded" || next == "failed" || next == "skipped" || next == "rolled-back")
    step.ended_unix = t;
  if (next == "awaiting-approval" && step.state != next) step.awaiting_unix = t;
  step.state = next;
  step.attempt = attempt;
  step.round = round;
  step.detail = text_of(record, "detail");
}

// Applies one record to the state being rebuilt (a kind it does not know changes nothing).
void apply_record(JournalState& state, const nlohmann::json& record, size_t line) {
  const std::string kind = text_of(record, "r");
  const double t = number_of(record, "t").value_or(0.0);
  const std::string step_id = text_of(record, "step");
  auto step = [&]() -> JournalStep& {
    JournalStep& found = state.steps[step_id];
    found.last_line = line;
    return found;
  };
  if (t > 0) state.last_unix = t;
  if (kind == "run") {
    state.run_id = text_of(record, "run");
    state.plan_path = text_of(record, "plan");
    state.plan_sha256 = text_of(record, "sha256");
    state.started_unix = t;
    read_fingerprints(state, record);
  } else if (kind == "host") {
    state.hosts[text_of(record, "host")] = {text_of(record, "endpoint"), text_of(record, "key")};
  } else if (kind == "resume") {
    state.plan_sha256 = text_of(record, "sha256");
    state.ended.reset();
    read_fingerprints(state, record);
  } else if (kind == "step") {
    apply_step(step(), record, t);
  } else if (kind == "approve") {
    approve(step(), record, t);
  } else if (kind == "revoke") {
    JournalStep& revoked = step();
    revoked.approved = false;
    revoked.approved_by.clear();
    revoked.approved_how.clear();
    revoked.approved_unix = 0;
  } else if (kind == "job") {
    const auto rollback = record.find("rollback");
    state.jobs.push_back(JournalJob{
        step_id, text_of(record, "host"), text_of(record, "job"),
        rollback != record.end() && rollback->is_boolean() && rollback->get<bool>(), std::nullopt});
    if (!step_id.empty()) step();
  } else if (kind == "done") {
    const std::string id = text_of(record, "job");
    for (auto& job : state.jobs)
      if (job.job_id == id) {
        job.finished = record;
        if (job.rollback) continue;
        JournalStep& owner = state.steps[job.step];
        owner.last_line = line;
        const auto result = record.find("result");
        owner.results.push_back(result != record.end() ? *result : nlohmann::json());
        owner.done.push_back(record);
      }
  } else if (kind == "downtime") {
    const std::string which = text_of(record, "state");
    if (which == "started") state.downtime_started_unix = t;
    if (which == "ended") {
      state.downtime_ended_unix = t;
      state.downtime_seconds = number_of(record, "seconds");
      state.downtime_ended_how = text_of(record, "how");
    }
    if (const auto predicted = number_of(record, "predicted_s")) state.predicted_s = predicted;
  } else if (kind == "track") {
    state.tracks.push_back(record);
  } else if (kind == "abort") {
    state.aborting = true;
  } else if (kind == "end") {
    state.ended = text_of(record, "state");
  }
}

// Applies one line of the journal; false when it is not a record (garbage, or cut short).
bool apply_line(JournalState& state, const std::string& line, size_t number) {
  const nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
  if (record.is_discarded() || !record.is_object()) return false;
  try {
    apply_record(state, record, number);
  } catch (const nlohmann::json::exception&) {
    return false;  // a field of a type no writer gives it
  }
  ++state.records;
  return true;
}

// The value of "key":"VALUE" in a line that is not valid JSON, when that much is legible.
std::string legible(const std::string& line, const std::string& key) {
  const std::string quoted = "\"" + key + "\"";
  // The key may also appear as a value first ("r":"step"): try each occurrence.
  for (size_t at = line.find(quoted); at != std::string::npos; at = line.find(quoted, at + 1)) {
    size_t value = line.find_first_not_of(" \t", at + quoted.size());
    if (value == std::string::npos || line[value] != ':') continue;
    value = line.find_first_not_of(" \t", value + 1);
    if (value == std::string::npos || line[value] != '"') continue;
    const size_t end = line.find_first_of("\"\\", value + 1);
    if (end != std::string::npos) return line.substr(value + 1, end - value - 1);
  }
  return "";
}

// Which step an unreadable line was about: the step it names, or the step of the job it names.
std::string attribute(const JournalState& state, const std::string& line) {
  if (std::string step = legible(line, "step"); !step.empty()) return step;
  const std::string job = legible(line, "job");
  if (job.empty()) return "";
  for (const auto& known : state.jobs)
    if (known.job_id == job) return known.step;
  return "";
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
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    error = "cannot open the journal " + path_ + ": " + std::strerror(errno);
    return false;
  }
  // A crash mid-append leaves a line without its newline: end it, or the next record would
  // be glued onto the fragment and lost with it. The replay reports the fragment.
  struct stat st {};
  char last = '\n';
  if (fstat(fd_, &st) == 0 && st.st_size > 0 && pread(fd_, &last, 1, st.st_size - 1) == 1 &&
      last != '\n') {
    if (!write_synced(fd_, "\n", path_, error)) return false;
    ended_torn_line_ = true;
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
  std::vector<std::string> unreadable;  // the damaged lines' text, attributed once all is read
  std::string line;
  size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    state.unterminated = in.eof();
    if (line.empty()) continue;
    if (apply_line(state, line, number)) continue;
    state.damaged.push_back(DamagedLine{number, ""});
    unreadable.push_back(std::move(line));
  }
  for (size_t i = 0; i < state.damaged.size(); ++i) {
    DamagedLine& damage = state.damaged[i];
    damage.step = attribute(state, unreadable[i]);
    if (!damage.step.empty()) state.steps[damage.step].damaged = true;
  }
  state.torn = state.damaged.size();
  if (state.run_id.empty()) {
    error = path + " does not start a run (no \"run\" record)";
    return std::nullopt;
  }
  return state;
}

bool JournalState::in_doubt(const std::string& step) const {
  for (const auto& damage : damaged)
    if (damage.step.empty() || damage.step == step) return true;
  return false;
}

std::set<std::string> JournalState::finished_steps() const {
  std::set<std::string> out;
  for (const auto& [id, step] : steps)
    if ((step.state == "succeeded" || step.state == "skipped") && !in_doubt(id)) out.insert(id);
  return out;
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
