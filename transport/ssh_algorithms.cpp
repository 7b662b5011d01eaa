#include "transport/ssh_algorithms.h"

#include <set>
#include <sstream>

namespace cutpilot::transport {
namespace {

// What libssh 0.10 implements (its own supported lists).
const std::set<std::string>& supported(const std::string& option) {
  static const std::set<std::string> kCiphers = {"chacha20-poly1305@openssh.com",
                                                 "aes256-gcm@openssh.com",
                                                 "aes128-gcm@openssh.com",
                                                 "aes256-ctr",
                                                 "aes192-ctr",
                                                 "aes128-ctr",
                                                 "aes256-cbc",
                                                 "aes192-cbc",
                                                 "aes128-cbc",
                                                 "3des-cbc"};
  static const std::set<std::string> kKex = {"curve25519-sha256",
                                             "curve25519-sha256@libssh.org",
                                             "ecdh-sha2-nistp256",
                                             "ecdh-sha2-nistp384",
                                             "ecdh-sha2-nistp521",
                                             "diffie-hellman-group18-sha512",
                                             "diffie-hellman-group16-sha512",
                                             "diffie-hellman-group-exchange-sha256",
                                             "diffie-hellman-group14-sha256",
                                             "diffie-hellman-group14-sha1",
                                             "diffie-hellman-group-exchange-sha1",
                                             "diffie-hellman-group1-sha1"};
  static const std::set<std::string> kMacs = {"hmac-sha2-256-etm@openssh.com",
                                              "hmac-sha2-512-etm@openssh.com",
                                              "hmac-sha1-etm@openssh.com",
                                              "hmac-sha2-256",
                                              "hmac-sha2-512",
                                              "hmac-sha1"};
  static const std::set<std::string> kKeys = {"ssh-ed25519-cert-v01@openssh.com",
                                              "ecdsa-sha2-nistp521-cert-v01@openssh.com",
                                              "ecdsa-sha2-nistp384-cert-v01@openssh.com",
                                              "ecdsa-sha2-nistp256-cert-v01@openssh.com",
                                              "rsa-sha2-512-cert-v01@openssh.com",
                                              "rsa-sha2-256-cert-v01@openssh.com",
                                              "ssh-rsa-cert-v01@openssh.com",
                                              "ssh-ed25519",
                                              "ecdsa-sha2-nistp521",
                                              "ecdsa-sha2-nistp384",
                                              "ecdsa-sha2-nistp256",
                                              "rsa-sha2-512",
                                              "rsa-sha2-256",
                                              "ssh-rsa"};
  if (option == "Ciphers") return kCiphers;
  if (option == "KexAlgorithms") return kKex;
  if (option == "MACs") return kMacs;
  return kKeys;
}

}  // namespace

std::string libssh_subset(const std::string& option, const std::string& list) {
  const auto& known = supported(option);
  std::string out;
  std::istringstream names(list);
  std::string name;
  while (std::getline(names, name, ','))
    if (known.count(name)) out += (out.empty() ? "" : ",") + name;
  return out;
}

bool apply_algorithms(ssh_session session, const ResolvedHost& host, std::string& error) {
  struct List {
    const char* option;
    const std::string& value;
    ssh_options_e which[2];
    int count;
  };
  const List lists[] = {
      {"Ciphers", host.ciphers, {SSH_OPTIONS_CIPHERS_C_S, SSH_OPTIONS_CIPHERS_S_C}, 2},
      {"KexAlgorithms", host.kex_algorithms, {SSH_OPTIONS_KEY_EXCHANGE}, 1},
      {"HostKeyAlgorithms", host.host_key_algorithms, {SSH_OPTIONS_HOSTKEYS}, 1},
      {"MACs", host.macs, {SSH_OPTIONS_HMAC_C_S, SSH_OPTIONS_HMAC_S_C}, 2},
      {"PubkeyAcceptedAlgorithms",
       host.pubkey_algorithms,
       {SSH_OPTIONS_PUBLICKEY_ACCEPTED_TYPES},
       1},
  };
  for (const auto& l : lists) {
    if (l.value.empty()) continue;  // ssh printed none: libssh's defaults are ssh's too
    const std::string usable = libssh_subset(l.option, l.value);
    if (usable.empty()) {
      error = std::string(l.option) + " allows only " + l.value +
              ", none of which cutpilot's SSH library (libssh 0.10) implements; refusing "
              "rather than use algorithms the ssh config does not allow";
      return false;
    }
    for (int i = 0; i < l.count; ++i) {
      if (ssh_options_set(session, l.which[i], usable.c_str()) < 0) {
        error = std::string("libssh refused the ") + l.option + " list " + usable + ": " +
                ssh_get_error(session);
        return false;
      }
    }
  }
  return true;
}

}  // namespace cutpilot::transport
