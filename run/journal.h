// The run journal: append-only, one fsynced JSON line per state change, in the run's
// state directory. It is what makes a run resumable: replaying it says which steps
// finished, which agent jobs were started (so they are re-attached, never started
// again) and which gates were approved.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cutpilot::plans {

// The file names inside a run's state directory.
inline constexpr const char* kJournalFile = "journal.jsonl";
inline constexpr const char* kAuditFile = "audit.log";
inline constexpr const char* kControlSocket = "control.sock";

// An open journal; every append is on disk (fsynced) before it returns.
class Journal {
 public:
  Journal() = default;
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Opens (creating) dir/journal.jsonl for appending; false with error set when it cannot.
  bool open(const std::string& dir, std::string& error);
  // Appends one record ("r" names its kind) with the wall time added; false when the disk
  // refused it (the caller must stop: a run whose journal cannot be written is not resumable).
  bool append(nlohmann::json record);
  // Appends a line to dir/audit.log (fsynced): who did what to which step, when, and the
  // plan's hash. Approvals, skips, retries and aborts go here as well as in the journal.
  bool audit(const std::string& action, const std::string& step, const std::string& by,
             const std::string& plan_sha256, const std::string& run_id);
  // The last write error ("" when none).
  const std::string& error() const { return error_; }
  // True once open() succeeded.
  bool is_open() const { return fd_ >= 0; }
  // True when open() found the journal's last line torn (no final newline, as a crash
  // mid-append leaves it) and ended it, so the next record starts on a line of its own.
  bool ended_torn_line() const { return ended_torn_line_; }

 private:
  int fd_ = -1;
  int audit_fd_ = -1;
  std::string path_;
  std::string audit_path_;
  std::string error_;
  bool ended_torn_line_ = false;
};

// One agent job as the journal knows it.
struct JournalJob {
  std::string step;
  std::string host;
  std::string job_id;
  bool rollback = false;
  std::optional<nlohmann::json> finished;  // the "done" record, once the job ended
};

// One step as the journal knows it.
struct JournalStep {
  std::string state = "pending";  // DESIGN.md's step state names
  uint32_t attempt = 0;
  uint32_t round = 0;
  bool approved = false;
  std::string approved_by;   // who approved it ("" when not approved, or revoked)
  std::string approved_how;  // "gate", "ahead", "--approve" or "--approve-all"
  std::string detail;
  std::vector<nlohmann::json> results;  // the finished jobs' results of the last attempt
  std::vector<nlohmann::json> done;     // the same jobs' "done" records (host, state, error)
  double started_unix = 0;              // when its last attempt started (0: never)
  double ended_unix = 0;                // when its last attempt ended (0: not yet)
  std::optional<double> seconds;        // what the step's jobs took, as its success says
  double awaiting_unix = 0;             // when it last began to wait for approval (0: never)
  double approved_unix = 0;             // when it was approved (0: not approved)
  size_t last_line = 0;                 // the journal line of the last record naming it
  bool damaged = false;                 // a record naming it (or its job) could not be read
};

// One journal line that could not be read (garbage, or a record cut short by a crash).
struct DamagedLine {
  size_t line = 0;   // counting from 1
  std::string step;  // the step it names, when that much of it is legible; "" when unknown
};

// What replaying a journal says about a run.
struct JournalState {
  std::string run_id;
  std::string plan_path;
  std::string plan_sha256;
  std::map<std::string, std::string> fingerprints;  // step id → fingerprint at run start
  std::map<std::string, JournalStep> steps;
  // host → where the run reached it ("address:port" and its key), from "host" records.
  std::map<std::string, std::pair<std::string, std::string>> hosts;
  std::vector<JournalJob> jobs;        // in start order
  std::vector<nlohmann::json> tracks;  // "track" records (the change watches), in order
  std::optional<double> downtime_started_unix;
  std::optional<double> downtime_ended_unix;
  std::optional<double> predicted_s;
  std::optional<double> downtime_seconds;  // as the "ended" record gave it
  std::string downtime_ended_how;          // "rollback" when a rollback ended it, else ""
  std::optional<std::string> ended;        // the run's final state, when it ended
  bool aborting = false;                   // an abort was asked (its rollbacks may be unfinished)
  double started_unix = 0;
  double last_unix = 0;  // the time of the last readable record
  size_t records = 0;
  size_t torn = 0;                   // unreadable lines skipped (damaged.size())
  std::vector<DamagedLine> damaged;  // every unreadable line, in file order
  bool unterminated = false;         // the last line has no final newline (a torn append)

  // The first damaged line (0: none): records from there on may be missing.
  size_t damage_from() const { return damaged.empty() ? 0 : damaged.front().line; }
  // True when the journal cannot be trusted about step: a record naming it was unreadable,
  // or some unreadable line names no step (it may have been about any step).
  bool in_doubt(const std::string& step) const;
  // The steps the journal shows succeeded or skipped (and not in doubt): their actions are done.
  std::set<std::string> finished_steps() const;
};

// Reads the journal at dir; nullopt with error set when there is none or it is unreadable.
std::optional<JournalState> replay_journal(const std::string& dir, std::string& error);

// The newest run directory under plan_dir (runs are named so they sort by time), or "".
std::string latest_run_dir(const std::string& plan_dir);

}  // namespace cutpilot::plans
