#include "transport/ssh_resolve.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <future>
#include <sstream>

#include "transport/ssh_g_cache.h"
#include "transport/ssh_process.h"

namespace cutpilot::transport {
namespace {

using namespace std::chrono_literals;

std::string home_dir() {
  if (const char* home = std::getenv("HOME")) return home;
  const passwd* pw = getpwuid(getuid());
  return pw ? pw->pw_dir : "";
}

std::string local_user() {
  const passwd* pw = getpwuid(getuid());
  return pw ? pw->pw_name : "";
}

// ssh's percent tokens in paths and commands (the ones that name a host or a user).
std::string expand_tokens(const std::string& text, const ResolvedHost& h) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%' || i + 1 == text.size()) {
      out += text[i];
      continue;
    }
    switch (text[++i]) {
      case '%':
        out += '%';
        break;
      case 'd':
        out += home_dir();
        break;
      case 'u':
        out += local_user();
        break;
      case 'i':
        out += std::to_string(getuid());
        break;
      case 'h':
        out += h.hostname;
        break;
      case 'n':
        out += h.original;
        break;
      case 'p':
        out += std::to_string(h.port);
        break;
      case 'r':
        out += h.user;
        break;
      case 'k':
        out += h.host_key_alias.empty() ? h.hostname : h.host_key_alias;
        break;
      default:
        out += '%', out += text[i];
    }
  }
  return out;
}

std::string path_of(const std::string& text, const ResolvedHost& h) {
  return expand_home(expand_tokens(text, h));
}

std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string w;
  while (in >> w)
    out.push_back(w);
  return out;
}

}  // namespace

std::string expand_home(const std::string& path) {
  if (path == "~") return home_dir();
  if (path.rfind("~/", 0) != 0) return path;
  return home_dir() + path.substr(1);
}

std::string ResolvedHost::known_hosts_name() const {
  if (!host_key_alias.empty()) return host_key_alias;
  if (port == 22) return hostname;
  return "[" + hostname + "]:" + std::to_string(port);
}

ResolvedHost parse_ssh_g(const std::string& output, const std::string& original) {
  ResolvedHost h;
  h.original = original;
  std::vector<std::pair<std::string, std::string>> raw;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    const size_t space = line.find(' ');
    if (space == std::string::npos) continue;
    std::string key = line.substr(0, space);
    for (char& c : key)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    raw.emplace_back(key, line.substr(space + 1));
  }
  // Names first: the paths' tokens need them.
  for (const auto& [key, value] : raw) {
    if (key == "hostname")
      h.hostname = value;
    else if (key == "port")
      h.port = std::atoi(value.c_str());
    else if (key == "user")
      h.user = value;
    else if (key == "hostkeyalias")
      h.host_key_alias = value;
  }
  for (const auto& [key, value] : raw) {
    if (key == "identityfile")
      h.identity_files.push_back(path_of(value, h));
    else if (key == "certificatefile")
      h.certificate_files.push_back(path_of(value, h));
    else if (key == "identitiesonly")
      h.identities_only = value == "yes";
    else if (key == "identityagent")
      h.identity_agent = value == "SSH_AUTH_SOCK" ? ""
                         : value == "none"        ? "none"
                                                  : path_of(value, h);
    else if (key == "pubkeyauthentication")
      h.pubkey_authentication = value != "no" && value != "false";
    else if (key == "userknownhostsfile")
      for (const auto& w : words(value))
        h.user_known_hosts.push_back(path_of(w, h));
    else if (key == "globalknownhostsfile")
      for (const auto& w : words(value))
        h.global_known_hosts.push_back(path_of(w, h));
    else if (key == "revokedhostkeys")
      h.revoked_host_keys = value == "none" ? "" : path_of(value, h);
    else if (key == "hashknownhosts")
      h.hash_known_hosts = value == "yes";
    else if (key == "casignaturealgorithms")
      h.ca_signature_algorithms = value;
    else if (key == "proxyjump")
      h.proxy_jump = value == "none" ? "" : value;
    else if (key == "proxycommand")
      h.proxy_command = value == "none" ? "" : expand_tokens(value, h);
    else if (key == "ciphers")
      h.ciphers = value;
    else if (key == "kexalgorithms")
      h.kex_algorithms = value;
    else if (key == "hostkeyalgorithms")
      h.host_key_algorithms = value;
    else if (key == "macs")
      h.macs = value;
    else if (key == "pubkeyacceptedalgorithms" || key == "pubkeyacceptedkeytypes")
      h.pubkey_algorithms = value;
    else if (key == "connecttimeout" && value != "none")
      h.connect_timeout = std::atoi(value.c_str());
    else if (key == "serveraliveinterval")
      h.server_alive_interval = std::atoi(value.c_str());
  }
  // "none" in a list of files means no file.
  for (auto* files : {&h.user_known_hosts, &h.global_known_hosts})
    std::erase(*files, std::string("none"));
  return h;
}

std::vector<std::string> config_args(const SshTarget& target) {
  if (target.ssh_defaults) return {};
  const std::string config = expand_home(target.ssh_config);
  return {"-F", config.empty() ? "none" : config};
}

std::optional<ResolvedHost> resolve_host(const SshTarget& target, std::string& error) {
  const std::string config = expand_home(target.ssh_config);
  std::vector<std::string> argv = {"ssh", "-G"};
  for (auto& a : config_args(target))
    argv.push_back(a);
  auto option = [&](const std::string& text) { argv.insert(argv.end(), {"-o", text}); };
  // The plan's own settings win over the config's, as -o does for ssh.
  if (target.user) option("User=" + *target.user);
  if (target.port) option("Port=" + std::to_string(*target.port));
  if (target.jump) option("ProxyJump=" + *target.jump);
  // As `ssh -i`: this key first, then the config's (ssh -G lists them in that order).
  if (target.identity_file) option("IdentityFile=\"" + expand_home(*target.identity_file) + "\"");
  if (target.known_hosts) {
    option("UserKnownHostsFile=" + expand_home(*target.known_hosts));
    option("GlobalKnownHostsFile=none");
  }
  argv.insert(argv.end(), {"--", target.address});
  const CommandOutput out = run_ssh_g(argv, 10s);
  if (!out.error.empty() || out.exit_status != 0) {
    std::string why = out.error.empty() ? out.err : out.error;  // a time-out says so
    while (!why.empty() && why.back() == '\n')
      why.pop_back();
    error = target.name + ": the ssh client cannot resolve " + target.address +
            (config.empty() ? "" : " with " + config) + ": " +
            (why.empty() ? "exit status " + std::to_string(out.exit_status) : why);
    return std::nullopt;
  }
  return parse_ssh_g(out.out, target.address);
}

std::string ssh_client_version() {
  const CommandOutput out = run_command({"ssh", "-V"}, 10s);
  std::string text = out.err.empty() ? out.out : out.err;
  while (!text.empty() && text.back() == '\n')
    text.pop_back();
  return out.exit_status == 0 ? text : "";
}

std::future<std::string> ssh_client_version_async() {
  return std::async(std::launch::async, ssh_client_version);
}

}  // namespace cutpilot::transport
