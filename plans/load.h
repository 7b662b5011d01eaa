// Loading a plan file: TOML syntax, the schema, variables, all errors in one pass.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "plans/diagnostic.h"
#include "plans/expand.h"
#include "plans/plan.h"

namespace cutpilot::plans {

// Plans larger than this are refused before parsing.
inline constexpr size_t kMaxPlanBytes = 1024 * 1024;
// Lines longer than this are refused before parsing (toml11 is quadratic in them).
inline constexpr size_t kMaxPlanLineBytes = 16 * 1024;
// Arrays, inline tables and the parts of dotted keys together may nest this deep.
inline constexpr size_t kMaxPlanNesting = 64;

// A plan and everything the loader found wrong with it.
struct LoadResult {
  Plan plan;
  std::vector<Diagnostic> diagnostics;  // sorted by position

  // True when the plan can be used: no errors (warnings allowed).
  bool ok() const { return !has_errors(diagnostics); }
};

// Reads and loads the plan file at path, with the process environment.
LoadResult load_plan(const std::string& path);

// Loads plan text; display_path names it in diagnostics. env resolves ${env:NAME} and ~.
LoadResult load_plan_text(std::string_view text, const std::string& display_path,
                          const EnvLookup& env = process_environment());

}  // namespace cutpilot::plans
