#include "plans/show.h"

#include "plans/duration.h"
#include "plans/kinds.h"
#include "plans/load.h"

namespace cutpilot::plans {
namespace {

// Text from the plan made safe for a terminal: control bytes escaped, nothing cut.
std::string safe(std::string_view text) {
  std::string out;
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string host_line(const HostSpec& host) {
  std::string line = "  " + host.name + "  " + (host.user ? *host.user + "@" : "") + host.address;
  if (host.port) line += ":" + std::to_string(*host.port);
  if (host.jump) line += "  via " + *host.jump;
  if (host.peer_address) line += "  (peers reach it as " + *host.peer_address + ")";
  if (host.sudo) line += "  sudo";
  if (host.role) line += "  role " + *host.role;
  return safe(line) + "\n";
}

// The markers after a step's id: what the operator must know before it runs.
std::string markers(const Step& step) {
  std::string out;
  if (step.gate == Gate::kApprove) out += "  [approve]";
  if (step.confirm) out += "  [confirm: type " + quote(*step.confirm) + "]";
  if (step.downtime == Downtime::kStart) out += "  [downtime starts]";
  if (step.downtime == Downtime::kEnd) out += "  [downtime ends]";
  if (step.point_of_no_return) out += "  [POINT OF NO RETURN]";
  if (step.timeout) out += "  [timeout " + format_duration(*step.timeout) + "]";
  if (step.retries) out += "  [retries " + std::to_string(step.retries) + "]";
  return out;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names)
    out += (out.empty() ? "" : ", ") + name;
  return out;
}

// One action on each of the step's hosts ("in the cockpit" for a wait without hosts).
void action_lines(const Plan& plan, const Step& step, const Action& action, std::string_view label,
                  std::string& out) {
  if (step.on.empty()) {
    out += "      " + std::string(label) +
           "in the cockpit: " + safe(describe_action(plan, step, action, "")) + "\n";
    return;
  }
  for (const std::string& host : step.on)
    out += "      " + std::string(label) + "on " + host + ": " +
           safe(describe_action(plan, step, action, host)) + "\n";
}

}  // namespace

std::string describe_action(const Plan& plan, const Step& step, const Action& action,
                            std::string_view host) {
  const HostSpec* found = plan.find_host(host);
  const HostSpec fallback{std::string(host), std::string(host)};
  return action_kinds()[action.index()].describe(
      action, DescribeInput{plan, step, found ? *found : fallback});
}

std::string render_plan(const Plan& plan) {
  std::string out = "plan " + quote(plan.settings.name) + " (" + safe(plan.path) + ")\n";
  if (!plan.settings.description.empty()) out += safe(plan.settings.description) + "\n";
  if (plan.settings.downtime_budget)
    out += "downtime budget: " + format_duration(*plan.settings.downtime_budget) + "\n";
  out += "\nhosts:\n";
  for (const HostSpec& host : plan.hosts)
    out += host_line(host);
  const std::vector<size_t> order = ordered_steps(plan.steps);
  size_t number = 0;
  for (const std::string& phase : phases(plan.steps)) {
    out += "\nphase " + safe(phase) + "\n";
    for (size_t index : order) {
      const Step& step = plan.steps[index];
      if (step.phase != phase) continue;
      std::string head = step.id;
      if (step.title != step.id) head += " - " + step.title;
      out += "  " + std::to_string(++number) + ". " + safe(head + markers(step)) + "\n";
      if (!step.needs.empty()) out += "      needs: " + joined(step.needs) + "\n";
      if (step.when) out += "      when: " + safe(step.when->text) + "\n";
      action_lines(plan, step, step.action, "", out);
      if (step.rollback) action_lines(plan, step, *step.rollback, "rollback ", out);
      if (step.no_rollback) out += "      rollback: none (on purpose: an abort leaves it done)\n";
    }
  }
  if (plan.steps.empty()) out += "\n(no steps)\n";
  return out;
}

int show_plan(const std::string& path, std::FILE* out, std::FILE* err) {
  const LoadResult result = load_plan(path);
  for (const Diagnostic& diagnostic : result.diagnostics)
    std::fprintf(err, "%s\n", format_diagnostic(diagnostic).c_str());
  if (!result.ok()) return 1;
  const std::string text = render_plan(result.plan);
  std::fwrite(text.data(), 1, text.size(), out);
  return 0;
}

}  // namespace cutpilot::plans
