// libFuzzer target for the plan loader: any bytes must load into a plan or into
// diagnostics, never crash, hang or throw, and every diagnostic must have a place.
// A plan that loads must also order, show and translate into jobs without failing.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "plans/job_spec.h"
#include "plans/load.h"
#include "plans/show.h"

namespace {

using namespace cutpilot::plans;

// Everything after loading: the order is a permutation, every action shows and translates.
void use(const Plan& plan) {
  std::vector<size_t> order = ordered_steps(plan.steps);
  std::sort(order.begin(), order.end());
  for (size_t i = 0; i < order.size(); ++i)
    if (order[i] != i) std::abort();
  if (render_plan(plan).empty()) std::abort();
  JobContext context;
  context.run_key = "fuzz";
  context.peer = [&](std::string_view host) -> std::optional<PeerAccess> {
    const HostSpec* spec = plan.find_host(host);
    if (!spec) std::abort();  // the loader let an unknown host through
    PeerAccess access = default_peer_access(*spec);
    access.host_key = "ssh-ed25519 AAAA";
    return access;
  };
  context.secrets = [](std::string_view) { return std::optional<std::string>("pw"); };
  for (const Step& step : plan.steps)
    for (const std::string& host : step.on)
      for (const Action* action : {&step.action, step.rollback ? &*step.rollback : nullptr})
        if (action && !job_for(plan, step, *action, host, context).ok()) std::abort();
  for (const PeerLink& link : peer_links(plan))
    if (!plan.find_host(link.host) || !plan.find_host(link.peer)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const EnvLookup env = [](std::string_view name) -> std::optional<std::string> {
    if (name == "HOME") return std::string("/home/fuzz");
    if (name == "CUTPILOT_LAB") return std::string("/tmp/lab");
    return std::nullopt;
  };
  const LoadResult result = load_plan_text(text, "fuzz.toml", env);
  for (const Diagnostic& diagnostic : result.diagnostics)
    if (diagnostic.pos.line == 0 || diagnostic.pos.column == 0 || diagnostic.message.empty())
      std::abort();
  // A plan without errors has what `cutpilot hosts` needs.
  if (result.ok() && (result.plan.settings.name.empty() || result.plan.hosts.empty())) std::abort();
  if (result.ok()) use(result.plan);
  return 0;
}
