// Pure parsers for what rsync prints.
//
// The formats were checked against rsync 3.5.0 (protocol 32) and its progress.c/log.c:
// - Progress lines (--info=progress2) start with '\r'; all but the last end in two spaces or
//   in space padding, the last ends in '\n'. Callers split on both '\r' and '\n'.
// - Rates are 1024-based ("kB/s" is 1024 bytes/s); rsync itself prints only kB/MB/GB.
// - Names in listings and in error lines escape unprintable bytes (and invalid UTF-8, and
//   every non-ASCII byte under LC_ALL=C) as "\#ooo"; a backslash is escaped ("\#134") only
//   when a '#' follows it. Tabs and '"' are printed as they are.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cutpilot::agent {

// One progress line of `rsync --info=progress2`: totals for the whole transfer so far.
struct RsyncProgress {
  uint64_t bytes = 0;        // bytes transferred so far
  int percent = 0;           // as printed; stays at 99 when symlinks make up part of the total
  uint64_t rate = 0;         // bytes per second (rsync's 1024-based units, rounded)
  uint64_t files_done = 0;   // files checked so far: files_total minus to-chk (or ir-chk)
  uint64_t files_total = 0;  // files in the list; grows while "ir-chk" (incremental recursion)
  bool has_files = false;    // false on lines without the "(xfr#N, to-chk=A/B)" part
};
// Parses one progress line (terminator removed); nullopt for anything else (names, errors, "").
std::optional<RsyncProgress> parse_progress2(std::string_view line);

// The figures of the `--stats` block that a sync step reports.
struct RsyncStats {
  uint64_t files = 0;  // "Number of files": every entry, directories and links included
  uint64_t regular_files_transferred = 0;
  uint64_t total_size = 0;
  uint64_t transferred_size = 0;
  uint64_t deleted = 0;   // "Number of deleted files", directories included
  bool complete = false;  // "Total transferred file size" was seen: the block has been read
};

// Collects RsyncStats from rsync's stdout, one line at a time; other lines are ignored.
class RsyncStatsParser {
 public:
  // Reads one line (terminator removed); a later value for the same figure replaces the earlier.
  void feed_line(std::string_view line);
  // The figures read so far.
  const RsyncStats& stats() const { return stats_; }

 private:
  RsyncStats stats_;
};

// Replaces rsync's "\#ooo" escapes with the bytes they stand for; other text stays as it is.
std::string unescape_rsync_name(std::string_view name);

// The file an rsync stderr line reports as failed or vanished (exit codes 23 and 24), as
// rsync printed it (absolute for the source side, often relative for deletions) and
// unescaped; nullopt for other lines. Recognised: "file has vanished: \"P\"", any
// "rsync: [role] ..." error naming a quoted path (the first one of "\"P\" -> \"T\""),
// "delete_file: unlink(P) failed", "could not make way for new ...: P" and the final
// "ERROR: P failed verification". The temporary ".NAME.XXXXXX" of a failed mkstemp or rename
// is mapped back to NAME (in the same directory).
std::optional<std::string> failed_file_of(std::string_view stderr_line);

// Whether a stderr line says the sender found no file at a path ("rsync: [sender] link_stat
// \"P\" failed: No such file or directory (2)"). For a name the job's own listing gave
// (--files-from) that is a file that vanished since the listing: rsync calls it exit 23, not 24.
bool names_a_missing_file(std::string_view stderr_line);

// Whether an `--itemize-changes` line says only that a directory's modification time differs
// (".d..t......" or with 'T'): rsync updates directory times as files come and go, so it is
// not a difference in content (verify reports it as information).
bool directory_time_only(std::string_view itemized);
// An `--itemize-changes` line of a dry run as a difference an operator reads:
// "*deleting   a.txt" -> "only on the target: a.txt", ">f+++++++++ b" -> "missing on the
// target: b", ">f.st...... c" -> "differs (size, time): c"; other lines as they are.
std::string describe_itemized(std::string_view itemized);

// rsync's version from the first line of `rsync --version` ("rsync  version 3.2.7  protocol
// version 31") as {major, minor, patch}; nullopt for anything else.
std::optional<std::array<int, 3>> parse_rsync_version(std::string_view first_line);
// Whether rsync `version` has --trust-sender (3.2.5 and later). The same releases added the
// client-side check of every requested name against the sender's file list, which is quadratic
// in the number of --files-from names; --trust-sender is what turns it off.
bool has_trust_sender(const std::array<int, 3>& version);

}  // namespace cutpilot::agent
