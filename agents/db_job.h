// The `db` job kind: copy a database from the source host into this one, streamed
// (dump on the source piped into the restore here, no temp file), with progress and a
// row-count verification; and `connections`, who still talks to a database.
//
// Spec (JSON):
//   {"action": "copy" | "connections",              default copy
//    "engine": "postgres" | "mariadb",
//    "peer": {...}  (peer_ssh.h; the source host; without it the source is reached from here)
//    "from": ENDPOINT, "to": ENDPOINT              (copy)
//    "db": ENDPOINT, "max": N                       (connections: fail when more than N clients)
//    "format": "plain" | "custom", "create", "drop", "schema_only", "no_owner",
//    "no_privileges", "verify" (default true): bool, "exclude_tables": [...],
//    "jobs": N (postgres: -Fd -j N through an ssh tunnel, then pg_restore -j N),
//    "compress": "none" | "gzip" | "zstd" | "auto" (the dump crosses ssh compressed and is
//              decoded here; "auto": zstd where both hosts have it, else gzip; with jobs > 1
//              the tunnel is compressed instead: ssh Compression=yes),
//    "direct": bool (the tools here connect to the source's server themselves, as an
//              operator's `pg_dump -h old | psql` does: no ssh, no encryption unless the
//              server's own TLS), "timeout_ms": N}
//   ENDPOINT = {"host", "port", "socket", "database", "user", "password", "bin_dir"}
// The source is measured (size, tables) before anything moves when the target is to be
// dropped or created, or for "jobs" > 1; otherwise while the dump streams (the totals then
// appear in the progress a moment after the first bytes).
// Passwords reach the tools only through their environment (on the source through ssh's
// stdin into `read`, never argv); the spec itself is never written to disk (the runner has
// it in memory), and no log line or result carries them.
#pragma once

#include <string>
#include <string_view>

#include "agents/runner.h"

namespace cutpilot::agent {

// Checks a db spec before the job is claimed.
bool validate_db_spec(std::string_view spec, std::string& error);
// Runs a db job to the end.
proto::JobFinished run_db(std::string_view spec, JobContext& job);

}  // namespace cutpilot::agent
