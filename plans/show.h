// `cutpilot plan PLAN`: the resolved steps, phase by phase, with the exact command each
// runs on which host (a dry run: nothing connects anywhere).
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

#include "plans/plan.h"

namespace cutpilot::plans {

// What action does on host, as one line: an exec as its shell-quoted argv, a sync as the
// equivalent rsync command, a db copy as `pg_dump ... | psql ...` with passwords as
// $NAME, a health check as a readable probe, a wait as its duration.
std::string describe_action(const Plan& plan, const Step& step, const Action& action,
                            std::string_view host);

// The whole plan as `cutpilot plan` prints it. The plan must have loaded without errors.
std::string render_plan(const Plan& plan);

// Loads the plan at path; prints diagnostics on err (like check) and the plan on out.
// Returns 0 for a valid plan, 1 otherwise.
int show_plan(const std::string& path, std::FILE* out, std::FILE* err);

}  // namespace cutpilot::plans
