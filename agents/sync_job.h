// The `sync` job kind: rsync from one host to another over SSH, with live progress.
//
// The job runs on the host that pulls (or pushes); it reaches the other host with
// ssh using the run's migration key (see peer_job.h) and a known_hosts file holding
// exactly the key the cockpit verified for that host. Spec (JSON):
//   {"mode": "copy" | "estimate" | "verify",       default copy
//    "direction": "pull" | "push",                 default pull
//    "local": "/path/here/", "remote": "/path/there/",
//    "peer": {"address", "port", "user", "host_key": "TYPE BASE64", "key": RUN, "cipher",
//             "sudo": bool (rsync runs there as `sudo -n rsync`)},
//    "delete", "checksum", "one_file_system", "numeric_ids", "hard_links", "acls",
//    "xattrs": bool,
//    "exclude": [patterns], "bwlimit_kbps": N, "parallel": N, "timeout_ms": N,
//    "tracked": {"list": "/abs/list", "remote": bool, "paths": N}, "scan_reason": "why"}
// Without "peer" both paths are on this host (a local move; also what tests use).
// copy: rsync -a with --info=progress2; parallel > 1 first compares the trees with one
//   rsync --dry-run --itemize-changes, deals what differs into chunks as the lines arrive
//   (sync_chunks.h) and copies each chunk with an rsync of its own (--files-from), N at once;
//   deletions follow as one rsync of the named paths; a full final pass only for hard links.
//   Pulling with rsync 3.2.5 or later, the chunk rsyncs run with --trust-sender: rsync's check of
//   each received name against every --files-from name is quadratic (tens of CPU seconds for 100k
//   files); the names are the dry run's own output for the same transfer.
//   With "tracked" (a final sync after a watch, agents/track_job.h) one rsync moves the listed
//   paths and no others (--files-from, on the sending host when "remote"; listed paths the
//   source no longer has are deleted with "delete"). The result says "scan": "tracked" or
//   "full", "paths", and "scan_reason" (given by the cockpit when the tracking was lost).
// estimate: rsync --dry-run --stats; the result says how many files and bytes would move.
// verify: rsync --dry-run --itemize-changes --delete; any difference fails the job.
#pragma once

#include <string>
#include <string_view>

#include "agents/runner.h"

namespace cutpilot::agent {

// Checks a sync spec before the job is claimed.
bool validate_sync_spec(std::string_view spec, std::string& error);
// Runs a sync job to the end.
proto::JobFinished run_sync(std::string_view spec, JobContext& job);

}  // namespace cutpilot::agent
