// `cutpilot approve STEP`, `status`, `abort`, `skip STEP`, `retry STEP`: talk to a running
// cockpit through its control socket (from another tmux pane or a script).
#include <cstdio>
#include <cstdlib>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/run_plan.h"
#include "cli/run_state.h"
#include "cli/runs.h"
#include "run/control.h"
#include "run/downtime.h"
#include "run/journal.h"

namespace cutpilot::cli {
namespace {

// The run directories under the default state root whose cockpit holds the run's lock: alive,
// even when too busy to answer a ping at once.
std::vector<std::string> live_runs() {
  std::vector<std::string> live;
  for (const auto& run_dir : all_runs(default_state_root()))
    if (run_is_live(run_dir)) live.push_back(run_dir);
  return live;
}

// "several cockpits are running; ..." listing them.
std::string several(const std::vector<std::string>& live) {
  std::string error = "several cockpits are running; give one's --state-dir:";
  for (const auto& dir : live)
    error += "\n  " + dir;
  return error;
}

// The one run under the default state root that stopped unfinished with no cockpit holding
// it; "" with error set when there is none, or several.
std::string stopped_run(std::string& error) {
  std::vector<std::string> stopped;
  for (const auto& run_dir : all_runs(default_state_root())) {
    std::string ignored;
    const auto journal = plans::replay_journal(run_dir, ignored);
    if (journal && (!journal->ended || *journal->ended == "failed") && !run_is_live(run_dir))
      stopped.push_back(run_dir);
  }
  if (stopped.size() == 1) return stopped[0];
  if (stopped.size() > 1) {
    error = "no cockpit is running, and several runs stopped unfinished; give one's --state-dir:";
    for (const auto& dir : stopped)
      error += "\n  " + dir;
  }
  return "";
}

// The control socket of the cockpit to talk to: --state-dir, $CUTPILOT_STATE_DIR, or the
// one live cockpit under the default state root.
std::string find_socket(const std::string& state_dir, std::string& error) {
  std::string dir = state_dir;
  if (dir.empty())
    if (const char* env = std::getenv("CUTPILOT_STATE_DIR")) dir = env;
  if (!dir.empty()) return dir + "/" + plans::kControlSocket;
  const auto live = live_runs();
  if (live.size() == 1) return live[0] + "/" + plans::kControlSocket;
  if (live.empty())
    error =
        "no running cockpit found under " + default_state_root() + " (give the run's --state-dir)";
  else
    error = several(live);
  return "";
}

int control_verb(const std::string& verb, const std::vector<std::string>& args, bool needs_step) {
  std::string step, state_dir, confirm;
  bool ahead = false;
  for (size_t i = 0; i < args.size(); ++i) {
    if ((args[i] == "--state-dir" || args[i] == "--confirm") && i + 1 < args.size()) {
      (args[i] == "--state-dir" ? state_dir : confirm) = args[i + 1];
      ++i;
    } else if (args[i] == "--ahead" && verb == "approve") {
      ahead = true;
    } else if (needs_step && step.empty() && !args[i].empty() && args[i][0] != '-') {
      step = args[i];
    } else {
      std::fprintf(stderr, "cutpilot %s: unexpected '%s'\n", verb.c_str(), args[i].c_str());
      return kUsage;
    }
  }
  if (needs_step && step.empty()) {
    std::fprintf(stderr, "usage: cutpilot %s STEP [--state-dir DIR]%s\n", verb.c_str(),
                 verb == "approve" ? " [--confirm TEXT] [--ahead]" : "");
    return kUsage;
  }
  std::string error;
  const std::string socket = find_socket(state_dir, error);
  if (socket.empty() && verb == "abort") {
    // No live cockpit: the one stopped, unfinished run is taken up from its journal.
    if (const std::string stopped = stopped_run(error); !stopped.empty())
      return abort_stopped_run(stopped);
  }
  if (socket.empty()) {
    std::fprintf(stderr, "cutpilot %s: %s\n", verb.c_str(), error.c_str());
    return kFailed;
  }
  nlohmann::json request = {{"cmd", verb}};
  if (needs_step) request["step"] = step;
  if (!confirm.empty()) request["confirm"] = confirm;
  if (ahead) request["ahead"] = true;
  const std::string run_dir = socket.substr(0, socket.rfind('/'));
  if (verb == "abort" && !run_is_live(run_dir)) return abort_stopped_run(run_dir);
  const auto answer = plans::control_request(socket, request, error);
  if (!answer) {
    std::fprintf(stderr, "cutpilot %s: %s\n", verb.c_str(), error.c_str());
    return kFailed;
  }
  if (!answer->value("ok", false)) {
    std::fprintf(stderr, "cutpilot %s: %s\n", verb.c_str(),
                 answer->value("error", "refused").c_str());
    return kFailed;
  }
  std::printf("%s%s%s: ok\n", verb.c_str(), needs_step ? " " : "", step.c_str());
  return kOk;
}

constexpr const char* kStatusUsage = "usage: cutpilot status [--json] [--state-dir DIR] [PLAN]";

}  // namespace

std::string status_run_dir(const std::string& state_dir, const std::string& plan_path,
                           std::string& error) {
  if (!state_dir.empty()) return state_dir;
  if (const char* env = std::getenv("CUTPILOT_STATE_DIR"); env && *env) return env;
  if (!plan_path.empty()) {
    const auto runs = runs_of_plan(default_state_root(), plan_path);
    if (runs.empty()) error = "no run of " + plan_path + " under " + default_state_root();
    return runs.empty() ? "" : runs.back();
  }
  if (const auto live = live_runs(); !live.empty()) {
    if (live.size() > 1) error = several(live);
    return live.size() == 1 ? live[0] : "";
  }
  const auto runs = all_runs(default_state_root());
  if (runs.empty()) error = "no run found under " + default_state_root();
  return runs.empty() ? "" : runs.back();
}

int approve(const std::vector<std::string>& args) {
  return control_verb("approve", args, true);
}
int skip(const std::vector<std::string>& args) {
  return control_verb("skip", args, true);
}
int retry(const std::vector<std::string>& args) {
  return control_verb("retry", args, true);
}
int revoke(const std::vector<std::string>& args) {
  return control_verb("revoke", args, true);
}
int abort_run(const std::vector<std::string>& args) {
  return control_verb("abort", args, false);
}
int status(const std::vector<std::string>& args) {
  std::string state_dir, plan_path;
  bool json = false;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      std::printf(
          "%s\nA running cockpit answers through its control socket; a stopped or finished "
          "run is read from its journal (\"live\": false).\n",
          kStatusUsage);
      return kOk;
    }
    if (args[i] == "--state-dir" && i + 1 < args.size()) {
      state_dir = args[++i];
    } else if (args[i] == "--json") {
      json = true;
    } else if (plan_path.empty() && !args[i].empty() && args[i][0] != '-') {
      plan_path = args[i];
    } else {
      std::fprintf(stderr, "cutpilot status: unexpected '%s'\n%s\n", args[i].c_str(), kStatusUsage);
      return kUsage;
    }
  }
  std::string error;
  const std::string run_dir = status_run_dir(state_dir, plan_path, error);
  if (run_dir.empty()) {
    std::fprintf(stderr, "cutpilot status: %s\n", error.c_str());
    return kFailed;
  }
  std::optional<nlohmann::json> answer =
      plans::control_request(run_dir + "/" + plans::kControlSocket, {{"cmd", "status"}}, error);
  if (answer && !answer->value("ok", false)) {
    std::fprintf(stderr, "cutpilot status: %s\n", answer->value("error", "refused").c_str());
    return kFailed;
  }
  if (answer) {
    answer->erase("ok");
  } else {
    // No cockpit answers: the run stopped or ended; its journal tells what it did.
    answer = journal_status(run_dir, plans::unix_now(), error);
    if (!answer) {
      std::fprintf(stderr, "cutpilot status: no cockpit answers and %s\n", error.c_str());
      return kFailed;
    }
  }
  if (json)
    std::printf("%s\n", answer->dump().c_str());
  else
    print_status(*answer);
  return kOk;
}

}  // namespace cutpilot::cli
