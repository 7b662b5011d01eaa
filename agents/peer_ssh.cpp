#include "agents/peer_ssh.h"

#include "agents/peer_job.h"
#include "agents/spec_fields.h"
#include "agents/spool.h"

namespace cutpilot::agent {
namespace {

// A path for an ssh option that expands %-tokens (job directories hold %2F).
std::string ssh_path(const std::string& path) {
  std::string out;
  for (char c : path)
    out += c == '%' ? std::string("%%") : std::string(1, c);
  return out;
}

}  // namespace

std::optional<Peer> parse_peer(const nlohmann::json& j, const std::string& what,
                               std::string& error) {
  Peer peer;
  const FieldHandlers fields = {
      {"address", text_field(peer.address, error, what + ".address")},
      {"port", count_field(peer.port)},
      {"user", text_field(peer.user, error, what + ".user")},
      {"host_key", text_field(peer.host_key, error, what + ".host_key")},
      {"key", text_field(peer.key, error, what + ".key")},
      {"cipher", text_field(peer.cipher, error, what + ".cipher")},
      {"sudo", flag_field(peer.sudo)},
  };
  if (!read_fields(j, what, fields, error)) return std::nullopt;
  if (peer.address.empty() || peer.host_key.empty() || peer.key.empty() || peer.port == 0 ||
      peer.port > 65535) {
    error = "\"" + what + "\" needs address, port (1-65535), host_key and key";
  } else if (peer.host_key.find_first_of("\n\r") != std::string::npos) {
    error = "\"" + what + ".host_key\" must be one line";
  } else if (peer.address.find_first_of(" \n\r'\"") != std::string::npos ||
             peer.address[0] == '-') {
    error = "\"" + what + ".address\" is not a host name or address";
  }
  if (!error.empty()) return std::nullopt;
  return peer;
}

std::optional<std::vector<std::string>> ssh_argv(const Peer& peer, const std::string& dir,
                                                 std::string& error) {
  const std::string known_hosts = dir + "/known_hosts";
  const std::string name =
      peer.port == 22 ? peer.address : "[" + peer.address + "]:" + std::to_string(peer.port);
  if (!write_file_atomic(known_hosts, name + " " + peer.host_key + "\n")) {
    error = "cannot write " + known_hosts;
    return std::nullopt;
  }
  std::vector<std::string> argv = {"ssh",
                                   "-F",
                                   "/dev/null",
                                   "-o",
                                   "BatchMode=yes",
                                   "-o",
                                   "IdentitiesOnly=yes",
                                   "-o",
                                   "StrictHostKeyChecking=yes",
                                   "-o",
                                   "UserKnownHostsFile=" + ssh_path(known_hosts),
                                   "-o",
                                   "GlobalKnownHostsFile=/dev/null",
                                   "-o",
                                   "ServerAliveInterval=15",
                                   "-o",
                                   "ServerAliveCountMax=4",
                                   "-o",
                                   "Compression=no",
                                   "-i",
                                   ssh_path(migration_key_path(peer.key)),
                                   "-p",
                                   std::to_string(peer.port),
                                   "-c",
                                   peer.cipher};
  if (!peer.user.empty()) argv.insert(argv.end(), {"-l", peer.user});
  return argv;
}

std::string rsync_shell(const std::vector<std::string>& argv) {
  std::string command;
  for (const auto& word : argv) {
    command += command.empty() ? "'" : " '";
    for (char c : word)
      command += c == '\'' ? std::string("''") : std::string(1, c);  // rsync: '' is a quote
    command += "'";
  }
  return command;
}

std::string shell_word(const std::string& word) {
  std::string out = "'";
  for (char c : word)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string shell_line(const std::vector<std::string>& argv) {
  std::string line;
  for (const auto& word : argv)
    line += (line.empty() ? "" : " ") + shell_word(word);
  return line;
}

}  // namespace cutpilot::agent
