// The pieces every sync mode shares: the parsed spec, the rsync arguments, and the tally of
// what the job's rsyncs said (progress, failed and vanished files, errors) with its verdict.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agents/command.h"
#include "agents/peer_ssh.h"
#include "agents/rate_meter.h"
#include "agents/rsync_output.h"
#include "agents/runner.h"

namespace cutpilot::agent::sync_parts {

using Clock = std::chrono::steady_clock;

// At most this many difference or failed-file lines are logged and kept in a result.
inline constexpr size_t kMaxListed = 200;
// How often an rsync's progress output is read: it writes a line per file it finishes.
inline constexpr std::chrono::milliseconds kProgressReadEvery{50};

// A parsed sync spec.
struct SyncSpec {
  std::string mode = "copy";
  bool push = false;
  std::string local, remote;
  std::optional<Peer> peer;
  bool del = false, checksum = false, one_file_system = false, numeric_ids = false;
  bool hard_links = false, acls = false, xattrs = false;
  std::vector<std::string> exclude;
  uint64_t bwlimit_kbps = 0, parallel = 1, timeout_ms = 0;
  // A tracked final sync: the watch's list of changed paths (agents/track_job.h), on the
  // sending host when tracked_remote; the sync moves those and no others.
  std::string tracked_list;
  bool tracked_remote = false;
  uint64_t tracked_paths = 0;
  std::string scan_reason;  // why this copy scans the whole tree (the tracking was lost)
};

// The spec's flags that are plain rsync switches ("delete" is not: verify always deletes).
struct Switch {
  const char* key;
  bool SyncSpec::*member;
  const char* rsync;
};
inline constexpr Switch kSwitches[] = {
    {"checksum", &SyncSpec::checksum, "--checksum"},
    {"one_file_system", &SyncSpec::one_file_system, "--one-file-system"},
    {"numeric_ids", &SyncSpec::numeric_ids, "--numeric-ids"},
    {"hard_links", &SyncSpec::hard_links, "--hard-links"},
    {"acls", &SyncSpec::acls, "--acls"},
    {"xattrs", &SyncSpec::xattrs, "--xattrs"},
};

// What the rsyncs of one job said: progress per rsync, failed and vanished files, errors.
struct Tally {
  std::vector<RsyncProgress> latest;  // per running rsync
  std::vector<uint64_t> file_caps;    // per rsync: its files_done counts at most this many
  uint64_t bytes_before = 0, files_before = 0, files_total = 0;
  uint64_t reported_bytes = 0, reported_files = 0;  // never goes backwards
  std::vector<std::string> vanished, failed;        // the first kMaxListed of each
  size_t vanished_count = 0, other_errors = 0;      // other_errors: "rsync: ..." lines not a vanish
  std::string cause, last_error;  // the first line that says why (ssh's own), and the last
  RateMeter rate;

  // Remembers a stderr line for the job's error message.
  void note(const std::string& line) {
    if (line.empty()) return;
    const bool generic = line.starts_with("rsync error:") || line.starts_with("rsync: connection");
    if (cause.empty() && !generic) cause = line;
    last_error = line;
  }
  // Why the rsyncs failed, in the words of whoever said it first.
  std::string why() const {
    if (cause.empty() || cause == last_error) return last_error;
    return cause + " (" + last_error + ")";
  }
  void reset(size_t rsyncs, uint64_t cap) {
    for (const auto& p : latest) {
      bytes_before += p.bytes;
    }
    files_before = reported_files;
    latest.assign(rsyncs, {});
    file_caps.assign(rsyncs, cap);
  }
  proto::Progress progress(std::string detail) {
    uint64_t bytes = bytes_before, files = files_before, total = files_total;
    for (size_t i = 0; i < latest.size(); ++i) {
      bytes += latest[i].bytes;
      files += std::min(latest[i].files_done, file_caps[i]);
      if (files_total == 0) total = std::max(total, latest[i].files_total);
    }
    reported_bytes = std::max(reported_bytes, bytes);
    reported_files = std::min(std::max(reported_files, files), std::max(total, reported_files));
    return proto::Progress{"",
                           0,
                           reported_bytes,
                           std::nullopt,
                           rate.update(reported_bytes),
                           reported_files,
                           total ? std::optional<uint64_t>(total) : std::nullopt,
                           std::move(detail)};
  }
};

// The rsync arguments every mode shares: archive, ssh, the plan's options.
std::vector<std::string> common_args(const SyncSpec& spec, const std::string& ssh,
                                     bool with_delete);

// The remote path as rsync names it: ADDRESS:PATH ([ADDRESS]:PATH for IPv6).
std::string remote_arg(const SyncSpec& spec, const std::string& path);

// The source and destination arguments for paths under the synced roots.
std::pair<std::string, std::string> ends(const SyncSpec& spec, const std::string& remote,
                                         const std::string& local);

// Takes one output line of rsync i into tally and the job's log. listed_names: the rsync
// copies names of the job's own listing (--files-from), so a name the sender no longer finds
// vanished since the listing. Other stdout goes to stats (when given), not to the log.
// Returns true when the line was progress.
bool rsync_line(Tally& tally, size_t i, proto::Stream stream, std::string line, bool listed_names,
                RsyncStatsParser* stats, JobContext& job);

// Runs rsyncs to the end, feeding progress and stderr into tally and the job's log.
RunResult run_rsyncs(const std::vector<Command>& commands, Tally& tally, const std::string& detail,
                     RsyncStatsParser* stats, uint64_t timeout_ms, JobContext& job);

// Turns the rsyncs' exits into the job's result (exit 24 is a warning, 23 a listed error).
proto::JobFinished conclude(const RunResult& run, const Tally& tally, uint64_t timeout_ms,
                            JobContext& job);

// Milliseconds left of the job's timeout (0: none; 1 when spent, so the next phase stops).
uint64_t left_ms(uint64_t timeout_ms, Clock::time_point started);

// Splits path into the directory rsync is given and the prefix listed names carry.
std::string parent_with_slash(const std::string& path);

// Whether the rsync here takes --trust-sender (asked once, before the buckets start).
bool rsync_has_trust_sender(JobContext& job);

// The path as a directory rsync copies into ("dst" and "dst/" both mean inside dst).
std::string with_slash(const std::string& path);

// The rsync arguments of a copy that reports progress (delete only on a full pass).
std::vector<std::string> progress_args(const SyncSpec& spec, const std::string& ssh,
                                       bool with_delete);

// Writes names NUL-separated for --from0 --files-from; an rsync reads the list at once, so
// it need not survive a crash (no fsync). Empty when written, else why not.
std::string write_name_list(const std::string& path, const std::vector<std::string>& names);

// Runs one rsync that moves no bytes worth reporting (the deletions, the root's times) after
// the chunks; its result as conclude() gives it.
proto::JobFinished run_one_rsync(std::vector<std::string> args, Tally& tally,
                                 const std::string& where, uint64_t timeout_ms,
                                 Clock::time_point started, JobContext& job);

// A parallel copy (spec.parallel > 1): one comparison, what differs copied in chunks by up to
// `parallel` rsyncs at once, then the deletions. Sets final_pass when a full rsync must still
// run (hard links to keep across chunks).
proto::JobFinished copy_in_chunks(const SyncSpec& spec, const std::string& ssh,
                                  const std::string& where, Clock::time_point started, Tally& tally,
                                  bool& final_pass, JobContext& job);

// A tracked final sync: one rsync given the watch's list (--files-from), deleting the listed
// paths the source no longer has when spec.del.
proto::JobFinished copy_tracked(const SyncSpec& spec, const std::string& ssh,
                                const std::string& where, Clock::time_point started, Tally& tally,
                                JobContext& job);

}  // namespace cutpilot::agent::sync_parts
