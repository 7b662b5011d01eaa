// `cutpilot approve STEP`, `status`, `abort`, `skip STEP`, `retry STEP`: talk to a running
// cockpit through its control socket (from another tmux pane or a script).
#include <dirent.h>

#include <cstdio>
#include <cstdlib>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/run_plan.h"
#include "plans/control.h"
#include "plans/downtime.h"
#include "plans/journal.h"

namespace cutpilot::cli {
namespace {

std::vector<std::string> subdirs(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') out.push_back(dir + "/" + e->d_name);
    closedir(d);
  }
  return out;
}

// The control socket of the cockpit to talk to: --state-dir, $CUTPILOT_STATE_DIR, or the
// one live cockpit under the default state root.
std::string find_socket(const std::string& state_dir, std::string& error) {
  std::string dir = state_dir;
  if (dir.empty())
    if (const char* env = std::getenv("CUTPILOT_STATE_DIR")) dir = env;
  if (!dir.empty()) return dir + "/" + plans::kControlSocket;
  std::vector<std::string> live;
  for (const auto& plan_dir : subdirs(default_state_root()))
    for (const auto& run_dir : subdirs(plan_dir)) {
      const std::string socket = run_dir + "/" + plans::kControlSocket;
      std::string ignored;
      if (plans::control_request(socket, {{"cmd", "ping"}}, ignored)) live.push_back(socket);
    }
  if (live.size() == 1) return live[0];
  if (live.empty()) {
    error =
        "no running cockpit found under " + default_state_root() + " (give the run's --state-dir)";
  } else {
    error = "several cockpits are running; give one's --state-dir:";
    for (const auto& s : live)
      error += "\n  " + s.substr(0, s.rfind('/'));
  }
  return "";
}

void print_status(const nlohmann::json& status) {
  std::printf("run %s of \"%s\": %s after %s\n", status.value("run", "").c_str(),
              status.value("plan", "").c_str(), status.value("state", "").c_str(),
              plans::format_seconds(status.value("seconds", 0.0)).c_str());
  const auto& downtime = status["downtime"];
  if (downtime.value("started", false))
    std::printf("downtime %s %s\n", downtime.value("ended", false) ? "ended after" : "running for",
                plans::format_seconds(downtime.value("seconds", 0.0)).c_str());
  if (downtime.contains("predicted_s"))
    std::printf("downtime predicted %s\n",
                plans::format_seconds(downtime["predicted_s"].get<double>()).c_str());
  Table table({"STEP", "PHASE", "STATE", "DETAIL"});
  for (const auto& step : status["steps"])
    table.add({step.value("step", ""), step.value("phase", ""), step.value("state", ""),
               step.value("detail", "")});
  table.print(stdout);
}

int control_verb(const std::string& verb, const std::vector<std::string>& args, bool needs_step) {
  std::string step, state_dir, confirm;
  bool json = false;
  for (size_t i = 0; i < args.size(); ++i) {
    if ((args[i] == "--state-dir" || args[i] == "--confirm") && i + 1 < args.size()) {
      (args[i] == "--state-dir" ? state_dir : confirm) = args[i + 1];
      ++i;
    } else if (args[i] == "--json" && verb == "status") {
      json = true;
    } else if (needs_step && step.empty() && !args[i].empty() && args[i][0] != '-') {
      step = args[i];
    } else {
      std::fprintf(stderr, "cutpilot %s: unexpected '%s'\n", verb.c_str(), args[i].c_str());
      return kUsage;
    }
  }
  if (needs_step && step.empty()) {
    std::fprintf(stderr, "usage: cutpilot %s STEP [--state-dir DIR]%s\n", verb.c_str(),
                 verb == "approve" ? " [--confirm TEXT]" : "");
    return kUsage;
  }
  std::string error;
  const std::string socket = find_socket(state_dir, error);
  if (socket.empty()) {
    std::fprintf(stderr, "cutpilot %s: %s\n", verb.c_str(), error.c_str());
    return kFailed;
  }
  nlohmann::json request = {{"cmd", verb}};
  if (needs_step) request["step"] = step;
  if (!confirm.empty()) request["confirm"] = confirm;
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
  if (verb == "status") {
    if (json)
      std::printf("%s\n", answer->dump().c_str());
    else
      print_status(*answer);
  } else {
    std::printf("%s%s%s: ok\n", verb.c_str(), needs_step ? " " : "", step.c_str());
  }
  return kOk;
}

}  // namespace

int approve(const std::vector<std::string>& args) {
  return control_verb("approve", args, true);
}
int skip(const std::vector<std::string>& args) {
  return control_verb("skip", args, true);
}
int retry(const std::vector<std::string>& args) {
  return control_verb("retry", args, true);
}
int abort_run(const std::vector<std::string>& args) {
  return control_verb("abort", args, false);
}
int status(const std::vector<std::string>& args) {
  return control_verb("status", args, false);
}

}  // namespace cutpilot::cli
