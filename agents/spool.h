// A job's spool directory: the files that let a job outlive the session that started it.
//
// Layout of $HOME/.cache/cutpilot/jobs/<escaped id>/ (two inodes: every inode made costs,
// and on ext4 without a journal each new one skips those freed in the last 30 s):
//   the directory  flock()ed (exclusive) by the runner for as long as it lives; its notes
//                  (extended attributes, or files where there are none, see set_spool_note):
//                  "kind", the job kind ("exec"), and "runner", "<pid> <pgid>" of the
//                  runner process (CancelJob signals that group)
//   events         the event log: encode_frame() frames, one per event, seq 1, 2, 3...
//                  seq 1 is always JobStarted{existing=false}; the last is JobFinished
//   cancel         made by CancelJob (only then)
// The spec is not kept: the runner is a fork of the serve process that claimed the job and
// has it in memory.
// The runners' own stderr (diagnostics only, each line naming its job) goes to
// $HOME/.cache/cutpilot/runner.log, one file for all jobs.
// Only the runner appends to `events` once it runs (single O_APPEND writes, so a reader
// never sees a torn frame); the serve process writes seq 1 before starting it, and
// finishes a job whose runner died without a result.
//
// A spool goes when the cockpit acknowledges (Ack) the job's result. A finished job whose
// result nobody acknowledged (a cockpit that died, a refused resume) keeps its spool for
// kSpoolMaxAgeS (7 days) after it finished (the mtime of `events`), long enough for an operator
// to come back from a weekend and resume; then the serve process answering the next Facts
// request removes it (Attach then answers kUnknownJob). A running job's spool is never removed.
// CUTPILOT_AGENT_SPOOL_MAX_AGE (seconds) in the agent's environment overrides the age; tests
// set it, the cockpit does not.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "transport/protocol.h"

namespace cutpilot::agent {

// How long a finished, unacknowledged job's spool is kept (seconds): 7 days.
inline constexpr time_t kSpoolMaxAgeS = 7 * 24 * 3600;
// kSpoolMaxAgeS, or CUTPILOT_AGENT_SPOOL_MAX_AGE (seconds) when that is set to a number.
time_t spool_max_age_s();

// The directory holding every job's spool ($HOME/.cache/cutpilot/jobs); "" without HOME.
std::string jobs_root();
// A directory of the agent's own under $HOME/.cache/cutpilot ("keys", "backups"); "" without HOME.
std::string cache_dir(std::string_view name);
// A job id as a directory name: bytes outside [A-Za-z0-9._-], and a leading '.', become %XX.
std::string escape_job_id(std::string_view id);
// The job id a spool directory name stands for.
std::string unescape_job_id(std::string_view name);

// The sequence number a job event carries (0 for messages that carry none).
uint64_t seq_of(const proto::Message& event);
// Sets the sequence number of a job event (no-op for other messages).
void set_seq(proto::Message& event, uint64_t seq);

// Events decoded from a log, and where reading stopped.
struct LogChunk {
  std::vector<proto::Message> events;
  uint64_t next_offset = 0;  // just after the last complete frame
  std::string error;         // a corrupt frame: the log cannot be read past it
};
// Reads the complete frames of the log at path from offset on (a missing log reads as empty).
LogChunk read_events(const std::string& path, uint64_t offset);
// Appends one event as a single O_APPEND write; false on a short or failed write.
bool append_event(int fd, const proto::Message& event);

// What a job's spool says about it right now.
struct JobStatus {
  std::string kind;  // "" while the job is still being claimed
  uint64_t last_seq = 0;
  std::optional<proto::JobFinished> finished;
};
// Reads kind and event log of the spool in dir.
JobStatus read_status(const std::string& dir);

// A small named value kept on a spool directory: an extended attribute (no inode made), or a
// file of that name where the file system has no user attributes. Names: "kind", "runner".
bool set_spool_note(const std::string& dir, int dir_fd, std::string_view name,
                    std::string_view value);
// A spool note's value ("" when missing).
std::string spool_note(const std::string& dir, std::string_view name);

// A small file's contents, or nullopt when it cannot be read.
std::optional<std::string> read_file(const std::string& path);
// Whether a write must reach the disk before it counts (fsync), or only be atomic.
enum class Durability : uint8_t { kSynced, kAtomicOnly };
// Writes a file atomically (temp file, [fsync,] rename); false on failure.
bool write_file_atomic(const std::string& path, std::string_view text,
                       Durability durability = Durability::kSynced);
// Makes a directory's entries durable (fsync of the directory); false on failure.
bool sync_dir(const std::string& dir);
// Creates a directory and its missing parents (mode 0700); false on failure (errno says why).
bool make_dirs(const std::string& path);
// The bytes of the regular files below dir (0 when it does not exist).
uint64_t tree_bytes(const std::string& dir);
// Removes a directory tree; false when something was left.
bool remove_tree(const std::string& path);

}  // namespace cutpilot::agent
