#include "agents/peer_job.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "agents/exec_job.h"
#include "agents/spec_fields.h"
#include "agents/spool.h"

namespace cutpilot::agent {
namespace {

using Json = nlohmann::json;

// The key types an authorize entry may carry.
constexpr std::string_view kKeyTypes[] = {"ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"};

// A parsed peer spec.
struct PeerSpec {
  std::string action;
  std::string name;
  std::string public_key;                // "TYPE BASE64", authorize only
  std::vector<std::string> permit_open;  // HOST:PORT the key may forward to (db tunnels)
};

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 128 || name[0] == '.') return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
      return false;
  return true;
}

// "TYPE BASE64 [comment]" -> "TYPE BASE64", or "" when it is not a public key line.
std::string key_part(std::string_view line) {
  const size_t space = line.find(' ');
  if (space == std::string_view::npos) return "";
  const std::string_view type = line.substr(0, space);
  std::string_view blob = line.substr(space + 1);
  blob = blob.substr(0, blob.find(' '));
  bool known = false;
  for (auto t : kKeyTypes)
    known = known || t == type;
  if (!known || blob.size() < 16) return "";
  for (char c : blob)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=') return "";
  return std::string(type) + " " + std::string(blob);
}

// HOST:PORT for a permitopen option: a plain host name or IPv4 address and a port.
bool valid_target(std::string_view target) {
  const size_t colon = target.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == target.size()) return false;
  for (char c : target.substr(0, colon))
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') return false;
  for (char c : target.substr(colon + 1))
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return target.size() - colon - 1 <= 5;
}

std::optional<PeerSpec> parse(std::string_view text, std::string& error) {
  const Json j = Json::parse(text.begin(), text.end(), nullptr, false);
  if (!j.is_object()) {
    error = "the peer spec must be a JSON object";
    return std::nullopt;
  }
  PeerSpec spec;
  const FieldHandlers fields = {
      {"action", text_field(spec.action, error, "action")},
      {"name", text_field(spec.name, error, "name")},
      {"public_key", text_field(spec.public_key, error, "public_key")},
      {"permit_open", list_field(spec.permit_open)},
  };
  if (!read_fields(j, "peer", fields, error)) return std::nullopt;
  for (const auto& target : spec.permit_open)
    if (!valid_target(target)) {
      error = "peer \"permit_open\" entries must be HOST:PORT (bad \"" + target + "\")";
      return std::nullopt;
    }
  if (spec.action != "keygen" && spec.action != "authorize" && spec.action != "revoke" &&
      spec.action != "forget") {
    error = "peer \"action\" must be keygen, authorize, revoke or forget";
  } else if (!valid_name(spec.name)) {
    error = "peer \"name\" must be 1-128 characters of [A-Za-z0-9._-], not starting with '.'";
  } else if ((spec.action == "authorize") != !spec.public_key.empty()) {
    error = "peer \"public_key\" is given with action authorize, and only then";
  } else if (spec.action == "authorize" && key_part(spec.public_key).empty()) {
    error = "peer \"public_key\" is not an ssh public key (ssh-ed25519, ecdsa or rsa)";
  }
  if (!error.empty()) return std::nullopt;
  return spec;
}

// The home of the user ssh logged in as: sshd reads that user's authorized_keys. Under sudo
// the agent's own HOME is root's, so the launch names the login home (kLoginHomeEnv).
std::string login_home() {
  const char* login = std::getenv(kLoginHomeEnv);
  const char* home = login && *login ? login : std::getenv("HOME");
  return home && *home ? home : "";
}

std::string authorized_keys_path() {
  const std::string home = login_home();
  return home.empty() ? "" : home + "/.ssh/authorized_keys";
}

// Run as root for another login user: ~/.ssh and authorized_keys become that user's, as
// sshd's StrictModes wants them, and as the user's own ssh-copy-id would have left them.
bool give_to_login_user(const std::string& dir, const std::string& path, bool dir_made) {
  struct stat home {};
  if (geteuid() != 0 || stat(login_home().c_str(), &home) != 0 || home.st_uid == 0) return true;
  if (dir_made && chown(dir.c_str(), home.st_uid, home.st_gid) != 0) return false;
  return chown(path.c_str(), home.st_uid, home.st_gid) == 0;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

proto::JobFinished succeeded(JobContext& job, std::string result = "") {
  return {job.job_id(), 0, proto::JobState::kSucceeded, 0, "", std::move(result)};
}

proto::JobFinished keygen(const PeerSpec& spec, JobContext& job) {
  const std::string path = migration_key_path(spec.name);
  if (path.empty()) return failed_result(job.job_id(), "HOME is not set");
  const std::string dir = path.substr(0, path.rfind('/'));
  auto public_key = read_file(path + ".pub");
  if (!public_key || access(path.c_str(), R_OK) != 0) {
    // A pair cut short (killed mid-keygen) is made again from scratch.
    unlink(path.c_str());
    unlink((path + ".pub").c_str());
    if (!make_dirs(dir))
      return failed_result(job.job_id(), "cannot create " + dir + ": " + std::strerror(errno));
    Command command{.argv = {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                             migration_key_comment(spec.name), "-f", path}};
    proto::JobFinished made = run_logged(command, 60000, job);
    if (made.state != proto::JobState::kSucceeded) {
      made.error = "ssh-keygen failed: " + made.error;
      return made;
    }
    public_key = read_file(path + ".pub");
    if (!public_key) return failed_result(job.job_id(), "ssh-keygen wrote no " + path + ".pub");
    job.log(proto::Stream::kAgent, "made the migration key " + path);
  } else {
    job.log(proto::Stream::kAgent, "the migration key " + path + " exists; kept");
  }
  return succeeded(job, Json{{"public_key", key_part(*public_key)}, {"key_path", path}}.dump());
}

// Rewrites authorized_keys without the run's entries, plus add (if not empty).
proto::JobFinished rewrite_authorized(const PeerSpec& spec, const std::string& add,
                                      JobContext& job) {
  const std::string path = authorized_keys_path();
  if (path.empty()) return failed_result(job.job_id(), "HOME is not set");
  const std::string comment = " " + migration_key_comment(spec.name);
  const std::string text = read_file(path).value_or("");
  std::string kept;
  size_t removed = 0;
  bool present = false;
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    if (!add.empty() && line == add) {
      present = true;
    } else if (ends_with(line, comment)) {
      ++removed;
      continue;
    }
    kept += line + "\n";
  }
  const std::string result = Json{{"authorized_keys", path}}.dump();
  if (present && removed == 0) {
    job.log(proto::Stream::kAgent, "the migration key is already authorised in " + path);
    return succeeded(job, result);
  }
  if (add.empty() && removed == 0) {
    job.log(proto::Stream::kAgent, "no migration key of run " + spec.name + " in " + path);
    return succeeded(job);
  }
  if (!add.empty() && !present) kept += add + "\n";
  const std::string dir = path.substr(0, path.rfind('/'));
  const bool dir_made = access(dir.c_str(), F_OK) != 0;
  if (!make_dirs(dir) || !write_file_atomic(path, kept) || !give_to_login_user(dir, path, dir_made))
    return failed_result(job.job_id(), "cannot write " + path + ": " + std::strerror(errno));
  job.log(proto::Stream::kAgent, add.empty() ? "removed the migration key from " + path
                                             : "authorised the migration key in " + path);
  return succeeded(job, result);
}

}  // namespace

std::string migration_key_comment(std::string_view run) {
  return "cutpilot-migration:" + std::string(run);
}

std::string migration_key_path(std::string_view run) {
  const std::string keys = cache_dir("keys");
  return keys.empty() ? "" : keys + "/" + escape_job_id(run) + "/id_ed25519";
}

bool validate_peer_spec(std::string_view spec, std::string& error) {
  return parse(spec, error).has_value();
}

proto::JobFinished run_peer(std::string_view text, JobContext& job) {
  std::string error;
  const std::optional<PeerSpec> spec = parse(text, error);
  if (!spec) return failed_result(job.job_id(), error);
  if (spec->action == "keygen") return keygen(*spec, job);
  if (spec->action == "authorize") {
    // restrict: no pty, no forwarding, no agent; the key may only run commands (rsync),
    // and forward to exactly the database ports a copy asked for.
    std::string options = "restrict";
    if (!spec->permit_open.empty()) options += ",port-forwarding";
    for (const auto& target : spec->permit_open)
      options += ",permitopen=\"" + target + "\"";
    const std::string entry =
        options + " " + key_part(spec->public_key) + " " + migration_key_comment(spec->name);
    return rewrite_authorized(*spec, entry, job);
  }
  if (spec->action == "revoke") return rewrite_authorized(*spec, "", job);
  const std::string path = migration_key_path(spec->name);
  const std::string dir = path.substr(0, path.rfind('/'));
  if (!remove_tree(dir))
    return failed_result(job.job_id(), "cannot remove " + dir + ": " + std::strerror(errno));
  job.log(proto::Stream::kAgent, "removed the migration key pair " + dir);
  return succeeded(job);
}

}  // namespace cutpilot::agent
