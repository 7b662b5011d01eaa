// A MariaDB database moved by GTID replication (the db job's replicate, catch-up and detach
// actions for engine mariadb): a dump taken with its GTID position is restored into the side
// database (db_swap.h), then a named replication connection on the target (multi-source, so
// no other replication there is touched) streams the source's binary log into it, its filters
// applying only the source database, rewritten into the side database. The catch-up waits
// for the source's GTID position, compares row counts, removes the replication and puts the
// copy in place. The connection is named replication_name(spec), the replication user on the
// source maria_replication_user(spec): any later job of the run (a detach, a retry) finds them.
#pragma once

#include <string>

#include "agents/db_run.h"
#include "agents/db_spec.h"

namespace cutpilot::agent {

// The run's replication user on the source for spec's target (at most 32 characters).
std::string maria_replication_user(const DbSpec& spec);
// `replicate` for mariadb: preflight (changes nothing when it fails), a user on the source,
// the dump with its GTID position into the side database, the named connection with its
// filters; then reports the lag ("streaming: ...") until cancelled (all of it removed) or
// until a catch-up or detach removed the connection.
proto::JobFinished maria_replicate(const DbSpec& spec, const Side& source, JobContext& job);
// `catch-up` for mariadb: waits until the target applied the source's gtid_binlog_pos,
// compares row counts (one snapshot per side), removes the replication, swaps the copy in.
proto::JobFinished maria_catch_up(const DbSpec& spec, const Side& source, JobContext& job);
// `detach` for mariadb: removes the named connection, the replication user and the side
// database, whichever exist (what a killed replicate job leaves).
proto::JobFinished maria_detach(const DbSpec& spec, const Side& source, JobContext& job);

}  // namespace cutpilot::agent
