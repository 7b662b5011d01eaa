// The steps of a plan: typed structs read once from the [[steps]] tables.
//
// A step runs exactly one action on each of its hosts. The action is one of the
// job kinds the agents run (exec, file, sync, db, health; see agents/*_job.h) or a
// pause in the cockpit (wait). Every field here is final: ${...} is expanded, sizes
// and durations are parsed, host and step names are checked to exist.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "plans/diagnostic.h"

namespace cutpilot::plans {

// Durations in steps: timeouts, intervals, waits.
using Millis = std::chrono::milliseconds;

// `exec = { run = ["systemctl", "stop", "shop"] }` or `exec = { shell = "..." }`.
struct ExecAction {
  std::vector<std::string> run;      // the argument vector; empty when shell is set
  std::optional<std::string> shell;  // a command line for /bin/sh -c
  std::map<std::string, std::string> env;
  std::optional<std::string> cwd;
  std::optional<bool> sudo;  // nullopt: the host's `sudo`
  std::optional<Millis> timeout;
};

// What a file action does.
enum class FileOp { kWrite, kRestore };

// `file = { write = "/etc/x.conf", content = "...", mode = "0644", validate = { run = [...] } }`
// or `file = { restore = "/etc/x.conf" }` (puts back the version from before the first write).
struct FileAction {
  FileOp op = FileOp::kWrite;
  std::string path;
  std::string content;              // write only
  std::optional<std::string> mode;  // octal, "0644"
  std::optional<std::string> owner;
  std::optional<std::string> group;
  bool backup = true;
  std::optional<ExecAction> validate;  // runs with the new file in place; failing puts the old back
};

// What a sync job does: copy, count what a copy would move, or check that nothing differs.
enum class SyncMode { kCopy, kEstimate, kVerify };

// `sync = { from = "source:/srv/app/", to = "/srv/app/", delete = true, parallel = 4 }`.
// The job runs on the step's host. At most one side names another plan host
// ("HOST:/path"): from = pull from it, to = push to it; neither = a local copy.
struct SyncAction {
  std::optional<std::string> from_host;  // the plan host the data comes from
  std::string from_path;
  std::optional<std::string> to_host;  // the plan host the data goes to (a push)
  std::string to_path;
  SyncMode mode = SyncMode::kCopy;
  bool del = false;  // `delete`
  bool checksum = false;
  bool one_file_system = false;
  bool numeric_ids = false;
  bool hard_links = false;  // rsync -H
  bool acls = false;        // rsync -A
  bool xattrs = false;      // rsync -X (file capabilities, SELinux labels)
  std::vector<std::string> exclude;
  uint32_t parallel = 1;
  std::optional<uint64_t> bwlimit_kbps;  // `bwlimit = "20MiB"` per second, or KiB/s as an integer
  // A hot pre-sync: the executor repeats the copy until one round moved fewer than
  // this many bytes (the job result's "bytes"), at most max_rounds times.
  std::optional<uint64_t> until_below_bytes;
  uint32_t max_rounds = 1;
  std::optional<Millis> timeout;
  // `track_changes`: from its first round on, the source's agent records what changes in the
  // tree; the copy of the same from/to that follows moves those paths and no others.
  bool track_changes = false;

  // The plan host on the other end, when there is one.
  const std::optional<std::string>& peer_host() const { return from_host ? from_host : to_host; }
  // The host the data comes from when the step runs on `on` (where a watch of it runs).
  std::string source_host(const std::string& on) const { return from_host ? *from_host : on; }
  // What a watch and the copy that uses it share: both ends, hosts and paths.
  std::string track_key(const std::string& on) const {
    return source_host(on) + ":" + from_path + " > " + (to_host ? *to_host : on) + ":" + to_path;
  }
};

// How a copy compresses its stream between the hosts: not at all, gzip, zstd, or zstd where
// both hosts have it and gzip otherwise.
enum class Compress { kNone, kGzip, kZstd, kAuto };

// The database engines the db job kind drives.
enum class DbEngine { kPostgres, kMariadb };

// What a db action does: copy a database, count the clients still connected to one, put back
// the database a copy replaced (a copy's automatic rollback), or drop what a copy set aside.
enum class DbOp { kCopy, kConnections, kPutBack, kDropKept, kCatchUp, kDetach };

// One database: `{ host = "source", database = "shop", port = 5432, password_env = "PGPASS" }`.
struct DbEndpoint {
  // The plan host the database lives on; nullopt: the step's host.
  std::optional<std::string> host;
  // The server's address as the tools on that host reach it; nullopt: the local socket
  // (or, for a direct copy, the plan host's peer_address / address).
  std::optional<std::string> address;
  std::optional<uint16_t> port;
  std::optional<std::string> socket;
  std::string database;
  std::optional<std::string> user;
  std::optional<std::string> password_env;  // a variable of the cockpit's environment
  std::optional<std::string> bin_dir;
  SourcePos pos;
};

// `db = { engine = "postgres", from = {...}, to = {...} }` (copy: the job runs on the host that
// restores) or `db = { engine = "postgres", action = "connections", db = {...}, max = 0 }`.
struct DbAction {
  DbEngine engine = DbEngine::kPostgres;
  DbOp op = DbOp::kCopy;
  DbEndpoint from;               // copy
  DbEndpoint to;                 // copy; its host, when given, is the step's host
  DbEndpoint db;                 // connections
  std::optional<uint64_t> max;   // connections: fail when more clients than this
  std::string format = "plain";  // postgres: plain | custom
  bool create = false;
  bool drop = false;
  bool schema_only = false;
  bool no_owner = false;
  bool no_privileges = false;
  bool verify = true;
  bool direct = false;  // the tools here connect to the source's server (no ssh)
  std::vector<std::string> exclude_tables;
  uint32_t jobs = 1;
  Compress compress = Compress::kNone;  // the dump's stream from the source (ssh -C with jobs)
  std::optional<Millis> timeout;
  // copy with mode = "replicate": logical replication into the side database, streaming
  // until a catch-up (postgres).
  bool replicate = false;
  bool replica_identity_full = false;  // replicate: keyless tables get REPLICA IDENTITY FULL
  // catch-up, detach: the replicate step whose replication they end (its from and to are
  // copied in when the plan is checked).
  std::string of;
  std::optional<SourcePos> of_pos;
};

// The health check kinds (agents/health_job.h).
enum class HealthCheck { kContainers, kHttp, kTcp, kDisk, kLoad, kSystemd, kDns };

// How a health job looks: once, until everything is good, or until its timeout.
enum class HealthMode { kOnce, kWait, kWatch };

// `health = { containers = ["web", "worker"], timeout = "5m" }`, `health = { http =
// "https://shop.example.com/", connect_to = "10.0.0.5" }`, `health = { tcp = "db:5432" }`,
// `health = { disk = "/srv", min_free = "10GiB" }`, `health = { load = 4.0 }`,
// `health = { systemd = "nginx.service" }`, `health = { dns = "www.example.org", servers =
// ["192.0.2.53"], expect = "203.0.113.7", max_ttl = "5m" }`. The mode defaults to wait.
struct HealthAction {
  HealthCheck check = HealthCheck::kContainers;
  HealthMode mode = HealthMode::kWait;
  std::optional<Millis> timeout;
  std::optional<Millis> interval;
  std::optional<Millis> request_timeout;
  // containers
  std::vector<std::string> names;
  std::map<std::string, std::string> labels;
  std::optional<std::string> project;
  std::optional<std::string> socket;
  std::optional<std::string> container_action;  // stop | start | restart, done first
  std::optional<uint64_t> stop_timeout_s;
  // http
  std::string url;
  std::optional<uint16_t> expect_status;
  std::optional<std::string> expect_body;
  std::optional<std::string> host_header;
  std::optional<std::string> connect_to;  // ADDRESS[:PORT], like curl --resolve
  std::optional<bool> tls_verify;
  std::optional<std::string> ca_file;
  // tcp
  std::string address;
  uint16_t port = 0;
  std::optional<std::string> expect;  // tcp: open | closed; systemd: the ActiveState wanted
  // disk
  std::string path;
  std::optional<uint64_t> min_free_bytes;
  std::optional<double> min_free_percent;
  // load
  double max_load1 = 0;
  // systemd
  std::string unit;
  // dns: name's A (or AAAA) records at each server equal expect_addresses (when given), TTL
  // at most max_ttl
  std::string dns_name;
  std::string record_type = "A";
  std::vector<std::string> servers;
  std::vector<std::string> expect_addresses;
  std::optional<Millis> max_ttl;
};

// `dns = { update = "www.example.org", zone = "example.org", server = "192.0.2.53", address =
// "203.0.113.7", ttl = "5m", key = "NAME", key_env = "TSIG_SECRET" }`: an RFC 2136 update
// of the name's A (or AAAA) records, signed with TSIG, the secret from the cockpit's env.
struct DnsAction {
  std::string name;
  std::string zone;
  std::string server;  // ADDRESS[:PORT], an IP address
  std::string record_type = "A";
  std::vector<std::string> addresses;
  Millis ttl{std::chrono::minutes(5)};
  std::string key_name;
  std::string key_env;
  std::string algorithm = "hmac-sha256";
};

// `image = { from = "old:/dev/xvdf", to = "/srv/images/xvdf.img", volume = "data" }`: one file
// or block device of another plan host copied into a file on the step's host as one stream,
// checksummed on both ends (agents/image_job.h). The step runs on the receiving host.
struct ImageAction {
  std::string from_host;  // the plan host the image comes from
  std::string from_path;
  std::string to_path;
  std::string volume;  // a label for the old -> new map (default: the source's file name)
  Compress compress = Compress::kNone;
  std::optional<Millis> timeout;
};

// `wait = "30s"` or `wait = { for = "30s" }`: a pause in the cockpit, no job.
struct WaitAction {
  Millis duration{0};
};

// What a step does on each of its hosts.
using Action = std::variant<ExecAction, FileAction, SyncAction, DbAction, HealthAction, DnsAction,
                            ImageAction, WaitAction>;

// The key that names an action in a step table ("exec", "file", "sync", "db", "health", "dns",
// "image", "wait").
std::string_view action_kind(const Action& action);

// Whether a step waits for the operator before it starts.
enum class Gate { kAuto, kApprove };

// Where a step sits in the downtime window.
enum class Downtime { kNone, kStart, kEnd };

// How a condition compares a number from a step's result.
enum class CompareOp { kLess, kLessEqual, kGreater, kGreaterEqual, kEqual, kNotEqual };

// A step's `when`: "STEP.succeeded", "STEP.failed", "STEP.skipped", "not STEP.succeeded",
// or "STEP.result.FIELD OP NUMBER" (FIELD may be dotted: "result.a.b"; OP one of
// < <= > >= == !=). A false condition skips the step. The named step must have reached a
// final state first, so the executor orders the step after it (as if it were in needs,
// but its failure or skip does not block).
struct Condition {
  std::string text;  // as written, for messages
  std::string step;  // the step it reads
  bool negated = false;
  std::optional<std::string> state;  // a state test: succeeded | failed | skipped
  std::vector<std::string> field;    // a result test: the path under "result"
  CompareOp op = CompareOp::kEqual;
  double number = 0;
};

// What a condition can know about an earlier step: its state (DESIGN.md's step states)
// and, once finished, each host's job result (JSON text; "" when the job gave none).
struct StepOutcome {
  std::string state;
  std::vector<std::string> results;
};

// The outcome of a step by id; nullopt while the step has none (not run yet).
using OutcomeLookup = std::function<std::optional<StepOutcome>(std::string_view step)>;

// True when name can be a step id: letters, digits, '-' and '_' (no '.', which `when` uses).
bool valid_step_id(std::string_view name);

// Parses a `when` text; nullopt with error set when it is not a condition.
std::optional<Condition> parse_condition(std::string_view text, std::string& error);

// Evaluates a condition. A state test compares the step's state. A result test holds when
// the field is a number in every host's result and the comparison holds for each; a step
// without an outcome, a missing field or a non-number make it false (before `not`).
bool evaluate(const Condition& condition, const OutcomeLookup& lookup);

// One [[steps]] table.
struct Step {
  std::string id;
  std::string title;               // defaults to the id
  std::string phase;               // defaults to the previous step's phase ("main" for the first)
  std::vector<std::string> on;     // plan host names, at least one
  Action action;                   // exactly one
  std::vector<std::string> needs;  // steps that must have succeeded first
  Gate gate = Gate::kAuto;
  std::optional<std::string> confirm;  // text the operator types before the step runs
  Downtime downtime = Downtime::kNone;
  std::optional<Action> rollback;  // undoes the step; runs on the same hosts
  bool no_rollback = false;        // `rollback = "none"`: none on purpose
  std::optional<Millis> timeout;   // the whole step on one host; cancels its job
  uint32_t retries = 0;
  std::optional<Condition> when;
  bool point_of_no_return = false;  // after it, abort no longer rolls back the steps before it
  // Its failure does not stop the run: steps that need it are skipped, a `when` can test it
  // ("STEP.failed"). For checks that only apply where something exists (a container).
  bool optional = false;
  // How long the step takes, when no earlier run measured it: the downtime prediction's source
  // for exec, file and health steps (`expect = "20s"`).
  std::optional<Millis> expect;
  SourcePos pos;  // where the [[steps]] table starts
};

// Why an action is destructive (it deletes or overwrites data on a host), or "" when it
// is not: a sync copy with delete, a file write, a container stop or
// restart. An exec is opaque (cutpilot cannot tell `rm -rf` from `ls`), so it never is:
// warning on every sudo command would teach operators to ignore the warning. `cutpilot
// check` warns about a destructive step with neither rollback nor confirm.
std::string destructive_reason(const Action& action);

// The steps in the order the plan reads: phases in first-appearance order, and within a
// phase each step after its needs and its `when` step (file order among equals). The
// plan must have loaded without errors (no cycles). Indices into steps.
std::vector<size_t> ordered_steps(const std::vector<Step>& steps);

// Whether a step waits for the operator: a gate, or a confirmation text to type.
inline bool gated(const Step& step) {
  return step.gate == Gate::kApprove || step.confirm;
}

// The phases in first-appearance order.
std::vector<std::string> phases(const std::vector<Step>& steps);

}  // namespace cutpilot::plans
