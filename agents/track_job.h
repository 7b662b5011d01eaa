// The `track` job kind: the source host's record of what changed in a synced tree, so that a
// final sync moves those paths and no others.
//
// Two modes (JSON spec):
//   {"path": "/srv/app/", "max_paths": N, "backend": "auto" | "inotify" | "fanotify"}
//       watch: runs until cancelled. Watches the tree
//       (agents/change_watch.h), logs "watching N directories" and reports progress (files:
//       changed paths, bytes: their size) once armed, and then as changes come. It answers
//       seal requests: a file "seal-ID" made in its spool directory is answered with
//       "sealed-ID.list" (the final sync's --files-from list, NUL-separated) and then
//       "sealed-ID.json" (the answer below). A path without a trailing slash names the
//       directory itself (rsync's rule): the list's names then begin with its name.
//   {"seal": "WATCH JOB ID", "timeout_ms": N}   seal: asks that watch for the set as it is
//       now and succeeds with its answer as the result:
//       {"complete": bool, "lost": why not, "paths": N, "bytes": N, "hard_linked": N,
//        "directories": N, "list": "/abs/path/of/the/list"}
//       A watch that is gone (its process killed, its host restarted, its record removed)
//       or does not answer is an incomplete set, never an error: the sync then scans.
#pragma once

#include <string>
#include <string_view>

#include "agents/runner.h"

namespace cutpilot::agent {

// Checks a track spec before the job is claimed.
bool validate_track_spec(std::string_view spec, std::string& error);
// Runs a track job (watch or seal) to the end.
proto::JobFinished run_track(std::string_view spec, JobContext& job);

}  // namespace cutpilot::agent
