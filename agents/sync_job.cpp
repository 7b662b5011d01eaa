#include "agents/sync_job.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <nlohmann/json.hpp>
#include <optional>
#include <tuple>
#include <vector>

#include "agents/command.h"
#include "agents/peer_ssh.h"
#include "agents/rate_meter.h"
#include "agents/rsync_output.h"
#include "agents/spec_fields.h"
#include "agents/spool.h"
#include "agents/sync_chunks.h"
#include "agents/words.h"

namespace cutpilot::agent {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

// At most this many difference or failed-file lines are logged and kept in a result.
constexpr size_t kMaxListed = 200;
// The most rsyncs one parallel sync runs at once.
constexpr uint64_t kMaxParallel = 64;
// How often an rsync's progress output is read: it writes a line per file it finishes.
constexpr std::chrono::milliseconds kProgressReadEvery{50};

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
};

// The spec's flags that are plain rsync switches ("delete" is not: verify always deletes).
struct Switch {
  const char* key;
  bool SyncSpec::*member;
  const char* rsync;
};
constexpr Switch kSwitches[] = {
    {"checksum", &SyncSpec::checksum, "--checksum"},
    {"one_file_system", &SyncSpec::one_file_system, "--one-file-system"},
    {"numeric_ids", &SyncSpec::numeric_ids, "--numeric-ids"},
    {"hard_links", &SyncSpec::hard_links, "--hard-links"},
    {"acls", &SyncSpec::acls, "--acls"},
    {"xattrs", &SyncSpec::xattrs, "--xattrs"},
};

std::optional<SyncSpec> parse(std::string_view json, std::string& error) {
  const Json j = Json::parse(json.begin(), json.end(), nullptr, false);
  SyncSpec spec;
  std::string direction = "pull";
  FieldHandlers fields = {
      {"mode", text_field(spec.mode, error, "mode")},
      {"direction", text_field(direction, error, "direction")},
      {"local", text_field(spec.local, error, "local")},
      {"remote", text_field(spec.remote, error, "remote")},
      {"peer",
       [&](const Json& v) { return (spec.peer = parse_peer(v, "peer", error)).has_value(); }},
      {"delete", flag_field(spec.del)},
      {"exclude", list_field(spec.exclude)},
      {"bwlimit_kbps", count_field(spec.bwlimit_kbps)},
      {"parallel", count_field(spec.parallel)},
      {"timeout_ms", count_field(spec.timeout_ms)},
  };
  for (const Switch& s : kSwitches)
    fields.emplace(s.key, flag_field(spec.*s.member));
  if (j.is_discarded()) {
    error = "the sync spec is not valid JSON";
    return std::nullopt;
  }
  if (!read_fields(j, "sync", fields, error)) return std::nullopt;
  spec.push = direction == "push";
  if (spec.mode != "copy" && spec.mode != "estimate" && spec.mode != "verify") {
    error = "sync \"mode\" must be copy, estimate or verify";
  } else if (direction != "pull" && direction != "push") {
    error = "sync \"direction\" must be pull or push";
  } else if (spec.local.empty() || spec.remote.empty()) {
    error = "sync needs \"local\" and \"remote\" paths";
  } else if (spec.local[0] != '/' || (!spec.peer && spec.remote[0] != '/')) {
    error = "sync paths must be absolute";
  } else if (spec.parallel == 0 || spec.parallel > kMaxParallel) {
    error = "sync \"parallel\" must be between 1 and " + std::to_string(kMaxParallel);
  }
  if (!error.empty()) return std::nullopt;
  return spec;
}

// The rsync arguments every mode shares: archive, ssh, the plan's options.
std::vector<std::string> common_args(const SyncSpec& spec, const std::string& ssh,
                                     bool with_delete) {
  std::vector<std::string> args = {"rsync", "-a", "--no-h"};
  if (!ssh.empty()) args.insert(args.end(), {"-e", ssh});
  if (with_delete && spec.del) args.push_back("--delete");
  for (const Switch& s : kSwitches)
    if (spec.*s.member) args.push_back(s.rsync);
  // The other host's files are root's: rsync runs there as root too (its host has sudo).
  if (spec.peer && spec.peer->sudo) args.push_back("--rsync-path=sudo -n rsync");
  if (spec.bwlimit_kbps) args.push_back("--bwlimit=" + std::to_string(spec.bwlimit_kbps));
  for (const auto& pattern : spec.exclude)
    args.push_back("--exclude=" + pattern);
  return args;
}

// The remote path as rsync names it: ADDRESS:PATH ([ADDRESS]:PATH for IPv6).
std::string remote_arg(const SyncSpec& spec, const std::string& path) {
  if (!spec.peer) return path;
  const std::string& a = spec.peer->address;
  return (a.find(':') != std::string::npos ? "[" + a + "]" : a) + ":" + path;
}

// The source and destination arguments for paths under the synced roots.
std::pair<std::string, std::string> ends(const SyncSpec& spec, const std::string& remote,
                                         const std::string& local) {
  return spec.push ? std::pair{local, remote_arg(spec, remote)}
                   : std::pair{remote_arg(spec, remote), local};
}

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

// Takes one output line of rsync i into tally and the job's log. listed_names: the rsync
// copies names of the job's own listing (--files-from), so a name the sender no longer finds
// vanished since the listing. Other stdout goes to stats (when given), not to the log.
// Returns true when the line was progress.
bool rsync_line(Tally& tally, size_t i, proto::Stream stream, std::string line, bool listed_names,
                RsyncStatsParser* stats, JobContext& job) {
  if (stream == proto::Stream::kStdout) {
    if (auto p = parse_progress2(line)) {
      if (i < tally.latest.size()) tally.latest[i] = *p;
      return true;
    }
    if (stats) stats->feed_line(line);
    return false;
  } else if (stream == proto::Stream::kStderr) {
    const bool vanished = line.find("file has vanished: ") != std::string::npos ||
                          (listed_names && names_a_missing_file(line));
    if (auto file = failed_file_of(line)) {
      auto& list = vanished ? tally.vanished : tally.failed;
      if (list.size() < kMaxListed) list.push_back(*file);
    }
    if (vanished)
      ++tally.vanished_count;
    else if (line.starts_with("rsync: ") && !line.starts_with("rsync: connection"))
      ++tally.other_errors;
    tally.note(line);
  }
  job.log(stream, std::move(line));
  return false;
}

// Runs rsyncs to the end, feeding progress and stderr into tally and the job's log.
RunResult run_rsyncs(const std::vector<Command>& commands, Tally& tally, const std::string& detail,
                     RsyncStatsParser* stats, uint64_t timeout_ms, JobContext& job) {
  // rsync writes a progress line per file (100,000 for as many small files): each only
  // updates the tally; the job reports it on the runner's 100 ms tick (and at the end).
  bool moved = false;
  auto report = [&] {
    if (moved) job.progress(tally.progress(detail));
    moved = false;
  };
  auto sink = [&](size_t i, proto::Stream stream, std::string line) {
    if (rsync_line(tally, i, stream, std::move(line), false, stats, job)) moved = true;
  };
  RunResult run = run_commands(
      commands, sink, {.timeout = std::chrono::milliseconds(timeout_ms), .tick = report}, job);
  report();
  return run;
}

// Turns the rsyncs' exits into the job's result (exit 24 is a warning, 23 a listed error).
proto::JobFinished conclude(const RunResult& run, const Tally& tally, uint64_t timeout_ms,
                            JobContext& job) {
  proto::JobFinished done = failed_result(job.job_id(), "");
  if (run.stop == StopReason::kCancelled) {
    done.state = proto::JobState::kCancelled;
    done.error = "cancelled";
    return done;
  }
  if (run.stop == StopReason::kTimedOut) {
    done.state = proto::JobState::kTimedOut;
    done.error = "timed out after " + std::to_string(timeout_ms) + " ms";
    return done;
  }
  int worst = 0;
  for (const auto& c : run.commands) {
    if (!c.start_error.empty()) {
      done.error = c.start_error;
      return done;
    }
    const int code = c.exit_code.value_or(-1);
    if (code != 0 && code != 24) worst = worst ? worst : code;
    if (code == 24 && worst == 0) worst = 24;
  }
  // Exit 23 whose every cause was a listed file gone since the listing is a vanish (24).
  if (worst == 23 && tally.vanished_count > 0 && tally.other_errors == 0) worst = 24;
  done.exit_code = worst;
  auto listed = [](const std::vector<std::string>& files) {
    std::string out;
    for (size_t i = 0; i < files.size() && i < 10; ++i)
      out += (i ? ", " : "") + files[i];
    return out + (files.size() > 10 ? ", ..." : "");
  };
  if (worst == 0 || worst == 24) {
    done.state = proto::JobState::kSucceeded;
    if (worst == 24)
      job.log(proto::Stream::kAgent,
              "warning: " + std::to_string(tally.vanished_count) +
                  " files vanished during the sync: " + listed(tally.vanished));
  } else if (worst == 23) {
    done.error = "some files could not be transferred (rsync exit 23): " + listed(tally.failed);
  } else {
    done.error = "rsync failed with exit code " + std::to_string(worst) +
                 (tally.why().empty() ? "" : ": " + tally.why());
    // Only the far side's rsync runs under sudo (--rsync-path): the agent here is root already.
    if (tally.why().find("sudo: ") != std::string::npos)
      done.error +=
          " (the other host has sudo = true, so rsync runs there as `sudo -n rsync`: its login "
          "user needs passwordless sudo for rsync)";
  }
  return done;
}

// Milliseconds left of the job's timeout (0: none; 1 when spent, so the next phase stops).
uint64_t left_ms(uint64_t timeout_ms, Clock::time_point started) {
  if (timeout_ms == 0) return 0;
  const auto used = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  return timeout_ms > static_cast<uint64_t>(used.count()) ? timeout_ms - used.count() : 1;
}

// Splits path into the directory rsync is given and the prefix listed names carry.
std::string parent_with_slash(const std::string& path) {
  if (path.back() == '/') return path;
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "./" : path.substr(0, slash + 1);
}

// Whether the rsync here takes --trust-sender (asked once, before the buckets start).
bool rsync_has_trust_sender(JobContext& job) {
  std::string first;
  run_commands(
      {Command{.argv = {"rsync", "--version"}}},
      [&](size_t, proto::Stream stream, std::string line) {
        if (stream == proto::Stream::kStdout && first.empty()) first = std::move(line);
      },
      {.timeout = std::chrono::seconds(10)}, job);
  const auto version = parse_rsync_version(first);
  return version && has_trust_sender(*version);
}

// The path as a directory rsync copies into ("dst" and "dst/" both mean inside dst).
std::string with_slash(const std::string& path) {
  return path.back() == '/' ? path : path + '/';
}

// The rsync arguments of a copy that reports progress (delete only on a full pass).
std::vector<std::string> progress_args(const SyncSpec& spec, const std::string& ssh,
                                       bool with_delete) {
  std::vector<std::string> args = common_args(spec, ssh, with_delete);
  args.insert(args.end(), {"--info=progress2", "--no-inc-recursive", "--outbuf=L"});
  return args;
}

// Writes names NUL-separated for --from0 --files-from; an rsync reads the list at once, so
// it need not survive a crash (no fsync). Empty when written, else why not.
std::string write_name_list(const std::string& path, const std::vector<std::string>& names) {
  std::string text;
  for (const auto& name : names)
    text += name + '\0';
  return write_file_atomic(path, text, Durability::kAtomicOnly) ? "" : "cannot write " + path;
}

// Runs one rsync that moves no bytes worth reporting (the deletions, the root's times) after
// the chunks; its result as conclude() gives it.
proto::JobFinished run_one_rsync(std::vector<std::string> args, Tally& tally,
                                 const std::string& where, uint64_t timeout_ms,
                                 Clock::time_point started, JobContext& job) {
  tally.reset(0, 0);
  const RunResult run = run_rsyncs({Command{.argv = std::move(args)}}, tally, where, nullptr,
                                   left_ms(timeout_ms, started), job);
  return conclude(run, tally, timeout_ms, job);
}

// A parallel copy: one dry run compares source and target and itemizes what differs; its
// lines are dealt into chunks (agents/sync_chunks.h), and each full chunk is copied by an
// rsync of its own (its own ssh connection), `parallel` at a time, while the comparison goes
// on. With delete, what only the target has goes in one rsync after the chunks (the paths the
// comparison named, --delete-missing-args). Sets final_pass when a full rsync must still run:
// hard links to keep across chunks.
proto::JobFinished copy_in_chunks(const SyncSpec& spec, const std::string& ssh,
                                  const std::string& where, Clock::time_point started, Tally& tally,
                                  bool& final_pass, JobContext& job) {
  const auto [from, to] = ends(spec, spec.remote, spec.local);
  // Plain strings, not structured bindings: the chunk lambda below captures them (clang 14
  // cannot capture a binding).
  std::string base_from, base_to;
  std::tie(base_from, base_to) =
      spec.push
          ? std::pair{parent_with_slash(spec.local), remote_arg(spec, with_slash(spec.remote))}
          : std::pair{parent_with_slash(from), with_slash(spec.local)};
  std::vector<std::string> compare = common_args(spec, ssh, true);
  // The whole list first: incremental recursion waits a round trip per directory (a 1 %
  // re-sync of 100,000 files in 100 directories took 5.7 s at 40 ms RTT with it, 1.2 s without).
  compare.insert(compare.end(), {"--dry-run", "--itemize-changes", "--out-format=%i %l %n",
                                 "--no-inc-recursive", from, to});
  // Pulling, rsync >= 3.2.5 checks every received name against every --files-from name:
  // quadratic, 20-40 s of CPU for 100k names. The names come from the dry run's comparison
  // of this very transfer, which rsync trusts for the whole tree anyway.
  const bool trust = spec.peer && !spec.push && rsync_has_trust_sender(job);
  ChangeChunker chunker(spec.parallel);
  size_t running = 0;
  std::string write_error;
  const std::string detail = where + " (up to " + std::to_string(spec.parallel) + " rsyncs)";
  tally.reset(1, 0);
  auto start_chunks = [&] {
    std::vector<Command> more;
    while (running < spec.parallel && write_error.empty()) {
      auto chunk = chunker.next();
      if (!chunk) break;
      const std::string list_path = job.dir() + "/chunk-" + std::to_string(chunker.handed_out());
      write_error = write_name_list(list_path, *chunk);
      if (!write_error.empty()) break;
      std::vector<std::string> args = progress_args(spec, ssh, false);
      if (trust) args.push_back("--trust-sender");
      // A non-empty directory where the source now has a file or link goes, as --delete would.
      if (spec.del) args.push_back("--force");
      args.insert(args.end(), {"--from0", "--files-from=" + list_path, base_from, base_to});
      more.push_back({.argv = args, .split_cr = true, .read_every = kProgressReadEvery});
      tally.latest.emplace_back();
      tally.file_caps.push_back(chunk->size());
      ++running;
    }
    return more;
  };
  bool moved = false;  // progress to report on the next tick
  auto sink = [&](size_t i, proto::Stream stream, std::string line) {
    if (i == 0 && stream == proto::Stream::kStdout) {
      if (chunker.feed(line)) {
        tally.files_total = chunker.entries();
        moved = true;
      } else if (!line.empty() && !line.starts_with("created directory ")) {
        job.log(stream, std::move(line));
      }
      return;
    }
    if (rsync_line(tally, i, stream, std::move(line), /*listed_names=*/i > 0, nullptr, job))
      moved = true;
  };
  RunOptions options{.timeout = std::chrono::milliseconds(left_ms(spec.timeout_ms, started)),
                     .tick = [&] {
                       if (moved) job.progress(tally.progress(detail));
                       moved = false;
                     }};
  options.finished = [&](size_t i, int) {
    if (i == 0)
      chunker.finish();
    else
      --running;
    return std::vector<Command>{};
  };
  options.ready = start_chunks;
  const RunResult run = run_commands({Command{.argv = compare, .read_every = kProgressReadEvery}},
                                     sink, options, job);
  if (!write_error.empty()) return failed_result(job.job_id(), write_error);
  proto::JobFinished done = conclude(run, tally, spec.timeout_ms, job);
  if (done.state != proto::JobState::kSucceeded) {
    const int compared = run.commands[0].exit_code.value_or(-1);
    if (done.state == proto::JobState::kFailed && compared != 0 && compared != 24)
      done.error = "comparing source and target: " + done.error;
    return done;
  }
  final_pass = spec.hard_links;
  job.log(proto::Stream::kAgent,
          counted(chunker.entries(), "entry", "entries") + " (" + human_bytes(chunker.bytes()) +
              ") differed: " + counted(chunker.handed_out(), "chunk") + ", up to " +
              std::to_string(spec.parallel) + " rsyncs at once");
  if (final_pass) {
    job.log(proto::Stream::kAgent, "final pass: hard links across chunks");
    return done;
  }
  if (const auto gone = chunker.deletions_to_make(); spec.del && !gone.empty()) {
    const std::string list_path = job.dir() + "/deletions";
    if (const std::string error = write_name_list(list_path, gone); !error.empty())
      return failed_result(job.job_id(), error);
    job.log(proto::Stream::kAgent, "deleting what only the target has: " +
                                       counted(chunker.deletions(), "entry", "entries") + " in " +
                                       counted(gone.size(), "path"));
    std::vector<std::string> args = common_args(spec, ssh, false);
    args.insert(args.end(), {"--force", "--delete-missing-args", "--from0",
                             "--files-from=" + list_path, base_from, base_to});
    const proto::JobFinished deleted =
        run_one_rsync(std::move(args), tally, where, spec.timeout_ms, started, job);
    if (deleted.state != proto::JobState::kSucceeded) return deleted;
  }
  if (chunker.root_touched() && from.back() == '/') {
    // The root's own attributes, after every write into it (its entries excluded).
    std::vector<std::string> root = common_args(spec, ssh, false);
    root.insert(root.end(), {"--dirs", "--exclude=/*", from, to});
    const proto::JobFinished fixed =
        run_one_rsync(std::move(root), tally, where, spec.timeout_ms, started, job);
    if (fixed.state != proto::JobState::kSucceeded) return fixed;
  }
  return done;
}

proto::JobFinished copy(const SyncSpec& spec, const std::string& ssh, JobContext& job) {
  const auto started = Clock::now();
  const auto [from, to] = ends(spec, spec.remote, spec.local);
  const std::string where =
      spec.peer ? (spec.push ? "push to " : "pull from ") + spec.peer->address + ":" + spec.remote
                : "copy from " + spec.remote;
  Tally tally;
  bool final_pass = true;
  proto::JobFinished done;
  if (spec.parallel > 1) {
    done = copy_in_chunks(spec, ssh, where, started, tally, final_pass, job);
    if (done.state != proto::JobState::kSucceeded) return done;
    tally.reset(1, 0);  // a final pass moves bytes, but its files were counted already
  }
  if (final_pass) {
    std::vector<std::string> args = progress_args(spec, ssh, true);
    args.insert(args.end(), {from, to});
    if (spec.parallel == 1) tally.reset(1, UINT64_MAX);
    const RunResult run =
        run_rsyncs({Command{.argv = args, .split_cr = true, .read_every = kProgressReadEvery}},
                   tally, spec.parallel > 1 ? where + " (final pass)" : where, nullptr,
                   left_ms(spec.timeout_ms, started), job);
    done = conclude(run, tally, spec.timeout_ms, job);
    if (done.state != proto::JobState::kSucceeded) return done;
  }
  // The last word: everything checked, every byte that had to move has moved.
  proto::Progress last = tally.progress(where);
  if (last.files_total) last.files = *last.files_total;
  last.total = last.bytes;
  job.progress(last);
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  done.result = Json{{"bytes", last.bytes},
                     {"files", last.files},
                     {"seconds", seconds},
                     {"parallel", spec.parallel},
                     {"vanished", tally.vanished}}
                    .dump();
  return done;
}

proto::JobFinished estimate(const SyncSpec& spec, const std::string& ssh, JobContext& job) {
  std::vector<std::string> args = common_args(spec, ssh, true);
  const auto [from, to] = ends(spec, spec.remote, spec.local);
  args.insert(args.end(), {"--dry-run", "--stats", from, to});
  Tally tally;
  tally.reset(1, 0);
  RsyncStatsParser stats;
  const RunResult run =
      run_rsyncs({Command{.argv = args}}, tally, "estimate", &stats, spec.timeout_ms, job);
  proto::JobFinished done = conclude(run, tally, spec.timeout_ms, job);
  if (done.state != proto::JobState::kSucceeded) return done;
  const RsyncStats& s = stats.stats();
  if (!s.complete) return failed_result(job.job_id(), "rsync printed no --stats summary");
  job.log(proto::Stream::kAgent, counted(s.regular_files_transferred, "file") + ", " +
                                     human_bytes(s.transferred_size) + " would move now (of " +
                                     counted(s.files, "entry", "entries") + ", " +
                                     human_bytes(s.total_size) + ")");
  done.result = Json{{"files", s.regular_files_transferred},
                     {"bytes", s.transferred_size},
                     {"deleted", s.deleted},
                     {"total_files", s.files},
                     {"total_bytes", s.total_size}}
                    .dump();
  return done;
}

proto::JobFinished verify(const SyncSpec& spec, const std::string& ssh, JobContext& job) {
  std::vector<std::string> args = common_args(spec, ssh, false);
  const auto [from, to] = ends(spec, spec.remote, spec.local);
  args.insert(args.end(), {"--dry-run", "--delete", "--itemize-changes", from, to});
  std::vector<std::string> differences;
  size_t count = 0, directory_times = 0;
  Tally tally;
  tally.reset(1, 0);
  const RunResult run = run_commands(
      {Command{.argv = args}},
      [&](size_t, proto::Stream stream, std::string line) {
        if (line.empty()) return;
        if (stream == proto::Stream::kStdout && directory_time_only(line)) {
          // Information, not a difference: rsync sets directory times as entries change.
          if (++directory_times <= kMaxListed)
            job.log(proto::Stream::kAgent, "only the directory's time differs: " + line);
          return;
        }
        if (stream == proto::Stream::kStdout) {
          if (++count > kMaxListed) return;
          line = describe_itemized(line);
          differences.push_back(line);
        } else {
          tally.note(line);
        }
        job.log(stream, std::move(line));
      },
      {.timeout = std::chrono::milliseconds(spec.timeout_ms)}, job);
  proto::JobFinished done = conclude(run, tally, spec.timeout_ms, job);
  if (done.state != proto::JobState::kSucceeded) return done;
  done.result =
      Json{{"differences", count}, {"listed", differences}, {"directory_times", directory_times}}
          .dump();
  if (count > 0) {
    done.state = proto::JobState::kFailed;
    done.error = std::to_string(count) + (count == 1 ? " difference" : " differences") +
                 " between source and target";
  } else {
    job.log(proto::Stream::kAgent,
            "source and target are identical" + (directory_times
                                                     ? " (" + std::to_string(directory_times) +
                                                           " directories differ only in their time)"
                                                     : std::string()));
  }
  return done;
}

}  // namespace

bool validate_sync_spec(std::string_view spec, std::string& error) {
  return parse(spec, error).has_value();
}

proto::JobFinished run_sync(std::string_view text, JobContext& job) {
  std::string error;
  const std::optional<SyncSpec> spec = parse(text, error);
  if (!spec) return failed_result(job.job_id(), error);
  std::string ssh;
  if (spec->peer) {
    auto argv = ssh_argv(*spec->peer, job.dir(), error);
    if (!argv) return failed_result(job.job_id(), error);
    ssh = rsync_shell(*argv);
  }
  if (spec->mode == "estimate") return estimate(*spec, ssh, job);
  if (spec->mode == "verify") return verify(*spec, ssh, job);
  return copy(*spec, ssh, job);
}

}  // namespace cutpilot::agent
