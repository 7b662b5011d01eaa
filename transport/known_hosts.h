// Host key verification with OpenSSH's semantics, read from the files ssh itself
// would read: every UserKnownHostsFile and GlobalKnownHostsFile, hashed entries,
// negated patterns, @revoked and RevokedHostKeys, @cert-authority with host
// certificates, HostKeyAlias, and port-less entries for port 22.
#pragma once

#include <string>
#include <vector>

#include "transport/ssh_resolve.h"

namespace cutpilot::transport {

// How the server's key compares with what ssh trusts.
enum class KeyVerdict { kKnown, kUnknown, kChanged, kRevoked, kError };

// The verdict and where it came from ("FILE:LINE", or what went wrong).
struct KeyCheck {
  KeyVerdict verdict = KeyVerdict::kError;
  std::string detail;
};

// The key a server presented: "TYPE BASE64" (a certificate keeps its -cert type).
struct PresentedKey {
  std::string type;
  std::string base64;
};

// Checks a presented host key for the resolved host.
KeyCheck check_host_key(const ResolvedHost& host, const PresentedKey& key);

// The same, where the server's plain key may also be vouched for by one of its host
// certificates (libssh 0.10 does not negotiate certificate host keys; these come
// from `ssh-keyscan -c`, and only one that certifies the very key the server proved
// it holds counts).
KeyCheck check_host_key(const ResolvedHost& host, const PresentedKey& key,
                        const std::vector<PresentedKey>& certificates);

// The host certificates a server offers for its key of key_type (`ssh-keyscan -c`), for
// check_host_key; through `proxy` (a jump host's ssh or a ProxyCommand) when it is not empty.
std::vector<PresentedKey> scan_host_certificates(const ResolvedHost& host,
                                                 const std::string& key_type, int timeout_seconds,
                                                 const std::vector<std::string>& proxy = {});

// Whether a comma-separated known_hosts host field (patterns, negations or one
// |1|salt|hash) matches name, as OpenSSH matches it.
bool known_hosts_field_matches(const std::string& field, const std::string& name);

// Appends "NAME KEY" (hashed when HashKnownHosts says so) to the first
// UserKnownHostsFile, where ssh itself adds keys; false with error set otherwise.
bool add_known_host(const ResolvedHost& host, const PresentedKey& key, std::string& error);

// The files a host's keys are looked up in, for messages ("a, b" or "no file").
std::string known_hosts_files(const ResolvedHost& host);

}  // namespace cutpilot::transport
