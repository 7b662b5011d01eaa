// The action kinds table, and what all kinds share: names, destructiveness, job helpers.
#include <algorithm>

#include "plans/kinds.h"

namespace cutpilot::plans {
namespace {

using Json = nlohmann::json;

// A kind's job function over the Action variant.
template <typename Kind, Translation (*Job)(const Kind&, const JobInput&)>
Translation job_of(const Action& action, const JobInput& input) {
  return Job(std::get<Kind>(action), input);
}

// A kind's describe function over the Action variant.
template <typename Kind, std::string (*Describe)(const Kind&, const DescribeInput&)>
std::string shown_as(const Action& action, const DescribeInput& input) {
  return Describe(std::get<Kind>(action), input);
}

// A wait runs in the cockpit: no agent job.
Translation no_job(const Action&, const JobInput&) {
  return {};
}

// Every kind, in the order of Action's alternatives.
constexpr ActionKindSpec kActionKinds[] = {
    {"exec", read_exec_action, job_of<ExecAction, exec_job>, shown_as<ExecAction, describe_exec>},
    {"file", read_file_action, job_of<FileAction, file_job>, shown_as<FileAction, describe_file>},
    {"sync", read_sync_action, job_of<SyncAction, sync_job>, shown_as<SyncAction, describe_sync>},
    {"db", read_db_action, job_of<DbAction, db_job>, shown_as<DbAction, describe_db>},
    {"health", read_health_action, job_of<HealthAction, health_job>,
     shown_as<HealthAction, describe_health>},
    {"dns", read_dns_action, job_of<DnsAction, dns_job>, shown_as<DnsAction, describe_dns>},
    {"image", read_image_action, job_of<ImageAction, image_job>,
     shown_as<ImageAction, describe_image>},
    {"wait", read_wait_action, no_job, shown_as<WaitAction, describe_wait>},
};
static_assert(std::size(kActionKinds) == std::variant_size_v<Action>,
              "one kind per Action alternative, in the same order");

// Bytes a shell word may hold without quotes.
bool plain_shell_byte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("-_./=:,+@%").find(c) != std::string_view::npos;
}

}  // namespace

std::span<const ActionKindSpec> action_kinds() {
  return kActionKinds;
}

std::string_view action_kind(const Action& action) {
  return kActionKinds[action.index()].key;
}

std::string destructive_reason(const Action& action) {
  if (const auto* sync = std::get_if<SyncAction>(&action))
    return sync->del && sync->mode == SyncMode::kCopy ? "a sync with delete removes files" : "";
  // A db copy is not counted: it keeps the database it replaces and puts it back on rollback.
  // Nor is an image copy: like a sync without delete, it only puts a verified copy in place.
  if (const auto* file = std::get_if<FileAction>(&action))
    return file->op == FileOp::kWrite ? "a file write replaces " + file->path : "";
  if (const auto* health = std::get_if<HealthAction>(&action))
    return health->container_action == "stop" || health->container_action == "restart"
               ? "it " + *health->container_action + "s containers"
               : "";
  if (const auto* dns = std::get_if<DnsAction>(&action))
    return "a dns update replaces the records of " + dns->name;
  return "";
}

bool errors_since(Reader& reader, size_t before) {
  const auto& all = reader.diagnostics();
  return std::any_of(all.begin() + static_cast<std::ptrdiff_t>(std::min(before, all.size())),
                     all.end(), [](const Diagnostic& d) { return d.severity == Severity::kError; });
}

Translation make_job(std::string_view kind, const Json& spec) {
  std::string text = spec.dump();
  return {JobSpec{std::string(kind), text, text}, ""};
}

Translation job_error(const JobInput& input, std::string_view why) {
  return {std::nullopt, "step " + quote(input.step.id) + " on " + quote(input.host.name) + ": " +
                            std::string(why)};
}

uint64_t timeout_ms(const std::optional<Millis>& own, const JobInput& input) {
  if (own) return static_cast<uint64_t>(own->count());
  return input.step.timeout ? static_cast<uint64_t>(input.step.timeout->count()) : 0;
}

std::optional<Json> peer_spec(const std::string& other, const JobInput& input, std::string& error) {
  const std::optional<PeerAccess> peer =
      input.context.peer ? input.context.peer(other) : std::nullopt;
  if (!peer || peer->host_key.empty()) {
    error = "no verified host key for " + quote(other) + " (the cockpit connects to it first)";
    return std::nullopt;
  }
  if (input.context.run_key.empty()) {
    error = "the run has no migration key name";
    return std::nullopt;
  }
  Json j = {{"address", peer->address},
            {"port", peer->port},
            {"host_key", peer->host_key},
            {"key", input.context.run_key}};
  if (!peer->user.empty()) j["user"] = peer->user;
  return j;
}

std::string shell_quote(std::string_view word) {
  if (!word.empty() && std::all_of(word.begin(), word.end(), plain_shell_byte))
    return std::string(word);
  std::string out = "'";
  for (char c : word)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string shell_join(const std::vector<std::string>& argv) {
  std::string line;
  for (const std::string& word : argv)
    line += (line.empty() ? "" : " ") + shell_quote(word);
  return line;
}

}  // namespace cutpilot::plans
