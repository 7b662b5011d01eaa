// `cutpilot check PLAN`: validate a plan file and say what is wrong with it.
#pragma once

#include <cstdio>
#include <string>

namespace cutpilot::plans {

// Loads the plan at path, prints every diagnostic on err ("PLAN:LINE:COL: error: ...")
// and, when it is valid, `PLAN: ok: plan "NAME", N hosts, M steps` on out.
// Returns 0 for a valid plan (warnings allowed), 1 otherwise.
int check_plan(const std::string& path, std::FILE* out, std::FILE* err);

}  // namespace cutpilot::plans
