// `cutpilot runs [PLAN]` and the journal half of `cutpilot status`: what a stopped or
// finished run did, read from its journal when no cockpit answers.
#include "cli/runs.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/run_plan.h"
#include "plans/diagnostic.h"
#include "plans/load.h"
#include "run/control.h"
#include "run/downtime.h"
#include "run/journal.h"
#include "run/prediction.h"

namespace cutpilot::cli {
namespace {

constexpr const char* kRunsUsage = "usage: cutpilot runs [PLAN] [--json]";

// RFC 3339 in UTC with milliseconds for a unix time, or null for 0 (never).
nlohmann::json rfc3339(double unix_time) {
  if (unix_time <= 0) return nullptr;
  const auto seconds = static_cast<std::time_t>(unix_time);
  const int millis =
      static_cast<int>(std::lround((unix_time - static_cast<double>(seconds)) * 1000));
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[40];
  const size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(text + n, sizeof text - n, ".%03dZ", std::min(millis, 999));
  return std::string(text);
}

// The child directories of dir (full paths), in name order.
std::vector<std::string> subdirs(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') out.push_back(dir + "/" + e->d_name);
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// One step of an offline status.
nlohmann::json step_json(const std::string& id, const std::string& phase,
                         const plans::JournalStep* step, bool run_stopped) {
  nlohmann::json results = nlohmann::json::array();
  if (step)
    for (const auto& done : step->done)
      results.push_back({{"host", done.value("host", "")},
                         {"state", done.value("state", "")},
                         {"exit", done.contains("exit") ? done["exit"] : nullptr},
                         {"error", done.value("error", "")},
                         {"result", done.contains("result") ? done["result"] : nullptr}});
  const std::string state = step ? step->state : "pending";
  std::string detail = step ? step->detail : "";
  if (run_stopped && state == "running" && detail.empty())
    detail = "the cockpit stopped while it ran (its jobs may still run; --resume re-attaches)";
  const bool approved = step && step->approved;
  return {{"step", id},
          {"phase", phase},
          {"state", state},
          {"detail", detail},
          {"attempt", step ? step->attempt : 0},
          {"started", rfc3339(step ? step->started_unix : 0)},
          {"ended", rfc3339(step ? step->ended_unix : 0)},
          {"approved", approved},
          {"approved_by", approved ? nlohmann::json(step->approved_by) : nullptr},
          {"approved_how", approved ? nlohmann::json(step->approved_how) : nullptr},
          {"results", results},
          {"damaged", step && step->damaged}};
}

// The downtime object of an offline status.
nlohmann::json downtime_json(const plans::JournalState& state, double now_unix) {
  const bool started = state.downtime_started_unix.has_value();
  const bool ended = started && state.downtime_ended_unix.has_value();
  double seconds = 0;
  if (ended)
    seconds =
        state.downtime_seconds.value_or(*state.downtime_ended_unix - *state.downtime_started_unix);
  else if (started)
    seconds = now_unix - *state.downtime_started_unix;  // nothing ended it: still down
  nlohmann::json downtime = {{"started", started}, {"ended", ended}, {"seconds", seconds}};
  if (state.predicted_s) downtime["predicted_s"] = *state.predicted_s;
  if (ended && state.predicted_s)
    if (const auto pct = plans::prediction_error_pct(*state.predicted_s, seconds))
      downtime["error_pct"] = *pct;
  if (ended && !state.downtime_ended_how.empty()) downtime["how"] = state.downtime_ended_how;
  return downtime;
}

// "1m 02s" for a status's downtime object, "-" when it never started.
std::string downtime_text(const nlohmann::json& downtime) {
  if (!downtime.value("started", false)) return "-";
  const std::string seconds = plans::format_seconds(downtime.value("seconds", 0.0));
  if (!downtime.value("ended", false)) return "running " + seconds;
  std::string text = seconds;
  if (downtime.contains("predicted_s") && downtime["predicted_s"].is_number())
    text += ", predicted " + plans::prediction_error_text(downtime["predicted_s"].get<double>(),
                                                          downtime.value("seconds", 0.0));
  return text + (downtime.value("how", "") == "rollback" ? " (ended by rollback)" : "");
}

// The time of day of an RFC 3339 string ("17:31:25"), or "-" for null.
std::string clock_of(const nlohmann::json& time) {
  if (!time.is_string()) return "-";
  const std::string text = time.get<std::string>();
  return text.size() >= 19 ? text.substr(11, 8) : text;
}

// One row of `cutpilot runs`: the run in dir, live when its cockpit answers.
std::optional<nlohmann::json> run_row(const std::string& dir, double now_unix) {
  std::string error;
  auto status = journal_status(dir, now_unix, error);
  if (!status) return std::nullopt;
  std::string ignored;
  if (access((dir + "/" + plans::kControlSocket).c_str(), F_OK) == 0) {
    if (const auto live =
            plans::control_request(dir + "/" + plans::kControlSocket, {{"cmd", "status"}}, ignored);
        live && live->value("ok", false)) {
      (*status)["live"] = true;
      (*status)["state"] = live->value("state", "running");
      if (live->contains("downtime")) (*status)["downtime"] = (*live)["downtime"];
    }
  }
  return status;
}

// The run directories (holding a journal) under one plan directory, in name order.
std::vector<std::string> plan_runs(const std::string& plan_dir) {
  std::vector<std::string> out;
  for (const auto& dir : subdirs(plan_dir))
    if (access((dir + "/" + plans::kJournalFile).c_str(), F_OK) == 0) out.push_back(dir);
  return out;
}

}  // namespace

std::optional<nlohmann::json> journal_status(const std::string& run_dir, double now_unix,
                                             std::string& error) {
  const auto journalled = plans::replay_journal(run_dir, error);
  if (!journalled) return std::nullopt;
  const plans::JournalState& state = *journalled;
  // The plan gives the step order, phases and name; a plan that no longer loads leaves the
  // journal's own view (its steps by start time).
  std::vector<std::pair<std::string, std::string>> order;  // step id, phase
  std::string plan_name = state.plan_path;
  if (!state.plan_path.empty() && access(state.plan_path.c_str(), R_OK) == 0) {
    const plans::LoadResult loaded = plans::load_plan(state.plan_path);
    if (loaded.ok()) {
      plan_name = loaded.plan.settings.name;
      for (const size_t i : plans::ordered_steps(loaded.plan.steps))
        order.emplace_back(loaded.plan.steps[i].id, loaded.plan.steps[i].phase);
    }
  }
  for (const auto& entry : state.steps) {
    const std::string& id = entry.first;
    if (!id.empty() && std::none_of(order.begin(), order.end(),
                                    [&](const auto& known) { return known.first == id; }))
      order.emplace_back(id, "");
  }
  const bool stopped = !state.ended;
  nlohmann::json steps = nlohmann::json::array();
  nlohmann::json awaiting = nlohmann::json::array();
  for (const auto& [id, phase] : order) {
    const auto it = state.steps.find(id);
    steps.push_back(step_json(id, phase, it == state.steps.end() ? nullptr : &it->second, stopped));
    if (steps.back()["state"] == "awaiting-approval") awaiting.push_back(id);
  }
  nlohmann::json damaged = nlohmann::json::array();
  for (const auto& damage : state.damaged)
    damaged.push_back(damage.line);
  return nlohmann::json{{"live", false},
                        {"run", state.run_id},
                        {"plan", plan_name},
                        {"plan_path", state.plan_path},
                        {"state_dir", run_dir},
                        {"state", state.ended ? *state.ended : "stopped"},
                        {"aborting", stopped && state.aborting},
                        {"started", rfc3339(state.started_unix)},
                        {"seconds", std::max(0.0, state.last_unix - state.started_unix)},
                        {"steps", steps},
                        {"awaiting_approval", awaiting},
                        {"downtime", downtime_json(state, now_unix)},
                        {"damaged_lines", damaged}};
}

void print_status(const nlohmann::json& status) {
  const bool live = status.value("live", true);
  std::printf("run %s of \"%s\": %s after %s%s\n", status.value("run", "").c_str(),
              plans::printable(status.value("plan", "")).c_str(), status.value("state", "").c_str(),
              plans::format_seconds(status.value("seconds", 0.0)).c_str(),
              live ? "" : " (no cockpit answers: read from its journal)");
  if (!live) std::printf("state in %s\n", plans::printable(status.value("state_dir", "")).c_str());
  const nlohmann::json downtime = status.value("downtime", nlohmann::json::object());
  if (downtime.value("started", false))
    std::printf("downtime %s %s%s\n",
                downtime.value("ended", false) ? "ended after" : "running for",
                plans::format_seconds(downtime.value("seconds", 0.0)).c_str(),
                downtime.value("how", "") == "rollback" ? " (ended by rollback)" : "");
  if (downtime.contains("predicted_s") && downtime["predicted_s"].is_number()) {
    const double predicted = downtime["predicted_s"].get<double>();
    if (downtime.value("ended", false))
      std::printf("downtime predicted %s when it started\n",
                  plans::prediction_error_text(predicted, downtime.value("seconds", 0.0)).c_str());
    else
      std::printf("downtime predicted %s%s\n", downtime.value("at_least", false) ? "at least " : "",
                  plans::format_seconds(predicted).c_str());
  }
  for (const auto& part : downtime.value("steps", nlohmann::json::array())) {
    const auto& predicted = part.value("predicted_s", nlohmann::json());
    std::string line = "  " + part.value("step", "") + ": " +
                       (predicted.is_number() ? plans::format_seconds(predicted.get<double>()) +
                                                    " (" + part.value("source", "") + ")"
                                              : std::string("unknown"));
    if (part.contains("approval_source")) {
      const auto& approval = part.value("approval_s", nlohmann::json());
      line +=
          ", approval " + (approval.is_number() ? plans::format_seconds(approval.get<double>()) +
                                                      " (" + part.value("approval_source", "") + ")"
                                                : std::string("unknown"));
    }
    std::printf("%s\n", plans::printable(line).c_str());
  }
  Table table({"STEP", "PHASE", "STATE", "TRY", "STARTED", "ENDED", "APPROVED", "DETAIL"});
  for (const auto& step : status.value("steps", nlohmann::json::array())) {
    std::string approved = "-";
    if (step.contains("approved_by") && step["approved_by"].is_string())
      approved =
          step["approved_by"].get<std::string>() + " (" + step.value("approved_how", "") + ")";
    table.add({step.value("step", ""), step.value("phase", ""), step.value("state", ""),
               std::to_string(step.value("attempt", 0)),
               clock_of(step.value("started", nlohmann::json())),
               clock_of(step.value("ended", nlohmann::json())), plans::printable(approved),
               plans::printable(step.value("detail", ""))});
  }
  table.print(stdout);
  for (const auto& step : status.value("steps", nlohmann::json::array()))
    for (const auto& result : step.value("results", nlohmann::json::array())) {
      std::string line = step.value("step", "") + " on " + result.value("host", "") + ": " +
                         result.value("state", "");
      if (result.contains("exit") && result["exit"].is_number() && result["exit"] != 0)
        line += " (exit code " + result["exit"].dump() + ")";
      if (!result.value("error", "").empty()) line += ": " + result.value("error", "");
      if (result.contains("result") && !result["result"].is_null())
        line += " " + result["result"].dump();
      std::printf("  %s\n", plans::printable(line).c_str());
    }
  const auto damaged = status.value("damaged_lines", nlohmann::json::array());
  if (!damaged.empty()) {
    std::string lines;
    for (const auto& line : damaged)
      lines += (lines.empty() ? "" : ", ") + line.dump();
    std::printf("the journal is damaged: line%s %s could not be read\n",
                damaged.size() > 1 ? "s" : "", lines.c_str());
  }
}

std::vector<std::string> all_runs(const std::string& state_root) {
  std::vector<std::pair<std::string, std::string>> named;  // run directory name, path
  for (const auto& plan_dir : subdirs(state_root))
    for (const auto& run : plan_runs(plan_dir))
      named.emplace_back(run.substr(run.rfind('/') + 1), run);
  // Run directories are named by their start time, so the name orders them across plans.
  std::sort(named.begin(), named.end());
  std::vector<std::string> out;
  for (auto& [name, path] : named)
    out.push_back(std::move(path));
  return out;
}

std::vector<std::string> runs_of_plan(const std::string& state_root, const std::string& plan_path) {
  const std::string slug = plan_slug(plan_path);
  struct stat plan_file {};
  const bool plan_exists = stat(plan_path.c_str(), &plan_file) == 0;
  std::vector<std::string> out;
  for (const auto& run : all_runs(state_root)) {
    const std::string plan_dir = run.substr(0, run.rfind('/'));
    const std::string name = plan_dir.substr(plan_dir.rfind('/') + 1);
    if (name != slug && name.rfind(slug + "-", 0) != 0) continue;
    std::string ignored;
    const auto journal = plans::replay_journal(run, ignored);
    if (!journal) continue;
    struct stat named {};
    // Two plan files of one name in two folders: the journal says which file it ran.
    if (plan_exists && !journal->plan_path.empty() && journal->plan_path[0] == '/' &&
        (stat(journal->plan_path.c_str(), &named) != 0 || named.st_dev != plan_file.st_dev ||
         named.st_ino != plan_file.st_ino))
      continue;
    out.push_back(run);
  }
  return out;
}

int runs(const std::vector<std::string>& args) {
  std::string plan_path;
  bool json = false;
  for (const auto& arg : args) {
    if (arg == "--help" || arg == "-h") {
      std::printf(
          "%s\nLists a plan's runs (all plans' runs without PLAN) under %s, with each "
          "run's state (running, stopped, succeeded, failed, aborted), start and downtime.\n",
          kRunsUsage, default_state_root().c_str());
      return kOk;
    }
    if (arg == "--json") {
      json = true;
    } else if (!arg.empty() && arg[0] != '-' && plan_path.empty()) {
      plan_path = arg;
    } else {
      std::fprintf(stderr, "cutpilot runs: unexpected '%s'\n%s\n", arg.c_str(), kRunsUsage);
      return kUsage;
    }
  }
  const std::vector<std::string> dirs = plan_path.empty()
                                            ? all_runs(default_state_root())
                                            : runs_of_plan(default_state_root(), plan_path);
  const double now = plans::unix_now();
  Table table({"RUN", "PLAN", "STATE", "STARTED", "DOWNTIME", "STATE DIR"});
  size_t shown = 0;
  for (const auto& dir : dirs) {
    const auto row = run_row(dir, now);
    if (!row) continue;
    ++shown;
    if (json) {
      std::printf("%s\n", nlohmann::json{{"run", (*row)["run"]},
                                         {"plan", (*row)["plan"]},
                                         {"plan_path", (*row)["plan_path"]},
                                         {"state", (*row)["state"]},
                                         {"live", (*row)["live"]},
                                         {"started", (*row)["started"]},
                                         {"downtime", (*row)["downtime"]},
                                         {"state_dir", dir}}
                              .dump()
                              .c_str());
      continue;
    }
    const std::string state = row->value("state", "");
    table.add(
        {row->value("run", ""), plans::printable(row->value("plan", "")),
         row->value("live", false) ? state + " (live)" : state,
         row->value("started", nlohmann::json()).is_string() ? row->value("started", "") : "-",
         downtime_text((*row)["downtime"]), plans::printable(dir)});
  }
  if (!json) {
    if (shown == 0) {
      std::printf("no runs%s under %s\n",
                  plan_path.empty() ? "" : (" of " + plans::printable(plan_path)).c_str(),
                  default_state_root().c_str());
      return kOk;
    }
    table.print(stdout);
  }
  return kOk;
}

}  // namespace cutpilot::cli
