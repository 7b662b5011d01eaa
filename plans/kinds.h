// The step action kinds as a table: one file per kind (kind_exec.cpp, kind_file.cpp,
// kind_sync.cpp, kind_db.cpp, kind_health.cpp, kind_wait.cpp), each declaring the
// TOML fields it reads, the agent job it becomes and how `cutpilot plan` shows it.
// Internal to plans/: the executor uses step.h and job_spec.h.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "plans/fields.h"
#include "plans/job_spec.h"
#include "plans/plan.h"
#include "plans/step.h"

namespace cutpilot::plans {

// How an action uses a plan host it names (checked once the step's `on` is known).
enum class HostUse {
  kAny,    // must exist
  kOther,  // must exist and not be a host the step runs on (the far end of a sync or db copy)
  kSelf,   // must be the one host the step runs on (a db copy's `to`)
};

// A plan host named inside an action, with where and how.
struct HostRef {
  Located name;
  std::string what;  // "'from' in sync of step 'presync'", for messages
  HostUse use = HostUse::kAny;
};

// Reading one action table (`sync = { ... }`): the reader, the entry and what it found.
struct ActionInput {
  Reader& reader;
  const Entry& entry;
  std::string section;          // "sync of step 'presync'", for messages
  std::vector<HostRef>& hosts;  // plan hosts the action names
};

// Translating one action for one host (see job_for).
struct JobInput {
  const Plan& plan;
  const Step& step;
  const HostSpec& host;
  const JobContext& context;
};

// Showing one action on one host for `cutpilot plan`.
struct DescribeInput {
  const Plan& plan;
  const Step& step;
  const HostSpec& host;
};

// One action kind: its key in a step table, how to read it, the job it becomes (none for a
// wait) and how `cutpilot plan` shows it. The table is in actions.cpp, in Action's order.
struct ActionKindSpec {
  std::string_view key;
  std::optional<Action> (*read)(ActionInput& input);
  Translation (*job)(const Action& action, const JobInput& input);
  std::string (*describe)(const Action& action, const DescribeInput& input);
};

// Reads an action's table (`sync = { ... }`) through fields into read; false, with the error
// said, when the entry is not a table (shape shows what it should look like).
template <typename Read>
bool read_action_table(ActionInput& input, std::span<const FieldSpec<Read>> fields, Read& read,
                       std::string_view shape) {
  const toml::value& table = input.entry.value;
  if (!table.is_table()) {
    input.reader.error(input.reader.source().pos_of(table),
                       input.section + " must be a table: " + std::string(shape));
    return false;
  }
  read_fields<Read>(input.reader, table, input.section, fields, read);
  return true;
}

// Every action kind, in the order of Action's alternatives (index with action.index()).
std::span<const ActionKindSpec> action_kinds();

// True when the reader recorded an error at or after index before (warnings do not count).
bool errors_since(Reader& reader, size_t before);
// The sync/db "peer" object for reaching plan host other; nullopt with error set when the
// cockpit has no verified key for it or the run has no key name.
std::optional<nlohmann::json> peer_spec(const std::string& other, const JobInput& input,
                                        std::string& error);
// A job spec from a JSON object (redacted is the same unless the kind says otherwise).
Translation make_job(std::string_view kind, const nlohmann::json& spec);
// A translation that failed: "step 'x' on 'host': " + why.
Translation job_error(const JobInput& input, std::string_view why);
// The timeout a job gets: the action's own, else the step's; 0 for none.
uint64_t timeout_ms(const std::optional<Millis>& own, const JobInput& input);
// argv as one POSIX shell command line, each word quoted only when it needs it.
std::string shell_join(const std::vector<std::string>& argv);
// One word quoted for a POSIX shell only when it needs it.
std::string shell_quote(std::string_view word);

// Each kind's functions, as the table in actions.cpp lists them: read_K_action reads
// `K = { ... }` of a step (or a rollback), K_job is its agent job on one host, describe_K
// is the line `cutpilot plan` shows for one host.

// Reads `exec = { run = [...] }` or `exec = { shell = "..." }`.
std::optional<Action> read_exec_action(ActionInput& input);
// An exec table (also a file write's validate); section names it in messages.
std::optional<ExecAction> read_exec(Reader& reader, const toml::value& table,
                                    const std::string& section);
// The exec job spec object (also a file write's validate); host_sudo when the action has none.
nlohmann::json exec_spec(const ExecAction& exec, bool host_sudo, uint64_t timeout);
// The `exec` job (agents/exec_job.h).
Translation exec_job(const ExecAction& exec, const JobInput& input);
// The command line an exec runs, shell-quoted (sudo, env and cwd included).
std::string describe_exec(const ExecAction& exec, const DescribeInput& input);

// Reads `file = { write = "/path", content = "..." }` or `file = { restore = "/path" }`.
std::optional<Action> read_file_action(ActionInput& input);
// The `file` job (agents/file_job.h).
Translation file_job(const FileAction& file, const JobInput& input);
// "write PATH (SIZE, mode ...)" or "restore PATH ...".
std::string describe_file(const FileAction& file, const DescribeInput& input);

// Reads `sync = { from = "HOST:/path/", to = "/path/", ... }`.
std::optional<Action> read_sync_action(ActionInput& input);
// The `sync` job (agents/sync_job.h), with the peer the context knows.
Translation sync_job(const SyncAction& sync, const JobInput& input);
// The equivalent rsync command line.
std::string describe_sync(const SyncAction& sync, const DescribeInput& input);
// The step whose track_changes watch a copy of step on host uses (same from/to), or nullptr.
const Step* watching_step(const Plan& plan, const Step& step, const std::string& host);

// Reads `db = { engine = "postgres", from = { ... }, to = { ... } }` (or connections).
std::optional<Action> read_db_action(ActionInput& input);
// The `db` job (agents/db_job.h), passwords from the context's secrets.
Translation db_job(const DbAction& db, const JobInput& input);
// The equivalent `pg_dump ... | psql ...`, passwords shown as $NAME.
std::string describe_db(const DbAction& db, const DescribeInput& input);
// The rollback a step gets when it names none: a db copy's put-back; nullopt for other actions.
std::optional<Action> default_rollback(const Action& action);
// The HOST:PORT a parallel copy's tunnel opens on the source, when it opens one.
std::optional<std::string> db_tunnel_target(const DbAction& db);

// Reads `health = { containers = [...], ... }` and the other checks.
std::optional<Action> read_health_action(ActionInput& input);
// The `health` job (agents/health_job.h).
Translation health_job(const HealthAction& health, const JobInput& input);
// The probe in words: "wait up to 5m until containers web are running and healthy".
std::string describe_health(const HealthAction& health, const DescribeInput& input);

// Reads `dns = { update = "www.example.org", ... }`.
std::optional<Action> read_dns_action(ActionInput& input);
// The `dns` job (agents/dns_update.h), its TSIG secret from the context's secrets.
Translation dns_job(const DnsAction& dns, const JobInput& input);
// "update www.example.org A to 203.0.113.7 (TTL 5m) at 192.0.2.53, signed with key K".
std::string describe_dns(const DnsAction& dns, const DescribeInput& input);
// True for a DNS server as plans write one: "ADDRESS", "ADDRESS:PORT" or "[V6]:PORT" with an IP
// address (a resolver is never a name).
bool valid_dns_server(const std::string& text);
// True for a name an environment variable may have (letters, digits, '_', not a digit first).
bool valid_env_name(std::string_view name);
// Reads a key naming an environment variable the step reads when it runs (password_env,
// key_env): refused unless a valid name, a warning when it is not set now.
std::optional<std::string> read_env_name(Reader& r, const Entry& e);

// Reads `image = { from = "HOST:/dev/xvdf", to = "/srv/images/xvdf.img" }`.
std::optional<Action> read_image_action(ActionInput& input);
// The `image` job (agents/image_job.h), with the peer the context knows.
Translation image_job(const ImageAction& image, const JobInput& input);
// "copy old:/dev/xvdf to /srv/images/xvdf.img as one stream, sha256 on both ends".
std::string describe_image(const ImageAction& image, const DescribeInput& input);

// The names of Compress's values, in its order ("none", "gzip", "zstd", "auto").
std::span<const std::string_view> compress_names();
// Reads a `compress` key into out.
void read_compress(Reader& r, const Entry& e, Compress& out);

// Reads `wait = "30s"` or `wait = { for = "30s" }`.
std::optional<Action> read_wait_action(ActionInput& input);
// "pause 30s (in the cockpit, no job)".
std::string describe_wait(const WaitAction& wait, const DescribeInput& input);

}  // namespace cutpilot::plans
