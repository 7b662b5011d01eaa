// The sync action kind: rsync between the step's host and another plan host (or locally).
#include "plans/kinds.h"
#include "plans/size.h"

namespace cutpilot::plans {
namespace {

using Json = nlohmann::json;

// The most rsyncs one parallel sync runs (agents/sync_job.cpp kMaxParallel).
constexpr int64_t kMaxParallel = 64;
// A hot pre-sync repeats at most this often.
constexpr int64_t kMaxRounds = 100;
// max_rounds when until_below is given without it.
constexpr uint32_t kDefaultRounds = 5;

constexpr std::string_view kSyncModes[] = {"copy", "estimate", "verify"};

// A sync table as read, with what must be checked once all of it is known.
struct SyncRead : SyncAction {
  bool has_from = false, has_to = false, has_rounds = false, has_until = false;
  std::optional<Located> from_at, to_at;  // where another host is named
  SourcePos rounds_pos;
};

// "HOST:/path" or "/path": the host (if any, with where) and the path.
void read_end(Reader& r, const Entry& e, std::optional<std::string>& host, std::string& path,
              std::optional<Located>& where) {
  auto v = r.string(e);
  if (!v) return;
  const size_t colon = v->find(':');
  if (v->front() != '/' && colon != std::string::npos && colon > 0) {
    host = v->substr(0, colon);
    where = Located{*host, r.source().pos_of(e.value)};
    path = v->substr(colon + 1);
  } else {
    path = *v;
  }
  if (path.empty() || path.front() != '/')
    r.value_error(e,
                  "must be an absolute path, or HOST:/path on another plan host, not " + quote(*v));
}

constexpr FieldSpec<SyncRead> kSyncFields[] = {
    {"from",
     [](Reader& r, const Entry& e, SyncRead& x) {
       x.has_from = true;
       read_end(r, e, x.from_host, x.from_path, x.from_at);
     }},
    {"to",
     [](Reader& r, const Entry& e, SyncRead& x) {
       x.has_to = true;
       read_end(r, e, x.to_host, x.to_path, x.to_at);
     }},
    {"mode",
     [](Reader& r, const Entry& e, SyncRead& x) {
       if (auto v = r.choice(e, kSyncModes))
         x.mode = *v == "copy"       ? SyncMode::kCopy
                  : *v == "estimate" ? SyncMode::kEstimate
                                     : SyncMode::kVerify;
     }},
    {"delete", read_flag<SyncRead, &SyncAction::del>},
    {"checksum", read_flag<SyncRead, &SyncAction::checksum>},
    {"one_file_system", read_flag<SyncRead, &SyncAction::one_file_system>},
    {"numeric_ids", read_flag<SyncRead, &SyncAction::numeric_ids>},
    {"hard_links", read_flag<SyncRead, &SyncAction::hard_links>},
    {"acls", read_flag<SyncRead, &SyncAction::acls>},
    {"xattrs", read_flag<SyncRead, &SyncAction::xattrs>},
    {"exclude",
     [](Reader& r, const Entry& e, SyncRead& x) {
       if (auto v = r.strings(e, /*single=*/true, /*allow_empty=*/true)) x.exclude = *v;
     }},
    {"parallel",
     [](Reader& r, const Entry& e, SyncRead& x) {
       if (auto v = r.integer(e, 1, kMaxParallel)) x.parallel = static_cast<uint32_t>(*v);
     }},
    {"bwlimit",
     [](Reader& r, const Entry& e, SyncRead& x) {
       if (e.value.is_integer()) {
         if (auto v = r.integer(e, 1, int64_t{1} << 40)) x.bwlimit_kbps = *v;
         return;
       }
       const auto v = r.size(e);
       if (v && *v < 1024) r.value_error(e, "must be at least 1KiB (per second)");
       if (v && *v >= 1024) x.bwlimit_kbps = *v / 1024;
     }},
    {"until_below",
     [](Reader& r, const Entry& e, SyncRead& x) {
       x.has_until = true;
       if (auto v = r.size(e)) x.until_below_bytes = *v;
     }},
    {"max_rounds",
     [](Reader& r, const Entry& e, SyncRead& x) {
       x.has_rounds = true;
       x.rounds_pos = r.source().pos_of(e.value);
       if (auto v = r.integer(e, 1, kMaxRounds)) x.max_rounds = static_cast<uint32_t>(*v);
     }},
    {"timeout", read_time<SyncRead, &SyncAction::timeout>},
    {"track_changes", read_flag<SyncRead, &SyncAction::track_changes>},
};

// The sync keys that are plain rsync switches, by the name the plan and the job spec give
// them ("delete" is not: verify always deletes).
struct Switch {
  std::string_view key;
  bool SyncAction::*member;
  std::string_view rsync;
};
constexpr Switch kSwitches[] = {
    {"checksum", &SyncAction::checksum, "--checksum"},
    {"one_file_system", &SyncAction::one_file_system, "--one-file-system"},
    {"numeric_ids", &SyncAction::numeric_ids, "--numeric-ids"},
    {"hard_links", &SyncAction::hard_links, "--hard-links"},
    {"acls", &SyncAction::acls, "--acls"},
    {"xattrs", &SyncAction::xattrs, "--xattrs"},
};

// The rsync options a sync passes, as rsync spells them.
std::vector<std::string> rsync_options(const SyncAction& sync) {
  std::vector<std::string> args = {"rsync", "-a"};
  if (sync.mode == SyncMode::kEstimate) args.insert(args.end(), {"--dry-run", "--stats"});
  if (sync.mode == SyncMode::kVerify)
    args.insert(args.end(), {"--dry-run", "--itemize-changes", "--delete"});
  if (sync.del && sync.mode != SyncMode::kVerify) args.push_back("--delete");
  for (const Switch& s : kSwitches)
    if (sync.*s.member) args.emplace_back(s.rsync);
  if (sync.bwlimit_kbps) args.push_back("--bwlimit=" + std::to_string(*sync.bwlimit_kbps));
  for (const std::string& pattern : sync.exclude)
    args.push_back("--exclude=" + pattern);
  return args;
}

// ADDRESS:PATH as rsync names a remote path ([ADDRESS]:PATH for IPv6), with the user.
std::string remote_path(const PeerAccess& peer, const std::string& path) {
  const std::string address =
      peer.address.find(':') != std::string::npos ? "[" + peer.address + "]" : peer.address;
  return (peer.user.empty() ? "" : peer.user + "@") + address + ":" + path;
}

}  // namespace

const Step* watching_step(const Plan& plan, const Step& step, const std::string& host) {
  const auto* sync = std::get_if<SyncAction>(&step.action);
  if (!sync || sync->track_changes || sync->mode != SyncMode::kCopy) return nullptr;
  const std::string key = sync->track_key(host);
  for (const Step& other : plan.steps) {
    const auto* hot = std::get_if<SyncAction>(&other.action);
    if (!hot || !hot->track_changes) continue;
    for (const auto& on : other.on)
      if (hot->track_key(on) == key) return &other;
  }
  return nullptr;
}

std::optional<Action> read_sync_action(ActionInput& input) {
  Reader& reader = input.reader;
  const toml::value& table = input.entry.value;
  const size_t before = reader.diagnostics().size();
  SyncRead read;
  if (!read_action_table<SyncRead>(input, kSyncFields, read,
                                   "{ from = \"HOST:/path/\", to = \"/path/\" }"))
    return std::nullopt;
  SyncAction& sync = read;
  const SourcePos at = reader.source().pos_of(table);
  if (!read.has_from || !read.has_to)
    reader.error(at, input.section +
                         " needs 'from' and 'to' (from = \"HOST:/path/\", to = "
                         "\"/path/\")");
  if (read.from_at && read.to_at)
    reader.error(read.to_at->pos, input.section +
                                      " names a host on both ends; the step runs on one of "
                                      "them, so write that end as a path alone");
  if (read.from_at)
    input.hosts.push_back({*read.from_at, "'from' in " + input.section, HostUse::kOther});
  if (read.to_at) input.hosts.push_back({*read.to_at, "'to' in " + input.section, HostUse::kOther});
  if (sync.until_below_bytes && sync.mode != SyncMode::kCopy)
    reader.error(at, input.section + " repeats (until_below) only in mode \"copy\"");
  if (sync.track_changes && sync.mode != SyncMode::kCopy)
    reader.error(at, input.section + " tracks changes (track_changes) only in mode \"copy\"");
  if (read.has_rounds && !read.has_until)
    reader.error(read.rounds_pos, "'max_rounds' in " + input.section +
                                      " needs 'until_below' (the delta that ends the repeats)");
  if (sync.until_below_bytes && !read.has_rounds) sync.max_rounds = kDefaultRounds;
  if (errors_since(reader, before)) return std::nullopt;
  return Action(std::move(sync));
}

Translation sync_job(const SyncAction& sync, const JobInput& input) {
  static constexpr const char* kModes[] = {"copy", "estimate", "verify"};
  Json spec = {{"mode", kModes[static_cast<int>(sync.mode)]}};
  const bool push = sync.to_host.has_value();
  spec["direction"] = push ? "push" : "pull";
  spec["local"] = push ? sync.from_path : sync.to_path;
  spec["remote"] = push ? sync.to_path : sync.from_path;
  if (const auto& other = sync.peer_host()) {
    std::string error;
    std::optional<Json> peer = peer_spec(*other, input, error);
    if (!peer) return job_error(input, error);
    // The other host's files are root's there as well: rsync runs there under sudo.
    const HostSpec* host = input.plan.find_host(*other);
    if (host && host->sudo) (*peer)["sudo"] = true;
    spec["peer"] = std::move(*peer);
  }
  if (sync.del) spec["delete"] = true;
  for (const Switch& s : kSwitches)
    if (sync.*s.member) spec[std::string(s.key)] = true;
  if (!sync.exclude.empty()) spec["exclude"] = sync.exclude;
  if (sync.bwlimit_kbps) spec["bwlimit_kbps"] = *sync.bwlimit_kbps;
  if (sync.parallel > 1) spec["parallel"] = sync.parallel;
  if (const uint64_t timeout = timeout_ms(sync.timeout, input)) spec["timeout_ms"] = timeout;
  return make_job("sync", spec);
}

std::string describe_sync(const SyncAction& sync, const DescribeInput& input) {
  std::vector<std::string> argv = rsync_options(sync);
  std::string from = sync.from_path, to = sync.to_path;
  // Who does what, as an operator must know before a copy of root-owned files.
  std::string who = input.host.sudo ? "as root via sudo on " + input.host.name : "";
  if (const auto& other = sync.peer_host()) {
    const HostSpec* host = input.plan.find_host(*other);
    const PeerAccess peer = host ? default_peer_access(*host) : PeerAccess{*other};
    const bool sudo_there = host && host->sudo;
    if (sudo_there) argv.push_back("--rsync-path=sudo -n rsync");
    argv.push_back("-e");
    argv.push_back(peer.port == 22 ? "ssh" : "ssh -p " + std::to_string(peer.port));
    (sync.from_host ? from : to) = remote_path(peer, sync.from_host ? from : to);
    who += (who.empty() ? "" : "; ") + std::string("logs in to ") + *other + " as " +
           (peer.user.empty() ? "the user the cockpit logs in as" : peer.user) +
           (sudo_there ? ", rsync there as root via sudo" : "");
  }
  argv.push_back(from);
  argv.push_back(to);
  std::string line = shell_join(argv);
  if (!who.empty()) line += "   (" + who + ")";
  if (sync.parallel > 1)
    line += "   (compared once, then up to " + std::to_string(sync.parallel) +
            " rsyncs at once on what differs" +
            (sync.hard_links ? ", then a full pass for the hard links)" : ")");
  if (sync.track_changes)
    line += "   (" + sync.source_host(input.host.name) +
            "'s source is watched from the first round on: the next copy of the same from/to "
            "moves only what changed)";
  if (const Step* watch = watching_step(input.plan, input.step, input.host.name))
    line += "   (moves only the paths the watch begun by " + watch->id +
            " recorded; the whole tree when that set is incomplete)";
  if (sync.until_below_bytes)
    line += "   (repeated until a round moves less than " + format_size(*sync.until_below_bytes) +
            ", at most " + std::to_string(sync.max_rounds) + " rounds)";
  return line;
}

}  // namespace cutpilot::plans
