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

// `cutpilot plan PLAN`: print the resolved steps and the command each runs on which host.
int plan(const std::vector<std::string>& args);

// `cutpilot trust HOST`: show a host's key and add it to known_hosts once confirmed.
int trust(const std::vector<std::string>& args);

// `cutpilot run PLAN ...`: run (or resume) a plan.
int run_command(const std::vector<std::string>& args);

// `cutpilot approve STEP`, `skip STEP`, `retry STEP`, `abort`: a running cockpit's control
// socket; `status [PLAN]` asks it too, or reads a stopped or finished run from its journal.
int approve(const std::vector<std::string>& args);
int skip(const std::vector<std::string>& args);
int retry(const std::vector<std::string>& args);
int abort_run(const std::vector<std::string>& args);
// `cutpilot revoke STEP`: takes back an approval given ahead (before the step was reached).
int revoke(const std::vector<std::string>& args);
int status(const std::vector<std::string>& args);

// `cutpilot runs [PLAN] [--json]`: a plan's runs (or every plan's) with state, start, downtime.
int runs(const std::vector<std::string>& args);

// `cutpilot report [PLAN] [--csv|--json]`: the old -> new map of a run's image copies.
int report(const std::vector<std::string>& args);

// `cutpilot demo`: the local lab with a source and a target host.
int demo(const std::vector<std::string>& args);

}  // namespace cutpilot::cli
