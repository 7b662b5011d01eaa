// The `cutpilot` command line: verbs and their dispatch.
#pragma once

#include <string>
#include <vector>

namespace cutpilot::cli {

// Exit codes every verb uses (DESIGN.md).
enum Exit : int { kOk = 0, kFailed = 1, kUsage = 2, kAborted = 3 };

// Runs `cutpilot ARGS...` and returns its exit code.
int run(const std::vector<std::string>& args);

// `cutpilot demo`: the local lab with a source and a target host.
int demo(const std::vector<std::string>& args);

}  // namespace cutpilot::cli
