// How a job reaches the other host of a migration: ssh with the run's migration key
// and a known_hosts file holding exactly the key the cockpit verified for that host.
//
// Spec object (in sync and db specs): {"address", "port", "user", "host_key": "TYPE BASE64",
// "key": RUN, "cipher", "sudo": true (rsync runs there as root)}.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace cutpilot::agent {

// The ciphers offered host to host, fastest first (AES-GCM wins where the CPU has AES-NI).
inline constexpr std::string_view kDefaultCiphers =
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr";

// The other host, as this one reaches it.
struct Peer {
  std::string address;
  uint64_t port = 22;
  std::string user;
  std::string host_key;  // "TYPE BASE64", as the cockpit verified it
  std::string key;       // the run whose migration key to use
  std::string cipher = std::string(kDefaultCiphers);
  bool sudo = false;  // its commands run as root via `sudo -n` (rsync's --rsync-path)
};

// Reads a peer object strictly; nullopt with error set (naming `what`) when it is wrong.
std::optional<Peer> parse_peer(const nlohmann::json& j, const std::string& what,
                               std::string& error);

// The ssh argument vector that reaches peer (up to the host; the remote command follows).
// Writes the peer's known_hosts line into dir; nullopt with error set when it cannot.
std::optional<std::vector<std::string>> ssh_argv(const Peer& peer, const std::string& dir,
                                                 std::string& error);
// The same as one string for rsync's -e (its parser honours single quotes).
std::string rsync_shell(const std::vector<std::string>& argv);
// A word quoted for a POSIX shell (the remote side of an ssh command).
std::string shell_word(const std::string& word);
// argv as one POSIX shell command line.
std::string shell_line(const std::vector<std::string>& argv);

}  // namespace cutpilot::agent
