// The `peer` job kind: the migration key pair that lets one host reach another for a run.
//
// The pulling host makes the pair ("keygen"), the other host authorises its public key
// with a restricted authorized_keys entry ("authorize"); when the run ends or is rolled
// back the entry is removed ("revoke") and the pair deleted ("forget"). Every action is
// idempotent, so a retried or re-attached step does the same thing once.
//
// Spec: {"action": "keygen"|"authorize"|"revoke"|"forget", "name": RUN,
//        "public_key": "ssh-ed25519 AAAA..." (authorize only),
//        "permit_open": ["127.0.0.1:5432"] (authorize: the only forwards the key may open)}
// Keys live in ~/.cache/cutpilot/keys/<escaped RUN>/id_ed25519; entries in
// ~/.ssh/authorized_keys of the user ssh logged in as (under sudo too) end with the
// comment "cutpilot-migration:RUN".
#pragma once

#include <string>
#include <string_view>

#include "agents/runner.h"

namespace cutpilot::agent {

// Set by `cutpilot-agent serve --login-home DIR`: the home of the user ssh logged in as, when
// the agent runs under sudo (authorize and revoke edit DIR/.ssh/authorized_keys).
inline constexpr const char* kLoginHomeEnv = "CUTPILOT_LOGIN_HOME";

// The comment that marks a run's authorized_keys entry.
std::string migration_key_comment(std::string_view run);
// Where a run's migration private key lives on the pulling host.
std::string migration_key_path(std::string_view run);

// Checks a peer spec before the job is claimed.
bool validate_peer_spec(std::string_view spec, std::string& error);
// Runs a peer action; keygen's result is {"public_key": ..., "key_path": ...}, authorize's
// and revoke's {"authorized_keys": the file it edited}.
proto::JobFinished run_peer(std::string_view spec, JobContext& job);

}  // namespace cutpilot::agent
