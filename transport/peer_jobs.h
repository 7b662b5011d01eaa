// The agent jobs behind a host-to-host sync: the run's migration key made on the
// pulling host, authorised on the other, revoked and deleted when the run ends.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "transport/fleet.h"
#include "transport/job_tracker.h"
#include "transport/protocol.h"

namespace cutpilot::transport {

// The job that makes (or finds) the run's key pair on the pulling host.
proto::StartJob keygen_job(const std::string& run, const std::string& host);
// The job that authorises public_key (restricted) on the host the puller reaches;
// permit_open lists the HOST:PORTs it may forward to (a parallel database copy's tunnel).
proto::StartJob authorize_job(const std::string& run, const std::string& host,
                              const std::string& public_key,
                              const std::vector<std::string>& permit_open = {});
// The job that removes the run's authorised key from host.
proto::StartJob revoke_job(const std::string& run, const std::string& host);
// The job that deletes the run's key pair from the pulling host.
proto::StartJob forget_job(const std::string& run, const std::string& host);
// The public key a finished keygen job reported ("" when there is none).
std::string public_key_of(const proto::JobFinished& finished);

// Starts a job and drives the fleet until it is done or limit passes; every event
// of the job in order (each also handed to seen, when given). The last is the
// JobFinished, or an Error when the agent refused the job.
std::vector<proto::Message> run_job(Fleet& fleet, JobTracker& tracker, const std::string& host,
                                    proto::StartJob request, std::chrono::milliseconds limit,
                                    const std::function<void(const proto::Message&)>& seen = {});

}  // namespace cutpilot::transport
