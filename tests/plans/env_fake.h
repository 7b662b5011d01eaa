// A fixed environment for plan tests, so ${env:NAME} and ~ never depend on the machine.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "plans/expand.h"

namespace cutpilot::plans::test {

// An EnvLookup that sees only the given variables.
inline EnvLookup fake_env(std::map<std::string, std::string, std::less<>> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    const auto found = vars.find(name);
    if (found == vars.end()) return std::nullopt;
    return found->second;
  };
}

// The environment most plan tests use: HOME and a lab directory.
inline EnvLookup default_env() {
  return fake_env({{"HOME", "/home/op"}, {"CUTPILOT_LAB", "/tmp/lab"}});
}

}  // namespace cutpilot::plans::test
