#include "plans/preflight.h"

#include <algorithm>
#include <string_view>
#include <variant>

#include "plans/suggest.h"

extern char** environ;

namespace cutpilot::plans {
namespace {

// The candidates closest to word by edit distance, at most kMaxSuggestCandidates of them
// (an environment can hold more names than did_you_mean looks at).
std::vector<std::string_view> nearest_names(std::string_view word,
                                            const std::vector<std::string>& names) {
  std::vector<std::pair<size_t, std::string_view>> ranked;
  ranked.reserve(names.size());
  for (const auto& name : names)
    if (name != word) ranked.emplace_back(edit_distance(word, name), name);
  const size_t keep = std::min(ranked.size(), kMaxSuggestCandidates);
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<long>(keep), ranked.end());
  std::vector<std::string_view> out;
  for (size_t i = 0; i < keep; ++i)
    out.push_back(ranked[i].second);
  return out;
}

// The endpoints of a db action that may name a password_env, with what to call each.
std::vector<std::pair<const DbEndpoint*, const char*>> endpoints(const DbAction& db) {
  if (db.op == DbOp::kConnections) return {{&db.db, "the database"}};
  return {{&db.from, "the source database"}, {&db.to, "the target database"}};
}

// Adds a diagnostic for each unset password_env of action.
void check_action(const Plan& plan, const Step& step, const Action& action, bool rollback,
                  Severity severity, const EnvLookup& env,
                  const std::vector<std::string>& env_names, std::vector<Diagnostic>& out) {
  const auto* db = std::get_if<DbAction>(&action);
  if (!db) return;
  for (const auto& [endpoint, side] : endpoints(*db)) {
    if (!endpoint->password_env || env(*endpoint->password_env)) continue;
    const std::string& name = *endpoint->password_env;
    std::string message = "step " + quote(step.id) + (rollback ? " (its rollback)" : "") +
                          ": environment variable " + quote(name) + " (password_env of " + side +
                          " " + quote(endpoint->database) + ") is not set";
    message += severity == Severity::kError ? " in the cockpit's environment"
                                            : "; an abort could not roll the step back";
    message += did_you_mean(name, nearest_names(name, env_names));
    out.push_back(Diagnostic{plan.path, endpoint->pos.line ? endpoint->pos : step.pos, severity,
                             std::move(message)});
  }
}

}  // namespace

std::vector<Diagnostic> missing_secrets(const Plan& plan,
                                        const std::set<std::string>& finished_steps,
                                        const EnvLookup& env,
                                        const std::vector<std::string>& env_names) {
  std::vector<Diagnostic> out;
  for (const Step& step : plan.steps) {
    const bool finished = finished_steps.count(step.id) > 0;
    if (!finished)
      check_action(plan, step, step.action, false, Severity::kError, env, env_names, out);
    if (step.rollback)
      check_action(plan, step, *step.rollback, true,
                   finished ? Severity::kWarning : Severity::kError, env, env_names, out);
  }
  return out;
}

std::vector<std::string> environment_names() {
  std::vector<std::string> names;
  for (char** entry = environ; entry && *entry; ++entry) {
    const std::string_view text = *entry;
    const size_t equals = text.find('=');
    if (equals != std::string_view::npos && equals > 0) names.emplace_back(text.substr(0, equals));
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

}  // namespace cutpilot::plans
