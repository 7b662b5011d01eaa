#include "transport/ssh_session.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace cutpilot::transport {
namespace {

std::string expand_home(const std::string& path) {
  if (path.rfind("~/", 0) != 0) return path;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + path.substr(1);
}

std::string option(ssh_session session, ssh_options_e which) {
  char* value = nullptr;
  if (ssh_options_get(session, which, &value) != SSH_OK || !value) return "";
  std::string copy = value;
  ssh_string_free_char(value);
  return copy;
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

int SshSession::refuse_passphrase(const char*, char*, size_t, int, int, void* userdata) {
  // cutpilot never prompts: a key that needs a passphrase belongs in ssh-agent.
  static_cast<SshSession*>(userdata)->passphrase_wanted_ = true;
  return -1;
}

bool SshSession::configure() {
  session_ = ssh_new();
  if (!session_) return fail(OpenFailure::kConfig, "libssh could not create a session");
  int verbosity = SSH_LOG_NOLOG;
  ssh_options_set(session_, SSH_OPTIONS_LOG_VERBOSITY, &verbosity);
  ssh_options_set(session_, SSH_OPTIONS_HOST, target_.address.c_str());
  // Small request/answer messages: Nagle plus delayed ACKs would add 40 ms to each.
  int nodelay = 1;
  ssh_options_set(session_, SSH_OPTIONS_NODELAY, &nodelay);
  long timeout = static_cast<long>(SshTarget::kDefaultConnectTimeout.count());
  ssh_options_set(session_, SSH_OPTIONS_TIMEOUT, &timeout);
  callbacks_.userdata = this;
  callbacks_.auth_function = &SshSession::refuse_passphrase;
  ssh_callbacks_init(&callbacks_);
  ssh_set_callbacks(session_, &callbacks_);

  const std::string config = expand_home(target_.ssh_config);
  if (!config.empty()) {
    if (access(config.c_str(), R_OK) != 0)
      return fail(OpenFailure::kConfig,
                  "cannot read the ssh config " + config + ": " + std::strerror(errno));
    if (ssh_options_parse_config(session_, config.c_str()) < 0)
      return fail(OpenFailure::kConfig,
                  "cannot parse the ssh config " + config + ": " + ssh_get_error(session_));
  } else {
    bool process = false;
    ssh_options_set(session_, SSH_OPTIONS_PROCESS_CONFIG, &process);
  }
  // The plan's own settings win over the ssh config's.
  if (target_.user) ssh_options_set(session_, SSH_OPTIONS_USER, target_.user->c_str());
  if (target_.port) {
    unsigned int port = static_cast<unsigned int>(*target_.port);
    ssh_options_set(session_, SSH_OPTIONS_PORT, &port);
  }
  if (target_.connect_timeout) {
    timeout = static_cast<long>(target_.connect_timeout->count());
    ssh_options_set(session_, SSH_OPTIONS_TIMEOUT, &timeout);
  }
  if (target_.known_hosts) {
    const std::string known = expand_home(*target_.known_hosts);
    ssh_options_set(session_, SSH_OPTIONS_KNOWNHOSTS, known.c_str());
    ssh_options_set(session_, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
  }
  // A jump host is reached with the operator's own ssh and the same config
  // file, so aliases, keys and known_hosts of the jump host work as they do by
  // hand. libssh turns a config ProxyJump into "ssh [-J ...] -W '[%h]:%p' JUMP"
  // but drops -F, so such a command gets the config added back.
  std::string proxy_args;
  if (target_.jump) {
    proxy_args = "-W '[%h]:%p' " + shell_quote(*target_.jump);
  } else if (const std::string proxy = option(session_, SSH_OPTIONS_PROXYCOMMAND);
             proxy.rfind("ssh ", 0) == 0 && proxy.find(" -W ") != std::string::npos) {
    proxy_args = proxy.substr(4);
  }
  if (!proxy_args.empty()) {
    std::string command = "exec ssh";
    if (!config.empty()) command += " -F " + shell_quote(config);
    command += " -o BatchMode=yes -o ConnectTimeout=" + std::to_string(timeout);
    if (target_.known_hosts)
      command += " -o UserKnownHostsFile=" + shell_quote(expand_home(*target_.known_hosts));
    command += " " + proxy_args;
    ssh_options_set(session_, SSH_OPTIONS_PROXYCOMMAND, command.c_str());
  }
  return true;
}

bool SshSession::connect_and_read_key() {
  if (!configure()) return false;
  unsigned int port = 22;
  ssh_options_get_port(session_, &port);
  host_key_.endpoint = option(session_, SSH_OPTIONS_HOST) + ":" + std::to_string(port);
  host_key_.known_hosts = option(session_, SSH_OPTIONS_KNOWNHOSTS);
  if (ssh_connect(session_) != SSH_OK)
    return fail(OpenFailure::kConnect,
                "cannot connect to " + host_key_.endpoint + ": " + ssh_get_error(session_));
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
  switch (ssh_session_is_known_server(session_)) {
    case SSH_KNOWN_HOSTS_OK:
      return KeyVerdict::kKnown;
    case SSH_KNOWN_HOSTS_CHANGED:
    case SSH_KNOWN_HOSTS_OTHER:
      return KeyVerdict::kChanged;
    case SSH_KNOWN_HOSTS_UNKNOWN:
    case SSH_KNOWN_HOSTS_NOT_FOUND:
      return KeyVerdict::kUnknown;
    case SSH_KNOWN_HOSTS_ERROR:
      break;
  }
  return KeyVerdict::kError;
}

bool SshSession::trust_host_key() {
  if (ssh_session_update_known_hosts(session_) == SSH_OK) return true;
  error_ = target_.name + ": cannot add the key to " + host_key_.known_hosts + ": " +
           ssh_get_error(session_);
  return false;
}

bool SshSession::verify_host_key() {
  const std::string offered = host_key_.type + " " + host_key_.fingerprint;
  switch (check_host_key()) {
    case KeyVerdict::kKnown:
      return true;
    case KeyVerdict::kChanged:
      return fail(OpenFailure::kHostKeyChanged,
                  "HOST KEY CHANGED for " + host_key_.endpoint + ": the server now offers " +
                      offered + ", which does not match " + host_key_.known_hosts +
                      ". Someone may be intercepting the connection, or the host was "
                      "reinstalled. Refusing to connect; remove the old key only when you know "
                      "why it changed.");
    case KeyVerdict::kUnknown:
      return fail(OpenFailure::kHostKeyUnknown,
                  "unknown host key for " + host_key_.endpoint + ": " + offered + " is not in " +
                      host_key_.known_hosts +
                      ". Check the fingerprint with the host's owner, then run `cutpilot trust " +
                      target_.name + "` to add it.");
    case KeyVerdict::kError:
      break;
  }
  return fail(OpenFailure::kHostKeyUnknown, "cannot check the host key against " +
                                                host_key_.known_hosts + ": " +
                                                ssh_get_error(session_));
}

bool SshSession::authenticate() {
  const std::string user = option(session_, SSH_OPTIONS_USER);
  int rc = ssh_userauth_none(session_, nullptr);
  if (rc == SSH_AUTH_SUCCESS) return true;
  if (rc == SSH_AUTH_ERROR)
    return fail(OpenFailure::kConnect,
                "authentication failed: " + std::string(ssh_get_error(session_)));
  const int methods = ssh_userauth_list(session_, nullptr);
  if (!(methods & SSH_AUTH_METHOD_PUBLICKEY))
    return fail(OpenFailure::kAuth, "the server does not accept public keys for " + user +
                                        "; cutpilot never types passwords");
  rc = ssh_userauth_publickey_auto(session_, nullptr, nullptr);
  if (rc == SSH_AUTH_SUCCESS) return true;
  if (rc == SSH_AUTH_ERROR)
    return fail(OpenFailure::kConnect,
                "authentication failed: " + std::string(ssh_get_error(session_)));
  std::string why = "no key was accepted for " + user + "@" + host_key_.endpoint +
                    " (tried ssh-agent and the IdentityFile keys)";
  if (passphrase_wanted_)
    why += "; a key needs a passphrase: add it to ssh-agent (ssh-add), cutpilot never prompts";
  return fail(OpenFailure::kAuth, "authentication failed: " + why);
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
