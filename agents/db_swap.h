// The side database of a copy: the restore goes into a database of its own, and only a copy
// that finished and passed verification takes the target's name; the database it replaces
// is kept under a name derived from the target and the run, so that a put-back (the copy's
// rollback) can bring it back, and only an explicit drop-kept removes it.
#pragma once

#include <optional>
#include <string>

#include "agents/db_run.h"
#include "agents/db_spec.h"

namespace cutpilot::agent {

// The databases a copy uses beside its target, named after the target and the run.
struct SideNames {
  std::string side;    // where the copy is restored: "<target>_new_<run>"
  std::string kept;    // where the replaced target is kept: "<target>_old_<run>"
  std::string undone;  // where a put-back moves the copy: "<target>_undone_<run>"
};

// The names for target and run; each fits the engine's identifier limit (PostgreSQL 63 bytes,
// MariaDB 64): a long target is cut and marked with a hash of its full name.
SideNames side_names(const DbEngine& engine, const std::string& target, const std::string& run);

// Readies the target's server for a copy into names.side (dropped first: only an earlier
// attempt of this run leaves one) and says whether the target exists. Refuses, changing
// nothing, when the kept or undone name is taken, the target is missing and may not be
// created, or clients are connected to it. The error, or "" when ready.
std::string prepare_side(const DbSpec& spec, const SideNames& names, bool& target_exists,
                         JobContext& job);
// Drops the side database (what a copy that failed left); a failure is only logged.
void drop_side(const DbSpec& spec, const SideNames& names, JobContext& job);
// Puts the verified copy under the target's name and the target (when it exists) under
// names.kept, both or neither. The error, or "" when done.
std::string swap_into_place(const DbSpec& spec, const SideNames& names, bool target_exists,
                            JobContext& job);
// The `put-back` action: the copy moves to names.undone, the kept database back to the target.
proto::JobFinished put_back(const DbSpec& spec, JobContext& job);
// The `drop-kept` action: drops what the run set aside (names.kept, names.undone).
proto::JobFinished drop_kept(const DbSpec& spec, JobContext& job);

}  // namespace cutpilot::agent
