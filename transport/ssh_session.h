// One SSH connection to one host: the operator's ssh client resolves where to go
// (ssh -G) and carries jump hops; libssh carries the bytes, with host keys checked
// as OpenSSH checks them and keys offered in OpenSSH's order; exec channels. Blocking calls, each
// bounded by a timeout; Fleet runs them on its connect workers and then drives the session from its
// poll loop.
#pragma once

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "transport/known_hosts.h"
#include "transport/ssh_process.h"
#include "transport/ssh_resolve.h"
#include "transport/ssh_target.h"

namespace cutpilot::transport {

// The key a server presented, for messages and `cutpilot trust`.
struct HostKey {
  std::string type;         // "ssh-ed25519"
  std::string fingerprint;  // "SHA256:..."
  std::string known_hosts;  // the files it was checked against
  std::string decided_by;   // the known_hosts line (FILE:LINE) or file that decided
  std::string endpoint;     // "127.0.0.1:2222" as connected
  std::string public_key;   // "ssh-ed25519 AAAA..." (what another host's known_hosts needs)
};

// Why open() failed; decides whether retrying can help.
enum class OpenFailure {
  kNone,
  kConfig,
  kConnect,
  kHostKeyUnknown,
  kHostKeyChanged,
  kHostKeyRevoked,
  kAuth
};

// The outcome of a command run to completion over an exec channel.
struct ExecResult {
  int exit_status = -1;  // -1 when the command did not finish
  std::string out;
  std::string err;
  std::string error;  // a transport failure (empty when the command ran)
};

// A connected, authenticated SSH session to one host.
class SshSession {
 public:
  explicit SshSession(SshTarget target);
  ~SshSession();
  SshSession(const SshSession&) = delete;
  SshSession& operator=(const SshSession&) = delete;

  // Connects, checks the host key against known_hosts and authenticates with
  // ssh-agent or key files. Never prompts. false: error() names host and cause.
  // on_authenticating runs once the host key is accepted.
  bool open(const std::function<void()>& on_authenticating = {});
  // Only connects and reads the host key (for `cutpilot trust`); no auth.
  bool fetch_host_key();
  // After fetch_host_key(): how the key compares with known_hosts.
  KeyVerdict check_host_key();
  // After fetch_host_key(): appends the server's key to the first UserKnownHostsFile.
  bool trust_host_key();
  // Runs a command to completion, feeding input on its stdin.
  ExecResult run(const std::string& command, std::string_view input,
                 std::chrono::milliseconds timeout);
  // Starts a command on a new exec channel and leaves it open; nullptr on failure.
  ssh_channel start(const std::string& command);

  // The target this session was made for.
  const SshTarget& target() const { return target_; }
  // The host as ssh resolved it, once open()/fetch_host_key() got that far.
  const std::optional<ResolvedHost>& resolved() const { return resolved_; }
  // The libssh session (for the poll loop: its fd, non-blocking reads).
  ssh_session handle() const { return session_; }
  // The server's key, once open()/fetch_host_key() got that far.
  const HostKey& host_key() const { return host_key_; }
  // Why the last call failed.
  const std::string& error() const { return error_; }
  // What kind of failure open() hit.
  OpenFailure failure() const { return failure_; }

 private:
  bool configure();
  bool start_proxy();
  bool connect_and_read_key();
  bool verify_host_key();
  bool authenticate();
  bool fail(OpenFailure kind, std::string message);

  SshTarget target_;
  std::optional<ResolvedHost> resolved_;
  ProxyProcess proxy_;  // the jump hops' ssh or the ProxyCommand, when there is one
  std::vector<std::string> proxy_argv_;  // what proxy_ runs (empty: a direct connection)
  ssh_session session_ = nullptr;
  HostKey host_key_;
  KeyCheck key_check_;
  std::string error_;
  OpenFailure failure_ = OpenFailure::kNone;
};

// Quotes a string for a POSIX shell: 'it'\''s'.
std::string shell_quote(std::string_view text);

}  // namespace cutpilot::transport
