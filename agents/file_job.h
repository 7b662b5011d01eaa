// The `file` job kind: replace a file atomically keeping a backup, or put the backup back.
//
// Spec JSON (strict: an unknown field is an error naming it):
//   {"action": "write", "path": "/abs/path", "content": "...",
//    "mode": "0644",           optional octal string; else the old file's mode, else 0644
//    "owner": "www-data",      optional user name or uid; else the old file's owner (as root)
//    "group": "www-data",      optional group name or gid; else the old file's group (as root)
//    "backup": true,           optional, default true
//    "validate": {...}}        optional exec spec (argv or shell, env, cwd, timeout_ms, sudo)
//   {"action": "restore", "path": "/abs/path"}
//
// A write puts the new content in a hidden temp file beside the target (same directory, so
// the rename is atomic), fsyncs it, renames it over the target and fsyncs the directory.
// The old file is untouched until that rename; a failure before it (full disk, bad owner)
// leaves it as it was.
//
// Validation runs with the new file already at its real path: validators such as `nginx -t`
// check the whole configuration the file is part of, not a lone file, so there is no
// placeholder for a temp path. When the validator fails (or times out, or the job is
// cancelled) the previous version is put back atomically (or the new file removed when
// there was none) and the job fails with the validator's output in its log.
//
// Backups live in the agent's spool, $HOME/.cache/cutpilot/backups/<escaped path>/ ("content"
// and "meta"), never beside the file: config directories are globbed (nginx includes every
// file in sites-enabled/), so a backup there would be loaded as configuration. A backup is
// written only when the path has none: after several writes the rollback target is still the
// version from before the first one, the state before the migration. `restore` puts that
// version back (mode, owner and group included; removes the file when there was none), then
// drops the content and leaves a "restored" record, so a second restore is a harmless no-op
// while a restore of a path never written is an error. The next write starts a new backup.
//
// Paths must be absolute and normalized; a symlink at the path is refused (renaming over it
// would replace the link with a file). Owner and group names are read from /etc/passwd and
// /etc/group (the static agent has no NSS). A second job on a path whose backup directory is
// locked by a running one fails at once rather than racing it. The job's result is a JSON
// summary: for a write {action, path, bytes, sha256, mode, uid, gid, created, backup,
// new_backup, validated[, rolled_back]}, for a restore {action, path, backup, restored,
// removed[, bytes]}.
#pragma once

#include <cstddef>
#include <string_view>

#include "agents/runner.h"

namespace cutpilot::agent {

// The largest content a write accepts (a spec travels in one frame of at most 1 MiB).
inline constexpr size_t kMaxFileContentBytes = 512 * 1024;

// Checks a file spec strictly before the job is claimed; false with error set when malformed.
bool validate_file_spec(std::string_view spec, std::string& error);

// Runs a file job (write or restore) to the end; the job's result with a JSON summary.
proto::JobFinished run_file(std::string_view spec, JobContext& job);

}  // namespace cutpilot::agent
