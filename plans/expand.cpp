#include "plans/expand.h"

#include <cstdlib>

#include "plans/diagnostic.h"
#include "plans/suggest.h"

namespace cutpilot::plans {
namespace {

constexpr std::string_view kEnvPrefix = "env:";
// Separates an environment variable's name from its default: ${env:NAME:-DEFAULT}.
constexpr std::string_view kEnvDefault = ":-";
// How deep variables may refer to variables that refer to variables.
constexpr size_t kMaxVarDepth = 32;

// How resolving the inside of one ${...} went.
enum class Outcome { kOk, kError, kCascade };

// Resolves the inside of one ${...} into out, or explains in error why it cannot.
using Resolve =
    std::function<Outcome(std::string_view reference, std::string& out, std::string& error)>;

Expansion expand_with(std::string_view text, const Resolve& resolve) {
  Expansion result;
  const auto fail = [&result](std::string message, bool cascade = false) {
    result.text.clear();
    result.error = std::move(message);
    result.cascade = cascade;
    return result;
  };
  for (size_t at = 0; at < text.size(); ++at) {
    const char c = text[at];
    if (c != '$') {
      result.text.push_back(c);
      continue;
    }
    if (at + 1 < text.size() && text[at + 1] == '$') {
      result.text.push_back('$');
      ++at;
      continue;
    }
    if (at + 1 >= text.size() || text[at + 1] != '{')
      return fail("a lone '$' (write '${name}' for a variable or '$$' for a literal '$')");
    const size_t close = text.find('}', at + 2);
    if (close == std::string_view::npos)
      return fail("'${' without a closing '}' (write '$$' for a literal '$')");
    const std::string_view reference = text.substr(at + 2, close - at - 2);
    if (reference.empty()) return fail("an empty '${}' (write '$$' for a literal '$')");
    std::string value, error;
    const Outcome outcome = resolve(reference, value, error);
    if (outcome != Outcome::kOk) return fail(std::move(error), outcome == Outcome::kCascade);
    if (result.text.size() + value.size() > kMaxExpandedBytes)
      return fail("the string expands to more than " + std::to_string(kMaxExpandedBytes) +
                  " bytes");
    result.text += value;
    at = close;
  }
  return result;
}

// Resolves NAME or NAME:-DEFAULT (the default when NAME is unset or empty, as in sh).
Outcome resolve_env(std::string_view reference, const EnvLookup& env, std::string& out,
                    std::string& error) {
  const size_t dash = reference.find(kEnvDefault);
  const std::string_view name = reference.substr(0, dash);
  if (name.empty()) {
    error = "an empty '${env:}' (name the environment variable)";
    return Outcome::kError;
  }
  std::optional<std::string> value = env ? env(name) : std::nullopt;
  if (dash != std::string_view::npos && (!value || value->empty()))
    value = std::string(reference.substr(dash + kEnvDefault.size()));
  if (!value) {
    error = "environment variable " + quote(name) + " is not set";
    return Outcome::kError;
  }
  out = std::move(*value);
  return Outcome::kOk;
}

bool is_env(std::string_view reference) {
  return reference.substr(0, kEnvPrefix.size()) == kEnvPrefix;
}

template <typename Map>
std::string unknown_var(std::string_view name, const Map& known) {
  std::vector<std::string_view> names;
  if (known.size() <= kMaxSuggestCandidates)
    for (const auto& entry : known)
      names.push_back(entry.first);
  return "unknown variable " + quote(name) + " (not in [vars])" + did_you_mean(name, names);
}

// Resolves [vars] with memoisation: each variable is expanded at most once, and
// an error is reported only at the variable whose own text causes it.
class VarResolver {
 public:
  VarResolver(const Vars& raw, const EnvLookup& env) : raw_(raw), env_(env) {}

  // Resolves every variable and hands back the outcome.
  ResolvedVars run() {
    for (const auto& [name, value] : raw_) {
      std::string out, error;
      resolve(name, out, error);
    }
    return std::move(result_);
  }

 private:
  // Resolves one variable (and those it refers to).
  Outcome resolve(const std::string& name, std::string& out, std::string& error) {
    if (const auto done = result_.vars.find(name); done != result_.vars.end()) {
      out = done->second;
      return Outcome::kOk;
    }
    if (result_.broken.count(name)) {
      error = "variable " + quote(name) + " has an error";
      return Outcome::kCascade;
    }
    const std::string& raw = raw_.find(name)->second;
    stack_.push_back(name);
    const Expansion expansion =
        expand_with(raw, [&](std::string_view reference, std::string& value, std::string& why) {
          if (is_env(reference))
            return resolve_env(reference.substr(kEnvPrefix.size()), env_, value, why);
          const std::string wanted(reference);
          if (!raw_.count(wanted)) {
            why = unknown_var(wanted, raw_);
            return Outcome::kError;
          }
          for (size_t i = 0; i < stack_.size(); ++i)
            if (stack_[i] == wanted) {
              why = "variables refer to each other in a cycle: " + cycle(i, wanted);
              return Outcome::kError;
            }
          if (stack_.size() >= kMaxVarDepth) {
            why = "variables refer to variables more than " + std::to_string(kMaxVarDepth) +
                  " levels deep";
            return Outcome::kError;
          }
          return resolve(wanted, value, why);
        });
    stack_.pop_back();
    if (!expansion.ok()) {
      result_.broken.insert(name);
      if (!expansion.cascade) result_.errors.push_back({name, expansion.error});
      error = "variable " + quote(name) + " has an error";
      return Outcome::kCascade;
    }
    total_ += expansion.text.size();
    if (total_ > kMaxTotalExpandedBytes) {
      result_.broken.insert(name);
      result_.errors.push_back({name, "the variables expand to more than " +
                                          std::to_string(kMaxTotalExpandedBytes) +
                                          " bytes in total"});
      error = "variable " + quote(name) + " has an error";
      return Outcome::kCascade;
    }
    out = expansion.text;
    result_.vars.emplace(name, expansion.text);
    return Outcome::kOk;
  }

  std::string cycle(size_t from, const std::string& back_to) const {
    std::string path;
    for (size_t i = from; i < stack_.size(); ++i)
      path += quote(stack_[i]) + " -> ";
    return path + quote(back_to);
  }

  const Vars& raw_;
  const EnvLookup& env_;
  std::vector<std::string> stack_;
  size_t total_ = 0;
  ResolvedVars result_;
};

}  // namespace

EnvLookup process_environment() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (!value) return std::nullopt;
    return std::string(value);
  };
}

Expander::Expander(Vars vars, EnvLookup env, std::set<std::string, std::less<>> broken)
    : vars_(std::move(vars)), env_(std::move(env)), broken_(std::move(broken)) {}

Expansion Expander::expand(std::string_view text) {
  Expansion result =
      expand_with(text, [this](std::string_view reference, std::string& out, std::string& error) {
        if (is_env(reference))
          return resolve_env(reference.substr(kEnvPrefix.size()), env_, out, error);
        if (broken_.count(reference)) {
          error = "variable " + quote(reference) + " has an error";
          return Outcome::kCascade;
        }
        const auto found = vars_.find(reference);
        if (found == vars_.end()) {
          error = unknown_var(reference, vars_);
          return Outcome::kError;
        }
        out = found->second;
        return Outcome::kOk;
      });
  produced_ += result.text.size();
  if (produced_ > kMaxTotalExpandedBytes) {
    result.text.clear();
    result.error = "the plan's strings expand to more than " +
                   std::to_string(kMaxTotalExpandedBytes) + " bytes in total";
  }
  return result;
}

Expansion Expander::expand_path(std::string_view text) {
  Expansion result = expand(text);
  if (!result.ok()) return result;
  if (result.text == "~" || result.text.rfind("~/", 0) == 0) {
    std::string home, error;
    if (resolve_env("HOME", env_, home, error) != Outcome::kOk || home.empty()) {
      result.error = "cannot expand '~': environment variable 'HOME' is not set";
      result.text.clear();
      return result;
    }
    result.text = home + result.text.substr(1);
  }
  return result;
}

ResolvedVars resolve_vars(const Vars& raw, const EnvLookup& env) {
  return VarResolver(raw, env).run();
}

}  // namespace cutpilot::plans
