// Turning a step's action into the agent job that does it on one host: the job kind
// and its spec JSON, exactly as agents/*_job.h document them.
//
// Translation is pure: what only the running cockpit knows (the verified host key of
// the other host, the address and user it is reached with, the run's key name, the
// database passwords) comes in through JobContext.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plans/expand.h"
#include "plans/plan.h"
#include "plans/step.h"

namespace cutpilot::plans {

// How a job on one host reaches another plan host over ssh (agents/peer_ssh.h "peer").
struct PeerAccess {
  std::string address;  // as the host running the job reaches it
  uint16_t port = 22;
  std::string user;      // "" : the job's own user name
  std::string host_key;  // "TYPE BASE64", as the cockpit verified it
};

// The defaults from the plan: peer_address (else address), port (else 22), user (else "").
// host_key is left empty: only the cockpit knows it.
PeerAccess default_peer_access(const HostSpec& host);

// What translation needs from the running cockpit.
struct JobContext {
  // The run's migration key name (peer_job.h "name"; sync/db "peer.key").
  std::string run_key;
  // How jobs reach a plan host; nullopt when the cockpit cannot say (no verified key).
  std::function<std::optional<PeerAccess>(std::string_view host)> peer;
  // The cockpit's environment, for db password_env; values never appear in messages.
  EnvLookup secrets;
};

// One agent job: its kind and spec.
struct JobSpec {
  std::string kind;      // "exec", "file", "sync", "db", "health"
  std::string spec;      // JSON text for proto::StartJob.spec; may hold passwords: never log it
  std::string redacted;  // the same with every password replaced: for journals and logs
};

// The outcome of a translation: a job, no job (a wait), or why there can be none.
struct Translation {
  std::optional<JobSpec> job;  // nullopt for a wait (the executor pauses) or on error
  std::string error;           // names the step, host and what is missing; never a secret

  // True when the action can run (a wait has no job and is ok).
  bool ok() const { return error.empty(); }
};

// The job that runs action (the step's action or its rollback) of step on host (one of
// step.on). Durations become timeout_ms; the step's timeout applies when the action has
// none (health timeouts are the health job's own). Plans must have loaded without errors.
Translation job_for(const Plan& plan, const Step& step, const Action& action, std::string_view host,
                    const JobContext& context);

// A pair of hosts one job connects: host runs the job (it makes the run's key pair:
// peer keygen / forget), peer is the host it reaches over ssh (it authorises the key:
// peer authorize / revoke, see agents/peer_job.h and transport/peer_jobs.h).
struct PeerLink {
  std::string host;
  std::string peer;
  // HOST:PORTs the key may forward to on peer (a parallel db copy's tunnel); sorted.
  std::vector<std::string> permit_open;

  friend bool operator==(const PeerLink&, const PeerLink&) = default;
};

// Every (host, peer) pair the plan's steps and rollbacks need, in first-use order, each
// once (permit_open merged). The executor sets each up before the first step that
// needs it and tears all down when the run ends.
std::vector<PeerLink> peer_links(const Plan& plan);

// The pairs one step needs on its hosts (its action, and its rollback when with_rollback).
std::vector<PeerLink> peer_links_of(const Plan& plan, const Step& step, bool with_rollback);

}  // namespace cutpilot::plans
