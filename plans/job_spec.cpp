// Steps to agent jobs: the dispatch over action kinds, and the host pairs that need
// the run's migration key.
#include "plans/job_spec.h"

#include <algorithm>

#include "plans/kinds.h"

namespace cutpilot::plans {
namespace {

// The pairs one action needs when it runs on host.
void links_of(const Action& action, const std::string& host, std::vector<PeerLink>& out) {
  std::optional<std::string> peer;
  std::optional<std::string> tunnel;
  if (const auto* sync = std::get_if<SyncAction>(&action)) {
    peer = sync->peer_host();
  } else if (const auto* db = std::get_if<DbAction>(&action)) {
    if (db->op != DbOp::kConnections && db->op != DbOp::kPutBack && db->op != DbOp::kDropKept &&
        db->from.host && !db->direct)
      peer = db->from.host;
    tunnel = db_tunnel_target(*db);
  } else if (const auto* image = std::get_if<ImageAction>(&action)) {
    peer = image->from_host;
  }
  if (!peer || *peer == host) return;
  auto found = std::find_if(out.begin(), out.end(), [&](const PeerLink& link) {
    return link.host == host && link.peer == *peer;
  });
  if (found == out.end()) found = out.insert(out.end(), PeerLink{host, *peer, {}});
  if (tunnel && std::find(found->permit_open.begin(), found->permit_open.end(), *tunnel) ==
                    found->permit_open.end()) {
    found->permit_open.push_back(*tunnel);
    std::sort(found->permit_open.begin(), found->permit_open.end());
  }
}

void step_links(const Step& step, bool with_rollback, std::vector<PeerLink>& out) {
  for (const std::string& host : step.on) {
    links_of(step.action, host, out);
    if (with_rollback && step.rollback) links_of(*step.rollback, host, out);
  }
}

}  // namespace

PeerAccess default_peer_access(const HostSpec& host) {
  PeerAccess access;
  access.address = host.peer_address.value_or(host.address);
  access.port = host.port.value_or(22);
  access.user = host.user.value_or("");
  return access;
}

Translation job_for(const Plan& plan, const Step& step, const Action& action, std::string_view host,
                    const JobContext& context) {
  const HostSpec* spec = plan.find_host(host);
  if (!spec) return {std::nullopt, "step " + quote(step.id) + ": unknown host " + quote(host)};
  return action_kinds()[action.index()].job(action, JobInput{plan, step, *spec, context});
}

std::vector<PeerLink> peer_links_of(const Plan&, const Step& step, bool with_rollback) {
  std::vector<PeerLink> out;
  step_links(step, with_rollback, out);
  return out;
}

std::vector<PeerLink> peer_links(const Plan& plan) {
  std::vector<PeerLink> out;
  for (size_t index : ordered_steps(plan.steps))
    step_links(plan.steps[index], /*with_rollback=*/true, out);
  return out;
}

}  // namespace cutpilot::plans
