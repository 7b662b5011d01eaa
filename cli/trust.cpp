// `cutpilot trust HOST [--plan PLAN] [--yes]`: show a host's key and fingerprint and
// add it to known_hosts once the operator confirms. A changed key is never replaced.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "cli/targets.h"
#include "plans/load.h"
#include "transport/ssh_session.h"

namespace cutpilot::cli {
namespace {

constexpr const char* kUsageText = "usage: cutpilot trust HOST [--plan PLAN] [--yes]\n";

// The host as the plan describes it, or as ~/.ssh/config does.
std::optional<transport::SshTarget> target_for(const std::string& host, const std::string& plan) {
  if (plan.empty()) {
    transport::SshTarget t;
    t.name = host;
    t.address = host;
    t.ssh_defaults = true;  // ssh reads its own configs, as `ssh HOST` does
    return t;
  }
  const plans::LoadResult loaded = plans::load_plan(plan);
  for (const auto& d : loaded.diagnostics)
    std::fprintf(stderr, "%s\n", plans::format_diagnostic(d).c_str());
  if (!loaded.ok()) return std::nullopt;
  for (auto& t : ssh_targets(loaded.plan))
    if (t.name == host) return t;
  std::fprintf(stderr, "cutpilot trust: %s has no host '%s'\n", plan.c_str(), host.c_str());
  return std::nullopt;
}

}  // namespace

int trust(const std::vector<std::string>& args) {
  std::string host, plan;
  bool yes = false;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--yes") {
      yes = true;
    } else if (args[i] == "--plan" && i + 1 < args.size()) {
      plan = args[++i];
    } else if (!args[i].empty() && args[i][0] != '-' && host.empty()) {
      host = args[i];
    } else {
      std::fprintf(stderr, "%s", kUsageText);
      return kUsage;
    }
  }
  if (host.empty()) {
    std::fprintf(stderr, "%s", kUsageText);
    return kUsage;
  }
  auto target = target_for(host, plan);
  if (!target) return kFailed;
  transport::SshSession session(*target);
  if (!session.fetch_host_key()) {
    std::fprintf(stderr, "cutpilot trust: %s\n", session.error().c_str());
    return kFailed;
  }
  const auto& key = session.host_key();
  std::printf("%s (%s) offers %s %s\n", host.c_str(), key.endpoint.c_str(), key.type.c_str(),
              key.fingerprint.c_str());
  switch (session.check_host_key()) {
    case transport::KeyVerdict::kKnown:
      std::printf("already trusted (%s)\n", key.decided_by.c_str());
      return kOk;
    case transport::KeyVerdict::kRevoked:
      std::fprintf(stderr, "cutpilot trust: %s offers a REVOKED key (%s). Refusing to trust it.\n",
                   host.c_str(), key.decided_by.c_str());
      return kFailed;
    case transport::KeyVerdict::kChanged:
      std::fprintf(stderr,
                   "cutpilot trust: %s has a DIFFERENT key for %s: %s. Refusing to replace it: "
                   "find out why the key changed; if the host was reinstalled, remove the old "
                   "entry yourself (ssh-keygen -R %s -f FILE) and run this again.\n",
                   host.c_str(), key.endpoint.c_str(), key.decided_by.c_str(),
                   session.resolved()->known_hosts_name().c_str());
      return kFailed;
    case transport::KeyVerdict::kError:
    case transport::KeyVerdict::kUnknown:
      break;
  }
  // Where ssh itself would add the key: the first UserKnownHostsFile, under the
  // name ssh looks it up by (HostKeyAlias, or host / [host]:port).
  const auto& resolved = *session.resolved();
  if (resolved.user_known_hosts.empty()) {
    std::fprintf(stderr, "cutpilot trust: UserKnownHostsFile is none for %s: nowhere to add it\n",
                 host.c_str());
    return kFailed;
  }
  const std::string& file = resolved.user_known_hosts.front();
  if (!yes) {
    if (!isatty(STDIN_FILENO)) {
      std::fprintf(stderr,
                   "cutpilot trust: not added: confirm in a terminal, or pass --yes once you have "
                   "checked the fingerprint with the host's owner\n");
      return kFailed;
    }
    std::printf("Add this key for %s to %s? Type yes to trust it: ",
                resolved.known_hosts_name().c_str(), file.c_str());
    std::fflush(stdout);
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "yes") {
      std::printf("not added\n");
      return kAborted;
    }
  }
  if (!session.trust_host_key()) {
    std::fprintf(stderr, "cutpilot trust: %s\n", session.error().c_str());
    return kFailed;
  }
  std::printf("added to %s (as %s)\n", file.c_str(), resolved.known_hosts_name().c_str());
  return kOk;
}

}  // namespace cutpilot::cli
