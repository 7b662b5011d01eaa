// Where a host really is and how to reach it, as the operator's own OpenSSH client
// decides: `ssh -G` applies Match, Include, negation, tokens, first-match-wins and
// the algorithm lists; cutpilot then sets each value on libssh itself.
#pragma once

#include <future>
#include <optional>
#include <string>
#include <vector>

#include "transport/ssh_target.h"

namespace cutpilot::transport {

// One host as `ssh -G` resolved it (paths expanded).
struct ResolvedHost {
  std::string original;  // the name asked for (%n)
  std::string hostname;  // HostName
  int port = 22;
  std::string user;
  std::vector<std::string> identity_files;     // IdentityFile, in order
  std::vector<std::string> certificate_files;  // CertificateFile, in order
  bool identities_only = false;
  std::string identity_agent;  // "" = SSH_AUTH_SOCK, "none" = no agent, else a socket path
  bool pubkey_authentication = true;
  std::vector<std::string> user_known_hosts;    // UserKnownHostsFile, in order
  std::vector<std::string> global_known_hosts;  // GlobalKnownHostsFile, in order
  std::string host_key_alias;                   // "" = none
  std::string revoked_host_keys;                // "" = none
  bool hash_known_hosts = false;
  std::string proxy_jump;     // "" = none; "a,b" hops in order
  std::string proxy_command;  // "" = none; tokens already expanded
  std::string ciphers, kex_algorithms, host_key_algorithms, macs, pubkey_algorithms;
  std::string ca_signature_algorithms;  // comma-separated; empty = any (ssh -G always says)
  std::optional<int> connect_timeout;   // seconds
  int server_alive_interval = 0;
  // The name known_hosts entries are looked up by: HostKeyAlias, or host / [host]:port.
  std::string known_hosts_name() const;
};

// Resolves target.address with `ssh -G` and the target's config and overrides.
// nullopt with error set (naming the host) when ssh cannot.
std::optional<ResolvedHost> resolve_host(const SshTarget& target, std::string& error);

// Parses `ssh -G` output (exposed for tests).
ResolvedHost parse_ssh_g(const std::string& output, const std::string& original);

// The ssh client cutpilot relies on, as `ssh -V` prints it ("OpenSSH_9.2p1 ...").
std::string ssh_client_version();
// The same, asked on a thread of its own (started now, waited for by get()): a command that
// prints it last need not wait for one more ssh process after its hosts are done.
std::future<std::string> ssh_client_version_async();

// The -F arguments for ssh: none when target.ssh_defaults, else the config or "none".
std::vector<std::string> config_args(const SshTarget& target);

// `~/x` with $HOME, for paths the plan or a config gives.
std::string expand_home(const std::string& path);

}  // namespace cutpilot::transport
