// Public key authentication in the order OpenSSH uses: agent keys that match an
// IdentityFile (in config order), then the agent's other keys unless
// IdentitiesOnly, then the IdentityFiles not in the agent (a certificate before
// its plain key). IdentityAgent picks the agent. Never prompts.
#pragma once

#include <libssh/libssh.h>

#include <string>

#include "transport/ssh_resolve.h"

namespace cutpilot::transport {

// What authentication tried and why it failed.
struct AuthOutcome {
  bool ok = false;
  bool transport_error = false;    // the connection failed, not the keys
  bool passphrase_wanted = false;  // an IdentityFile needs a passphrase (and is not in the agent)
  std::string tried;               // "agent (2 keys), /k/id_a, ..." for messages
  std::string error;
};

// Authenticates the connected session as host.user.
AuthOutcome authenticate_as_ssh_does(ssh_session session, const ResolvedHost& host);

}  // namespace cutpilot::transport
