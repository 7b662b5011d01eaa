// Variables in plan strings: ${name} from [vars], ${env:NAME} from the
// cockpit's environment, $$ for a literal $.
//
// Any other '$' is an error rather than text: a plan that says "$app" instead of
// "${app}" would otherwise pass a parameter silently wrong. Unknown variables
// and unset environment variables are errors too, never an empty string.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace cutpilot::plans {

// The [vars] table after expansion: name -> value.
using Vars = std::map<std::string, std::string, std::less<>>;

// Reads an environment variable of the cockpit; nullopt when it is unset.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

// The cockpit process's real environment (getenv).
EnvLookup process_environment();

// The longest string an expansion may produce (stops "${a}${a}" chains from exploding).
inline constexpr size_t kMaxExpandedBytes = 1024 * 1024;
// How much all expansions of one plan may produce together (many uses of one big variable).
inline constexpr size_t kMaxTotalExpandedBytes = 16 * 1024 * 1024;

// The outcome of expanding one string: the text, or why it could not be expanded.
struct Expansion {
  std::string text;
  std::string error;  // set when the expansion failed: names the variable
  // The failure comes from a [vars] entry whose own error is reported already.
  bool cascade = false;

  // True when the string expanded cleanly.
  bool ok() const { return error.empty(); }
};

// Expands plan strings; built once per plan from its resolved [vars].
class Expander {
 public:
  // broken: [vars] entries that failed to resolve (using them is a cascade, not a new error).
  Expander(Vars vars, EnvLookup env, std::set<std::string, std::less<>> broken = {});

  // Expands ${name}, ${env:NAME} and $$ in text; counts against kMaxTotalExpandedBytes.
  Expansion expand(std::string_view text);
  // Expands like expand(), then a leading "~/" (or a lone "~") to $HOME.
  Expansion expand_path(std::string_view text);
  // The resolved [vars].
  const Vars& vars() const { return vars_; }

 private:
  Vars vars_;
  EnvLookup env_;
  std::set<std::string, std::less<>> broken_;
  size_t produced_ = 0;
};

// One [vars] entry that could not be resolved because of its own text.
struct VarError {
  std::string name;
  std::string message;
};

// The [vars] table resolved: values may use ${env:NAME} and other variables.
struct ResolvedVars {
  Vars vars;  // every variable that resolved
  std::vector<VarError> errors;
  // Every variable that did not resolve: those in errors, and those using them.
  std::set<std::string, std::less<>> broken;
};

// Resolves raw [vars] values (as written) into final values, detecting cycles.
ResolvedVars resolve_vars(const Vars& raw, const EnvLookup& env);

}  // namespace cutpilot::plans
