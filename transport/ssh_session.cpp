#include "transport/ssh_session.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "transport/ssh_algorithms.h"
#include "transport/ssh_auth.h"

namespace cutpilot::transport {
namespace {

// One ProxyJump hop, "[ssh://][user@]host[:port]", as ssh splits it.
struct Hop {
  std::string user, host, port;
};

Hop parse_hop(std::string text) {
  Hop hop;
  if (text.rfind("ssh://", 0) == 0) text = text.substr(6);
  if (const size_t at = text.rfind('@'); at != std::string::npos) {
    hop.user = text.substr(0, at);
    text = text.substr(at + 1);
  }
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    hop.host = text.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && close + 1 < text.size() && text[close + 1] == ':')
      hop.port = text.substr(close + 2);
  } else if (const size_t colon = text.find(':');
             colon != std::string::npos && text.find(':', colon + 1) == std::string::npos) {
    hop.host = text.substr(0, colon);
    hop.port = text.substr(colon + 1);
  } else {
    hop.host = text;
  }
  return hop;
}

// The ssh that reaches hop (through reach, the ProxyCommand of the hop before it, if any)
// and forwards to `forward` (-W). Not the last hop's: the words go into a ProxyCommand.
std::vector<std::string> jump_hop_argv(const SshTarget& target, const Hop& hop,
                                       const std::string& reach, const std::string& forward,
                                       bool last) {
  // In a ProxyCommand, ssh expands %-tokens: every '%' of ours but the -W target's is doubled.
  const auto literal = [last](std::string text) {
    if (last) return text;
    for (size_t at = text.find('%'); at != std::string::npos; at = text.find('%', at + 2))
      text.insert(at, "%");
    return text;
  };
  std::vector<std::string> argv = {"ssh"};
  for (auto& a : config_args(target))
    argv.push_back(literal(a));
  argv.insert(argv.end(), {"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"});
  if (target.known_hosts)
    argv.insert(argv.end(),
                {"-o", literal("UserKnownHostsFile=" + expand_home(*target.known_hosts)), "-o",
                 "GlobalKnownHostsFile=none"});
  if (!reach.empty()) argv.insert(argv.end(), {"-o", literal("ProxyCommand=" + reach)});
  if (!hop.user.empty()) argv.insert(argv.end(), {"-l", literal(hop.user)});
  if (!hop.port.empty()) argv.insert(argv.end(), {"-p", literal(hop.port)});
  argv.insert(argv.end(), {"-W", forward, "--", literal(hop.host)});
  return argv;
}

}  // namespace

std::string shell_quote(std::string_view text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'')
      quoted += "'\\''";
    else
      quoted += c;
  }
  return quoted + "'";
}

SshSession::SshSession(SshTarget target) : target_(std::move(target)) {}

SshSession::~SshSession() {
  if (session_) {
    ssh_disconnect(session_);
    ssh_free(session_);
  }
}

bool SshSession::fail(OpenFailure kind, std::string message) {
  failure_ = kind;
  error_ = target_.name + ": " + std::move(message);
  return false;
}

bool SshSession::configure() {
  const std::string config = expand_home(target_.ssh_config);
  if (!config.empty() && access(config.c_str(), R_OK) != 0)
    return fail(OpenFailure::kConfig,
                "cannot read the ssh config " + config + ": " + std::strerror(errno));
  std::string error;
  resolved_ = resolve_host(target_, error);
  if (!resolved_) {
    failure_ = OpenFailure::kConfig;
    error_ = error;
    return false;
  }
  const ResolvedHost& h = *resolved_;
  session_ = ssh_new();
  if (!session_) return fail(OpenFailure::kConfig, "libssh could not create a session");
  // libssh never reads a config file: every value below is what ssh resolved.
  bool process = false;
  ssh_options_set(session_, SSH_OPTIONS_PROCESS_CONFIG, &process);
  int verbosity = SSH_LOG_NOLOG;
  ssh_options_set(session_, SSH_OPTIONS_LOG_VERBOSITY, &verbosity);
  ssh_options_set(session_, SSH_OPTIONS_HOST, h.hostname.c_str());
  unsigned int port = static_cast<unsigned int>(h.port);
  ssh_options_set(session_, SSH_OPTIONS_PORT, &port);
  ssh_options_set(session_, SSH_OPTIONS_USER, h.user.c_str());
  // Host keys are checked by known_hosts.cpp; libssh must not look at its own files.
  ssh_options_set(session_, SSH_OPTIONS_KNOWNHOSTS, "/dev/null");
  ssh_options_set(session_, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
  // Small request/answer messages: Nagle plus delayed ACKs would add 40 ms to each.
  int nodelay = 1;
  ssh_options_set(session_, SSH_OPTIONS_NODELAY, &nodelay);
  long timeout = target_.connect_timeout ? static_cast<long>(target_.connect_timeout->count())
                 : h.connect_timeout     ? *h.connect_timeout
                                     : static_cast<long>(SshTarget::kDefaultConnectTimeout.count());
  ssh_options_set(session_, SSH_OPTIONS_TIMEOUT, &timeout);
  if (!apply_algorithms(session_, h, error))
    return fail(OpenFailure::kConfig, "refusing to connect to " + h.original + ": " + error);
  return start_proxy();
}

bool SshSession::start_proxy() {
  const ResolvedHost& h = *resolved_;
  std::vector<std::string> argv;
  if (!h.proxy_jump.empty()) {
    // As ssh itself turns ProxyJump into commands, one ssh per hop, each reaching the next
    // with -W; but every hop (not only the last, as `-J a,b` would leave the earlier ones to
    // the config) is strict, never accept-new, and checked against the plan's known_hosts.
    std::vector<std::string> hops;
    for (size_t from = 0;;) {
      const size_t comma = h.proxy_jump.find(',', from);
      hops.push_back(h.proxy_jump.substr(from, comma - from));
      if (comma == std::string::npos) break;
      from = comma + 1;
    }
    std::string reach_previous;  // the ProxyCommand that reaches the hop before this one
    for (size_t i = 0; i < hops.size(); ++i) {
      const bool last = i + 1 == hops.size();
      const std::vector<std::string> hop_argv =
          jump_hop_argv(target_, parse_hop(hops[i]), reach_previous,
                        last ? "[" + h.hostname + "]:" + std::to_string(h.port) : "[%h]:%p", last);
      if (last) {
        argv = hop_argv;
      } else {
        reach_previous.clear();
        for (const auto& word : hop_argv)
          reach_previous += (reach_previous.empty() ? "" : " ") + shell_quote(word);
      }
    }
  } else if (!h.proxy_command.empty()) {
    // A ProxyCommand is a shell command by definition; ssh runs it the same way.
    const char* shell = std::getenv("SHELL");
    argv = {shell && *shell ? shell : "/bin/sh", "-c", "exec " + h.proxy_command};
  } else {
    return true;
  }
  proxy_argv_ = argv;
  std::string error;
  if (!proxy_.start(argv, error)) return fail(OpenFailure::kConnect, error);
  int fd = proxy_.release_socket();
  ssh_options_set(session_, SSH_OPTIONS_FD, &fd);
  return true;
}

bool SshSession::connect_and_read_key() {
  if (!configure()) return false;
  const ResolvedHost& h = *resolved_;
  host_key_.endpoint = h.hostname + ":" + std::to_string(h.port);
  host_key_.known_hosts = known_hosts_files(h);
  if (ssh_connect(session_) != SSH_OK) {
    std::string why = ssh_get_error(session_);
    if (proxy_.started()) {
      std::string said = proxy_.stderr_text(true);
      for (char& c : said)
        if (c == '\n' || c == '\r') c = ' ';
      const std::string via =
          h.proxy_jump.empty() ? "its ProxyCommand" : "jump host " + h.proxy_jump;
      why = "through " + via + ": " + (said.empty() ? why : said);
    }
    return fail(OpenFailure::kConnect, "cannot connect to " + host_key_.endpoint + " " + why);
  }
  ssh_key key = nullptr;
  if (ssh_get_server_publickey(session_, &key) != SSH_OK)
    return fail(OpenFailure::kConnect, "the server sent no host key");
  unsigned char* hash = nullptr;
  size_t hash_len = 0;
  if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hash_len) == 0) {
    char* fingerprint = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hash_len);
    if (fingerprint) host_key_.fingerprint = fingerprint;
    ssh_string_free_char(fingerprint);
    ssh_clean_pubkey_hash(&hash);
  }
  host_key_.type = ssh_key_type_to_char(ssh_key_type(key));
  char* blob = nullptr;
  if (ssh_pki_export_pubkey_base64(key, &blob) == SSH_OK && blob)
    host_key_.public_key = host_key_.type + " " + blob;
  ssh_string_free_char(blob);
  ssh_key_free(key);
  return true;
}

bool SshSession::fetch_host_key() {
  return connect_and_read_key();
}

KeyVerdict SshSession::check_host_key() {
  const size_t space = host_key_.public_key.find(' ');
  const PresentedKey presented{host_key_.type, host_key_.public_key.substr(space + 1)};
  key_check_ = transport::check_host_key(*resolved_, presented);
  // A host known only through @cert-authority: libssh got the plain key, so ask the
  // server for its certificates, by the same route (a jump host or a ProxyCommand).
  if (key_check_.verdict == KeyVerdict::kUnknown) {
    const int timeout = target_.connect_timeout
                            ? static_cast<int>(target_.connect_timeout->count())
                            : resolved_->connect_timeout.value_or(
                                  static_cast<int>(SshTarget::kDefaultConnectTimeout.count()));
    key_check_ = transport::check_host_key(
        *resolved_, presented,
        scan_host_certificates(*resolved_, presented.type, timeout, proxy_argv_));
  }
  host_key_.decided_by = key_check_.detail;
  return key_check_.verdict;
}

bool SshSession::trust_host_key() {
  const size_t space = host_key_.public_key.find(' ');
  const PresentedKey presented{host_key_.type, host_key_.public_key.substr(space + 1)};
  std::string error;
  if (add_known_host(*resolved_, presented, error)) return true;
  error_ = target_.name + ": cannot add the key: " + error;
  return false;
}

bool SshSession::verify_host_key() {
  const std::string offered = host_key_.type + " " + host_key_.fingerprint;
  const std::string name = resolved_->known_hosts_name();
  // The endpoint, and the name known_hosts is searched under when that is an alias.
  const std::string where = resolved_->host_key_alias.empty()
                                ? host_key_.endpoint
                                : name + " (" + host_key_.endpoint + ")";
  switch (check_host_key()) {
    case KeyVerdict::kKnown:
      return true;
    case KeyVerdict::kRevoked:
      return fail(OpenFailure::kHostKeyRevoked,
                  "REVOKED HOST KEY for " + where + ": the server offers " + offered + ", " +
                      key_check_.detail +
                      ". Refusing to connect; a revoked key is never trusted again.");
    case KeyVerdict::kChanged:
      return fail(OpenFailure::kHostKeyChanged,
                  "HOST KEY CHANGED for " + where + ": the server now offers " + offered +
                      ", but " + key_check_.detail +
                      ". Someone may be intercepting the connection, or the host was "
                      "reinstalled. Refusing to connect; remove the old key only when you know "
                      "why it changed.");
    case KeyVerdict::kUnknown:
      return fail(OpenFailure::kHostKeyUnknown,
                  "unknown host key for " + where + ": " + offered + " is not in " +
                      host_key_.known_hosts + (key_check_.detail.empty() ? "" : " (") +
                      key_check_.detail + (key_check_.detail.empty() ? "" : ")") +
                      ". Check the fingerprint with the host's owner, then run `cutpilot trust " +
                      target_.name + "` to add it.");
    case KeyVerdict::kError:
      break;
  }
  return fail(OpenFailure::kHostKeyUnknown,
              "cannot check the host key of " + where + ": " + key_check_.detail);
}

bool SshSession::authenticate() {
  const AuthOutcome outcome = authenticate_as_ssh_does(session_, *resolved_);
  if (outcome.ok) return true;
  if (outcome.transport_error)
    return fail(OpenFailure::kConnect, "authentication failed: " + outcome.error);
  return fail(OpenFailure::kAuth, "authentication failed: " + outcome.error);
}

bool SshSession::open(const std::function<void()>& on_authenticating) {
  if (!connect_and_read_key() || !verify_host_key()) return false;
  if (on_authenticating) on_authenticating();
  return authenticate();
}

ssh_channel SshSession::start(const std::string& command) {
  ssh_channel channel = ssh_channel_new(session_);
  if (!channel) {
    error_ = target_.name + ": cannot create a channel: " + ssh_get_error(session_);
    return nullptr;
  }
  if (ssh_channel_open_session(channel) != SSH_OK ||
      ssh_channel_request_exec(channel, command.c_str()) != SSH_OK) {
    error_ = target_.name + ": cannot start a command: " + ssh_get_error(session_);
    ssh_channel_free(channel);
    return nullptr;
  }
  return channel;
}

ExecResult SshSession::run(const std::string& command, std::string_view input,
                           std::chrono::milliseconds timeout) {
  ExecResult result;
  ssh_channel channel = start(command);
  if (!channel) {
    result.error = error_;
    return result;
  }
  while (!input.empty()) {
    const size_t chunk = std::min<size_t>(input.size(), 64 * 1024);
    const int n = ssh_channel_write(channel, input.data(), static_cast<uint32_t>(chunk));
    if (n <= 0) break;  // the command stopped reading; its stderr will say why
    input.remove_prefix(static_cast<size_t>(n));
  }
  ssh_channel_send_eof(channel);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buffer[16 * 1024];
  while (!ssh_channel_is_eof(channel)) {
    if (std::chrono::steady_clock::now() > deadline) {
      result.error =
          target_.name + ": command timed out after " + std::to_string(timeout.count()) + " ms";
      break;
    }
    const int n = ssh_channel_read_timeout(channel, buffer, sizeof buffer, 0, 50);
    if (n == SSH_ERROR) {
      result.error = target_.name + ": connection lost: " + ssh_get_error(session_);
      break;
    }
    if (n > 0) result.out.append(buffer, static_cast<size_t>(n));
    int e;
    while ((e = ssh_channel_read_nonblocking(channel, buffer, sizeof buffer, 1)) > 0)
      result.err.append(buffer, static_cast<size_t>(e));
  }
  int n;
  while ((n = ssh_channel_read_nonblocking(channel, buffer, sizeof buffer, 0)) > 0)
    result.out.append(buffer, static_cast<size_t>(n));
  while ((n = ssh_channel_read_nonblocking(channel, buffer, sizeof buffer, 1)) > 0)
    result.err.append(buffer, static_cast<size_t>(n));
  if (result.error.empty()) result.exit_status = ssh_channel_get_exit_status(channel);
  ssh_channel_close(channel);
  ssh_channel_free(channel);
  return result;
}

}  // namespace cutpilot::transport
