// `cutpilot plan PLAN`: the resolved steps, phase by phase, and what each runs where.
// `cutpilot plan --ids PLAN` and `--hosts PLAN`: one step id (host name) a line, for shell
// completion and scripts.
#include <cstdio>

#include "cli/commands.h"
#include "plans/load.h"
#include "plans/show.h"

namespace cutpilot::cli {
namespace {

// The step ids or host names of the plan at path, one a line, in file order. A plan with
// errors still lists what it could read (completion is asked while a plan is being written);
// the exit code says whether it loaded cleanly.
int list_names(const std::string& path, bool hosts) {
  const plans::LoadResult loaded = plans::load_plan(path);
  if (hosts) {
    for (const plans::HostSpec& host : loaded.plan.hosts)
      std::printf("%s\n", host.name.c_str());
  } else {
    for (const plans::Step& step : loaded.plan.steps)
      if (!step.id.empty()) std::printf("%s\n", step.id.c_str());
  }
  return loaded.ok() ? kOk : kFailed;
}

}  // namespace

int plan(const std::vector<std::string>& args) {
  if (args.size() == 2 && (args[0] == "--ids" || args[0] == "--hosts") && !args[1].empty())
    return list_names(args[1], args[0] == "--hosts");
  if (args.size() != 1 || args[0].empty() || args[0][0] == '-') {
    std::fprintf(stderr, "usage: cutpilot plan PLAN | plan --ids PLAN | plan --hosts PLAN\n");
    return kUsage;
  }
  return plans::show_plan(args[0], stdout, stderr) == 0 ? kOk : kFailed;
}

}  // namespace cutpilot::cli
