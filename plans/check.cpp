#include "plans/check.h"

#include "plans/load.h"

namespace cutpilot::plans {

int check_plan(const std::string& path, std::FILE* out, std::FILE* err) {
  const LoadResult result = load_plan(path);
  for (const Diagnostic& diagnostic : result.diagnostics)
    std::fprintf(err, "%s\n", format_diagnostic(diagnostic).c_str());
  if (!result.ok()) return 1;
  std::fprintf(out, "%s: ok: plan \"%s\", %zu hosts, %zu steps\n", path.c_str(),
               printable(result.plan.settings.name).c_str(), result.plan.hosts.size(),
               result.plan.steps.size());
  return 0;
}

}  // namespace cutpilot::plans
