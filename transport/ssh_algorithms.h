// The algorithm lists ssh resolved (Ciphers, KexAlgorithms, HostKeyAlgorithms, MACs,
// PubkeyAcceptedAlgorithms), narrowed to what libssh 0.10 implements and set on the
// session. A list is only ever narrowed, never widened: when nothing in it is left,
// the connection is refused and the option named.
#pragma once

#include <libssh/libssh.h>

#include <string>

#include "transport/ssh_resolve.h"

namespace cutpilot::transport {

// The names of list (comma-separated) that libssh can do for option, in list's order.
std::string libssh_subset(const std::string& option, const std::string& list);

// Sets every resolved algorithm list on session; false with error naming the option.
bool apply_algorithms(ssh_session session, const ResolvedHost& host, std::string& error);

}  // namespace cutpilot::transport
