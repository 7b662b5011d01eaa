#include "cli/commands.h"

#include <cstdio>
#include <string_view>

#include "cutpilot/revision.h"
#include "cutpilot/version.h"

namespace cutpilot::cli {
namespace {

using Handler = int (*)(const std::vector<std::string>&);

// One verb of the command line.
struct Verb {
  std::string_view name;
  std::string_view usage;
  Handler handler;  // nullptr: the verb is part of the contract but not built yet
};

constexpr Verb kVerbs[] = {
    {"check", "check PLAN", check},
    {"plan", "plan PLAN | plan --ids PLAN | plan --hosts PLAN", plan},
    {"hosts", "hosts PLAN [--json]", hosts},
    {"run",
     "run PLAN [--headless] [--json] [--approve STEP[=CONFIRM-TEXT]]... [--approve-all] "
     "[--resume] [--new-run[=PLAN-NAME]] [--on-failure wait|rollback|exit] [--state-dir DIR]",
     run_command},
    {"approve", "approve STEP [--confirm TEXT] [--ahead] [--state-dir DIR]", approve},
    {"revoke", "revoke STEP [--state-dir DIR]", revoke},
    {"status", "status [--json] [--state-dir DIR] [PLAN]", status},
    {"runs", "runs [PLAN] [--json]", runs},
    {"report", "report [--csv | --json] [--state-dir DIR] [PLAN]", report},
    {"abort", "abort [--state-dir DIR]", abort_run},
    {"skip", "skip STEP [--state-dir DIR]", skip},
    {"retry", "retry STEP [--state-dir DIR]", retry},
    {"trust", "trust HOST [--plan PLAN] [--yes]", trust},
    {"demo", "demo [--headless] [--json] [--approve-all]", demo},
};

void usage(std::FILE* to) {
  std::fprintf(to, "usage: cutpilot VERB [ARGS]\n\nverbs:\n");
  for (const Verb& verb : kVerbs)
    std::fprintf(to, "  cutpilot %.*s%s\n", static_cast<int>(verb.usage.size()), verb.usage.data(),
                 verb.handler ? "" : "   (not built yet)");
  std::fprintf(to, "  cutpilot --version\n");
}

}  // namespace

int run(const std::vector<std::string>& args) {
  if (args.empty()) {
    usage(stderr);
    return kUsage;
  }
  if (args[0] == "--version") {
    std::printf("cutpilot %s (git %s)\n", kVersion, kRevision);
    return kOk;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    usage(stdout);
    return kOk;
  }
  for (const Verb& verb : kVerbs) {
    if (verb.name != args[0]) continue;
    if (args.size() > 1 && (args[1] == "--help" || args[1] == "-h")) {
      std::printf("usage: cutpilot %.*s\n", static_cast<int>(verb.usage.size()), verb.usage.data());
      return kOk;
    }
    if (!verb.handler) {
      std::fprintf(stderr, "cutpilot %s: not built yet in cutpilot %s (see the open issues)\n",
                   args[0].c_str(), kVersion);
      return kFailed;
    }
    return verb.handler(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  std::fprintf(stderr, "cutpilot: unknown verb '%s'\n\n", args[0].c_str());
  usage(stderr);
  return kUsage;
}

}  // namespace cutpilot::cli
