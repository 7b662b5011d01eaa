// libFuzzer target for the plan loader: any bytes must load into a plan or into
// diagnostics, never crash, hang or throw, and every diagnostic must have a place.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "plans/load.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cutpilot::plans;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const EnvLookup env = [](std::string_view name) -> std::optional<std::string> {
    if (name == "HOME") return std::string("/home/fuzz");
    if (name == "CUTPILOT_LAB") return std::string("/tmp/lab");
    return std::nullopt;
  };
  const LoadResult result = load_plan_text(text, "fuzz.toml", env);
  for (const Diagnostic& diagnostic : result.diagnostics)
    if (diagnostic.pos.line == 0 || diagnostic.pos.column == 0 || diagnostic.message.empty())
      std::abort();
  // A plan without errors has what `cutpilot hosts` needs.
  if (result.ok() && (result.plan.settings.name.empty() || result.plan.hosts.empty())) std::abort();
  return 0;
}
