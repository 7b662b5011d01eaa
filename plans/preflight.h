// Checks a run makes before it starts anything: what the plan needs from the cockpit's
// own machine (today: the secrets its database steps name in password_env).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "plans/diagnostic.h"
#include "plans/expand.h"
#include "plans/plan.h"

namespace cutpilot::plans {

// One diagnostic per unset password_env: an error for a step not in finished_steps (its action
// or rollback could still run), a warning for a finished step's rollback (an abort could not
// undo it). Each names the step and the variable, never a value, with a did-you-mean over
// env_names.
std::vector<Diagnostic> missing_secrets(const Plan& plan,
                                        const std::set<std::string>& finished_steps,
                                        const EnvLookup& env,
                                        const std::vector<std::string>& env_names);

// The names of the cockpit process's environment variables (from environ), sorted.
std::vector<std::string> environment_names();

}  // namespace cutpilot::plans
