// `ssh -G` answers remembered between runs. Resolving one host costs a process of the
// operator's ssh client (~17 ms of CPU here, most of it the dynamic linker and OpenSSL's
// start-up), once per host per run; the same client given the same arguments and the same
// config files prints the same answer, so the answer is kept under a key made of all of
// them (with every file the configs Include). Where the answer can depend on anything else,
// nothing is cached and ssh runs as before: a config with Match (exec, localnetwork,
// canonical ...), CanonicalizeHostname, ${ENV} or a %-token that names the local host.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "transport/ssh_process.h"

namespace cutpilot::transport {

// The key of one `ssh -G` call (argv as resolve_host builds it), or nullopt when its answer
// must not be cached. Exposed for tests.
std::optional<std::string> ssh_g_cache_key(const std::vector<std::string>& argv);

// Whether ssh's answer for a config with this text depends only on the text and that of the
// files it includes (exposed for tests).
bool ssh_config_cacheable(const std::string& text);

// Runs argv (`ssh -G ...`) or answers as it answered before for the same key.
CommandOutput run_ssh_g(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

}  // namespace cutpilot::transport
