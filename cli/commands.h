// The `cutpilot` command line: verbs and their dispatch.
#pragma once

#include <string>
#include <vector>

namespace cutpilot::cli {

// Exit codes every verb uses (DESIGN.md).
enum Exit : int { kOk = 0, kFailed = 1, kUsage = 2, kAborted = 3 };

// Runs `cutpilot ARGS...` and returns its exit code.
int run(const std::vector<std::string>& args);

// `cutpilot hosts PLAN [--json]`: connect, deploy agents, print host facts.
int hosts(const std::vector<std::string>& args);

// `cutpilot check PLAN`: validate a plan.
int check(const std::vector<std::string>& args);

// `cutpilot trust HOST`: show a host's key and add it to known_hosts once confirmed.
int trust(const std::vector<std::string>& args);

// `cutpilot demo`: the local lab with a source and a target host.
int demo(const std::vector<std::string>& args);

}  // namespace cutpilot::cli
