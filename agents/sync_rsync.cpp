#include "agents/sync_rsync.h"

#include <algorithm>

#include "agents/spool.h"

namespace cutpilot::agent::sync_parts {

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

}  // namespace cutpilot::agent::sync_parts
