// `cutpilot hosts PLAN [--json]`: connect every host, deploy agents, print host facts.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/targets.h"
#include "plans/load.h"
#include "transport/fleet.h"
#include "transport/ssh_resolve.h"

namespace cutpilot::cli {
namespace {

using transport::LinkState;

constexpr auto kFactsTimeout = std::chrono::seconds(15);

std::string gib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", static_cast<double>(bytes) / (1ull << 30));
  return text;
}

std::string tools_text(const proto::HostFacts& f) {
  std::string text;
  for (const auto& tool : f.tools)
    text += (text.empty() ? "" : " ") + tool;
  if (!f.docker_socket.empty()) text += (text.empty() ? "" : " ") + std::string("docker-api");
  return text.empty() ? "-" : text;
}

// Where the plan's host comes from: "plan", "inventory.ini:12" or "inventory.ini:12+plan".
std::string origin_of(const plans::Plan& plan, const std::string& host) {
  const plans::HostSpec* spec = plan.find_host(host);
  return spec ? spec->origin() : "-";
}

void print_table(const plans::Plan& plan, const transport::Fleet& fleet,
                 const std::map<std::string, proto::HostFacts>& facts) {
  // SPOOLS: finished jobs whose results no cockpit acknowledged (their spools stay on the host).
  // FROM: the plan's [hosts.NAME] table, the inventory line that names the host, or both.
  // MEM: available of total memory; DISK FREE: on the first disk the agent reports (/).
  Table table({"HOST", "ADDRESS", "STATE", "AGENT", "SPOOLS", "OS", "KERNEL", "CORES",
               "MEM AVAIL/TOTAL GiB", "LOAD", "DISK FREE GiB", "TOOLS", "FROM"});
  for (const auto& host : fleet.hosts()) {
    const auto& info = fleet.info(host);
    const auto it = facts.find(host);
    if (it == facts.end()) {
      table.add({host, info.endpoint.empty() ? "-" : info.endpoint,
                 std::string(transport::link_state_name(info.state)), "-", "-", "-", "-", "-", "-",
                 "-", "-", "-", origin_of(plan, host)});
      continue;
    }
    const auto& f = it->second;
    char load[16];
    std::snprintf(load, sizeof load, "%.2f", f.load1_milli / 1000.0);
    table.add({host, info.endpoint, std::string(transport::link_state_name(info.state)),
               info.agent_version, std::to_string(f.kept_spools), f.os, f.kernel,
               std::to_string(f.cores), gib(f.mem_available) + "/" + gib(f.mem_total), load,
               f.disks.empty() ? "-" : gib(f.disks[0].free), tools_text(f), origin_of(plan, host)});
  }
  table.print(stdout);
  for (const auto& [host, f] : facts)
    if (f.kept_spools > 0)
      std::fprintf(stdout,
                   "\n%s keeps the spools of %u finished jobs that no cockpit acknowledged (its "
                   "agent removes each 7 days after the job finished)\n",
                   host.c_str(), f.kept_spools);
  for (const auto& host : fleet.hosts()) {
    const auto& info = fleet.info(host);
    if (!info.error.empty()) std::fprintf(stdout, "\n%s\n", info.error.c_str());
    for (const auto& line : info.preamble)
      std::fprintf(stderr, "warning: %s: the login shell printed before the agent: %s\n",
                   host.c_str(), line.c_str());
  }
}

nlohmann::json host_json(const transport::Fleet& fleet, const std::string& host,
                         const proto::HostFacts* f) {
  const auto& info = fleet.info(host);
  nlohmann::json j = event_json("host");
  j["host"] = host;
  j["state"] = std::string(transport::link_state_name(info.state));
  j["error"] = info.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(info.error);
  j["address"] = info.endpoint;
  j["via"] = info.via.empty() ? nlohmann::json(nullptr) : nlohmann::json(info.via);
  if (!f) return j;
  j["agent_version"] = info.agent_version;
  j["agent_uploaded"] = info.uploaded;
  j["hostname"] = f->hostname;
  j["os"] = f->os;
  j["kernel"] = f->kernel;
  j["arch"] = f->arch;
  j["cores"] = f->cores;
  j["mem_total"] = f->mem_total;
  j["mem_available"] = f->mem_available;
  j["load1"] = f->load1_milli / 1000.0;
  j["disks"] = nlohmann::json::array();
  for (const auto& d : f->disks) {
    nlohmann::json disk = {{"path", d.path}, {"free", d.free}, {"total", d.total}};
    if (!d.error.empty()) disk["error"] = d.error;
    j["disks"].push_back(disk);
  }
  j["tools"] = f->tools;
  j["docker_socket"] =
      f->docker_socket.empty() ? nlohmann::json(nullptr) : nlohmann::json(f->docker_socket);
  j["kept_spools"] = f->kept_spools;
  return j;
}

}  // namespace

int hosts(const std::vector<std::string>& args) {
  bool json = false;
  std::string plan_path;
  for (const auto& arg : args) {
    if (arg == "--json") {
      json = true;
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr,
                   "cutpilot hosts: unknown option '%s'\nusage: cutpilot hosts PLAN [--json]\n",
                   arg.c_str());
      return kUsage;
    } else if (plan_path.empty()) {
      plan_path = arg;
    } else {
      std::fprintf(stderr, "usage: cutpilot hosts PLAN [--json]\n");
      return kUsage;
    }
  }
  if (plan_path.empty()) {
    std::fprintf(stderr, "usage: cutpilot hosts PLAN [--json]\n");
    return kUsage;
  }
  const plans::LoadResult loaded = plans::load_plan(plan_path);
  for (const auto& d : loaded.diagnostics)
    std::fprintf(stderr, "%s\n", plans::format_diagnostic(d).c_str());
  if (!loaded.ok()) return kFailed;
  std::string error;
  auto agent = load_agent_binary(error);
  if (!agent) {
    std::fprintf(stderr, "cutpilot hosts: %s\n", error.c_str());
    return kFailed;
  }
  auto client_version = transport::ssh_client_version_async();
  transport::Fleet fleet(ssh_targets(loaded.plan), std::move(*agent));
  fleet.start();

  // Connect everything, ask each ready host for its facts, stop when all answered.
  std::map<std::string, proto::HostFacts> facts;
  std::map<std::string, bool> asked;
  const auto settled = [&] {
    for (const auto& host : fleet.hosts()) {
      const LinkState s = fleet.info(host).state;
      if (s == LinkState::kFailed) continue;
      if (s != LinkState::kReady || !facts.count(host)) return false;
    }
    return true;
  };
  fleet.run_until(
      [&](const std::vector<transport::HostEvent>& events) {
        for (const auto& e : events) {
          if (e.state == LinkState::kReady && !asked[e.host])
            asked[e.host] = fleet.send(e.host, proto::Facts{});
          if (e.message && std::holds_alternative<proto::HostFacts>(*e.message))
            facts[e.host] = std::get<proto::HostFacts>(*e.message);
        }
        return settled();
      },
      connect_budget(loaded.plan) + kFactsTimeout);

  int failed = 0;
  for (const auto& host : fleet.hosts())
    if (fleet.info(host).state != LinkState::kReady || !facts.count(host)) ++failed;
  if (json) {
    const std::string client = client_version.get();
    for (const auto& host : fleet.hosts()) {
      const auto it = facts.find(host);
      auto j = host_json(fleet, host, it == facts.end() ? nullptr : &it->second);
      j["origin"] = origin_of(loaded.plan, host);  // "plan", "inventory.ini:12", or both
      j["ssh_client"] = client;  // the client whose config view (ssh -G) routed and trusted
      if (it == facts.end() && j["state"] == "ready") {
        j["state"] = "failed";
        j["error"] = host + ": no facts from the agent in time";
      }
      std::printf("%s\n", j.dump().c_str());
    }
  } else {
    print_table(loaded.plan, fleet, facts);
    // Routes and host keys come from this client's view of the ssh config (ssh -G).
    const std::string client = client_version.get();
    std::printf("\nssh client: %s\n", client.empty() ? "not found" : client.c_str());
    for (const auto& host : fleet.hosts())
      if (!fleet.info(host).via.empty())
        std::printf("%s: via %s\n", host.c_str(), fleet.info(host).via.c_str());
    std::printf("\n%zu of %zu hosts ready\n", fleet.hosts().size() - failed, fleet.hosts().size());
  }
  return failed == 0 ? kOk : kFailed;
}

}  // namespace cutpilot::cli
