#include "agents/sync_job.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "agents/spec_fields.h"
#include "agents/sync_rsync.h"
#include "agents/words.h"

namespace cutpilot::agent {
namespace {

using namespace sync_parts;
using Json = nlohmann::json;

// The most rsyncs one parallel sync runs at once.
constexpr uint64_t kMaxParallel = 64;

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
      {"tracked",
       [&](const Json& v) {
         return read_fields(v, "sync \"tracked\"",
                            {{"list", text_field(spec.tracked_list, error, "list")},
                             {"remote", flag_field(spec.tracked_remote)},
                             {"paths", count_field(spec.tracked_paths)}},
                            error);
       }},
      {"scan_reason", text_field(spec.scan_reason, error, "scan_reason")},
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
  } else if (!spec.tracked_list.empty() && (spec.mode != "copy" || spec.tracked_list[0] != '/')) {
    error = "sync \"tracked\" needs mode copy and an absolute \"list\"";
  } else if (spec.tracked_remote && (!spec.peer || spec.push)) {
    error = "sync \"tracked\" with \"remote\" needs a pull from a peer (the list is there)";
  } else if (spec.parallel == 0 || spec.parallel > kMaxParallel) {
    error = "sync \"parallel\" must be between 1 and " + std::to_string(kMaxParallel);
  }
  if (!error.empty()) return std::nullopt;
  return spec;
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
  const bool tracked = !spec.tracked_list.empty();
  if (tracked) {
    done = copy_tracked(spec, ssh, where, started, tally, job);
    if (done.state != proto::JobState::kSucceeded) return done;
    final_pass = false;
  } else if (!spec.scan_reason.empty()) {
    job.log(proto::Stream::kAgent, "scanning the whole tree: " + spec.scan_reason);
  }
  if (!tracked && spec.parallel > 1) {
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
  Json result = {{"bytes", last.bytes},
                 {"files", last.files},
                 {"seconds", seconds},
                 {"parallel", spec.parallel},
                 {"vanished", tally.vanished},
                 // What the copy looked at: the watch's list, or the whole tree.
                 {"scan", tracked ? "tracked" : "full"},
                 {"paths", tracked ? spec.tracked_paths : last.files}};
  if (!spec.scan_reason.empty()) result["scan_reason"] = spec.scan_reason;
  done.result = result.dump();
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