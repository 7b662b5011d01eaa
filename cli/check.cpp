// `cutpilot check PLAN`: validate a plan; errors as PLAN:LINE:COL: error: message.
#include <cstdio>

#include "cli/commands.h"
#include "plans/check.h"

namespace cutpilot::cli {

int check(const std::vector<std::string>& args) {
  if (args.size() != 1 || args[0].empty() || args[0][0] == '-') {
    std::fprintf(stderr, "usage: cutpilot check PLAN\n");
    return kUsage;
  }
  return plans::check_plan(args[0], stdout, stderr) == 0 ? kOk : kFailed;
}

}  // namespace cutpilot::cli
