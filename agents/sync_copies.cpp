#include "agents/sync_rsync.h"

#include <tuple>

#include "agents/sync_chunks.h"
#include "agents/words.h"

namespace cutpilot::agent::sync_parts {

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

proto::JobFinished copy_tracked(const SyncSpec& spec, const std::string& ssh,
                                const std::string& where, Clock::time_point started, Tally& tally,
                                JobContext& job) {
  const auto [from, to] = ends(spec, spec.remote, spec.local);
  const std::string base_from = spec.push ? parent_with_slash(spec.local) : parent_with_slash(from);
  const std::string base_to =
      spec.push ? remote_arg(spec, with_slash(spec.remote)) : with_slash(spec.local);
  job.log(proto::Stream::kAgent, "moving the " + counted(spec.tracked_paths, "path") +
                                     " the watch recorded (no scan of the tree)");
  std::vector<std::string> args = progress_args(spec, ssh, false);
  if (spec.peer && !spec.push && spec.tracked_paths > 1000 && rsync_has_trust_sender(job))
    args.push_back("--trust-sender");  // the list is the sender's own
  // A listed path the source no longer has was removed or renamed there.
  args.push_back(spec.del ? "--delete-missing-args" : "--ignore-missing-args");
  if (spec.del) args.push_back("--force");
  // A listed path below an excluded directory is not pruned with it, as a walk would prune
  // it: everything below whatever a pattern matches is excluded too.
  for (std::string pattern : spec.exclude) {
    while (pattern.size() > 1 && pattern.back() == '/')
      pattern.pop_back();
    args.push_back("--exclude=" + pattern + "/**");
  }
  args.insert(
      args.end(),
      {"--from0", "--files-from=" + std::string(spec.tracked_remote ? ":" : "") + spec.tracked_list,
       base_from, base_to});
  tally.reset(1, spec.tracked_paths);
  tally.files_total = spec.tracked_paths;
  const RunResult run =
      run_rsyncs({Command{.argv = args, .split_cr = true, .read_every = kProgressReadEvery}}, tally,
                 where + " (tracked)", nullptr, left_ms(spec.timeout_ms, started), job);
  return conclude(run, tally, spec.timeout_ms, job);
}

}  // namespace cutpilot::agent::sync_parts
