// A PostgreSQL database moved by logical replication (the db job's replicate, catch-up and
// detach actions): the schema is copied and a subscription on the target streams the source's
// rows into the side database (db_swap.h) while the service is live; the catch-up waits for
// it to apply everything the source wrote, copies sequences, compares row counts, removes the
// replication and puts the copy in place. The publication, subscription and slot share one
// name, derived from the target database and the run, so that any later job of the run (a
// detach, a retry) finds what an earlier one left.
#pragma once

#include <string>

#include "agents/db_run.h"
#include "agents/db_spec.h"

namespace cutpilot::agent {

// The name of the run's publication, subscription and replication slot for spec's target.
std::string replication_name(const DbSpec& spec);
// `replicate`: preflight of the source (changes nothing when it fails), the schema into the
// side database, publication and subscription, the first copy; then reports the lag
// ("streaming: ... behind") until cancelled (the replication is removed) or detached.
proto::JobFinished replicate(const DbSpec& spec, const Side& source, JobContext& job);
// `catch-up`: waits until the target applied what the source had written, copies sequences,
// compares row counts (one snapshot per side), removes the replication, swaps the copy in.
proto::JobFinished catch_up(const DbSpec& spec, const Side& source, JobContext& job);
// `detach`: removes the subscription, the slot, the publication and the side database,
// whichever exist (an abort's rollback of a replicate step).
proto::JobFinished detach(const DbSpec& spec, const Side& source, JobContext& job);

// The source's schema, dumped there and restored into database into here (db_job.cpp); the
// failure, or nullopt when done.
std::optional<proto::JobFinished> copy_schema(const DbSpec& spec, const Side& source,
                                              const std::string& into, JobContext& job);

}  // namespace cutpilot::agent
