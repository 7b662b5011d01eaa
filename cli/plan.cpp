// `cutpilot plan PLAN`: the resolved steps, phase by phase, and what each runs where.
#include <cstdio>

#include "cli/commands.h"
#include "plans/show.h"

namespace cutpilot::cli {

int plan(const std::vector<std::string>& args) {
  if (args.size() != 1 || args[0].empty() || args[0][0] == '-') {
    std::fprintf(stderr, "usage: cutpilot plan PLAN\n");
    return kUsage;
  }
  return plans::show_plan(args[0], stdout, stderr) == 0 ? kOk : kFailed;
}

}  // namespace cutpilot::cli
