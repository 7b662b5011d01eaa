// `cutpilot run PLAN`: connect the plan's hosts and run its steps, with line or JSON
// output (the TUI when stdout is a terminal), a journal to resume from, and a control
// socket for `cutpilot approve/status/abort` from another pane.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <thread>

#include "cli/commands.h"
#include "cli/fleet_port.h"
#include "cli/run_output.h"
#include "cli/run_plan.h"
#include "cli/run_state.h"
#include "cli/targets.h"
#include "plans/load.h"
#include "plans/preflight.h"
#include "run/control.h"
#include "transport/fleet.h"
#include "tui/cockpit.h"

namespace cutpilot::cli {
namespace {

constexpr const char* kRunUsage =
    "usage: cutpilot run PLAN [--headless] [--json] [--approve STEP[=CONFIRM-TEXT]]... "
    "[--approve-all] [--resume] [--new-run[=PLAN-NAME]] [--on-failure wait|rollback|exit] "
    "[--state-dir DIR]";

std::string new_run_id() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y%m%dT%H%M%SZ", &utc);
  return std::string(text) + "-" + std::to_string(getpid());
}

bool make_dirs(const std::string& path) {
  for (size_t at = 1; at <= path.size(); ++at) {
    if (at != path.size() && path[at] != '/') continue;
    const std::string part = path.substr(0, at);
    if (mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) return false;
  }
  return true;
}

// What the run answers on its control socket.
nlohmann::json answer(plans::Executor& executor, const nlohmann::json& request) {
  const std::string cmd = request.value("cmd", "");
  const auto now = plans::RunClock::now();
  if (cmd == "ping") return {{"ok", true}};
  if (cmd == "status") {
    auto status = executor.status(now);
    status["ok"] = true;
    return status;
  }
  plans::Command command;
  if (cmd == "approve")
    command.kind = plans::CommandKind::kApprove;
  else if (cmd == "revoke")
    command.kind = plans::CommandKind::kRevoke;
  else if (cmd == "skip")
    command.kind = plans::CommandKind::kSkip;
  else if (cmd == "retry")
    command.kind = plans::CommandKind::kRetry;
  else if (cmd == "abort")
    command.kind = plans::CommandKind::kAbort;
  else
    return {{"ok", false}, {"error", "unknown command \"" + cmd + "\""}};
  command.step = request.value("step", "");
  command.confirm = request.value("confirm", "");
  command.by = request.value("by", "");
  command.ahead = request.value("ahead", false);
  const std::string error = executor.command(command, now);
  if (!error.empty()) return {{"ok", false}, {"error", error}};
  return {{"ok", true}};
}

}  // namespace

std::string default_state_root() {
  if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg && *xdg)
    return std::string(xdg) + "/cutpilot";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.local/state/cutpilot";
}

std::string plan_slug(const std::string& plan_path) {
  std::string stem = plan_path.substr(plan_path.rfind('/') + 1);
  if (const size_t dot = stem.rfind('.'); dot != std::string::npos && dot > 0) stem.resize(dot);
  for (char& c : stem)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '-';
  return stem.empty() ? "plan" : stem;
}

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGHUP})
    sigaddset(&set, sig);
  return set;
}

int parse_run_options(const std::vector<std::string>& args, RunOptions& options) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--headless") {
      options.headless = true;
    } else if (arg == "--json") {
      options.json = true;
    } else if (arg == "--approve-all") {
      options.approve_all = true;
    } else if (arg == "--resume") {
      options.resume = true;
    } else if (arg == "--new-run" || arg.rfind("--new-run=", 0) == 0) {
      options.new_run = true;
      if (arg.size() > 9) options.new_run_name = arg.substr(10);
    } else if (arg == "--on-failure" && i + 1 < args.size()) {
      const std::string& how = args[++i];
      if (how == "wait") {
        options.on_failure = plans::OnFailure::kWait;
      } else if (how == "rollback") {
        options.on_failure = plans::OnFailure::kRollback;
      } else if (how == "exit") {
        options.on_failure = plans::OnFailure::kExit;
      } else {
        std::fprintf(stderr, "cutpilot run: --on-failure takes wait, rollback or exit, not '%s'\n",
                     how.c_str());
        return kUsage;
      }
    } else if (arg == "--approve" && i + 1 < args.size()) {
      // STEP, or STEP=TEXT for a step with a confirmation text (step ids hold no '=').
      const std::string& value = args[++i];
      const size_t eq = value.find('=');
      options.approve.push_back(value.substr(0, eq));
      if (eq != std::string::npos)
        options.approve_confirm[value.substr(0, eq)] = value.substr(eq + 1);
    } else if (arg == "--state-dir" && i + 1 < args.size()) {
      options.state_dir = args[++i];
    } else if (!arg.empty() && arg[0] != '-' && options.plan_path.empty()) {
      options.plan_path = arg;
    } else {
      std::fprintf(stderr, "cutpilot run: unexpected '%s'\n%s\n", arg.c_str(), kRunUsage);
      return kUsage;
    }
  }
  if (options.plan_path.empty()) {
    std::fprintf(stderr, "%s\n", kRunUsage);
    return kUsage;
  }
  return kOk;
}

namespace {

// Everything one run holds, from the loaded plan to the executor.
struct RunSession {
  RunLocks locks;  // released last
  plans::LoadResult loaded;
  std::string state_dir;
  std::string run_id;
  bool resuming = false;
  double started_unix = 0;  // the run's start (a resumed run's from its journal)
  plans::Journal journal;
  plans::ControlServer control;
  std::unique_ptr<transport::Fleet> fleet;
  std::unique_ptr<FleetPort> port;
  std::unique_ptr<plans::Executor> executor;
};

// Loads the plan, finds or makes the state directory, opens the journal and the control
// socket and begins (or resumes) the executor. Prints what is wrong; kOk when ready.
int prepare(const RunOptions& options, const plans::EventSink& sink, RunSession& run) {
  run.loaded = plans::load_plan(options.plan_path);
  for (const auto& d : run.loaded.diagnostics)
    std::fprintf(stderr, "%s\n", plans::format_diagnostic(d).c_str());
  if (!run.loaded.ok()) return kFailed;
  const plans::Plan& plan = run.loaded.plan;
  const std::string plan_dir =
      options.plan_dir.empty() ? plan_state_dir(plan.path) : options.plan_dir;
  std::string error;
  {
    plans::ExecutorOptions approvals;
    approvals.approve = {options.approve.begin(), options.approve.end()};
    approvals.approve_confirm = options.approve_confirm;
    if (const std::string refused = plans::check_approvals(plan, approvals); !refused.empty()) {
      std::fprintf(stderr, "cutpilot run: %s\n", refused.c_str());
      return kFailed;
    }
  }
  if (!make_dirs(plan_dir)) {
    std::fprintf(stderr, "cutpilot run: cannot create the plan's state directory %s: %s\n",
                 plan_dir.c_str(), std::strerror(errno));
    return kFailed;
  }
  // One cockpit per plan, whatever its state directory: a second one meets this lock.
  if (!run.locks.lock_plan(plan_dir, error)) {
    std::fprintf(stderr, "cutpilot run: %s\n", error.c_str());
    return kFailed;
  }
  std::string& state_dir = run.state_dir = options.state_dir;
  std::optional<plans::JournalState> journalled;
  if (options.resume) {
    if (state_dir.empty()) state_dir = plans::latest_run_dir(plan_dir);
    if (state_dir.empty()) {
      std::fprintf(stderr, "cutpilot run: --resume: no earlier run of %s under %s\n",
                   plan.path.c_str(), plan_dir.c_str());
      return kFailed;
    }
    journalled = plans::replay_journal(state_dir, error);
    if (!journalled) {
      std::fprintf(stderr, "cutpilot run: --resume: %s\n", error.c_str());
      return kFailed;
    }
    // Damage is said, line by line; the steps it may hide are asked of the agents, not guessed.
    for (const auto& damage : journalled->damaged)
      std::fprintf(stderr,
                   "cutpilot run: warning: %s/%s:%zu: unreadable record%s; the steps it may "
                   "speak of are treated as unknown and asked of the agents\n",
                   state_dir.c_str(), plans::kJournalFile, damage.line,
                   damage.step.empty() ? "" : (" (step " + damage.step + ")").c_str());
  } else {
    // Never a new migration by accident over an earlier run that is live, unfinished, or
    // past its point of no return.
    const std::string refused =
        new_run_refusal(plan, earlier_runs(plan_dir, plan), options.new_run, options.new_run_name);
    if (!refused.empty()) {
      std::fprintf(stderr, "cutpilot run: refusing a new run: %s\n", refused.c_str());
      return kFailed;
    }
    if (state_dir.empty()) state_dir = plan_dir + "/" + new_run_id();
    if (access((state_dir + "/" + plans::kJournalFile).c_str(), F_OK) == 0) {
      std::fprintf(stderr,
                   "cutpilot run: %s already holds a run; continue it with --resume if it did "
                   "not end, or start this one in another --state-dir (the directory keeps that "
                   "run's journal and audit log; without --state-dir each run gets its own)\n",
                   state_dir.c_str());
      return kFailed;
    }
  }
  // A secret a step still needs is missing: say so before anything runs or is written.
  const auto secrets = plans::missing_secrets(
      plan, journalled ? journalled->finished_steps() : std::set<std::string>{},
      plans::process_environment(), plans::environment_names());
  for (const auto& d : secrets)
    std::fprintf(stderr, "%s\n", plans::format_diagnostic(d).c_str());
  if (plans::has_errors(secrets)) return kFailed;
  if (!make_dirs(state_dir)) {
    std::fprintf(stderr, "cutpilot run: cannot create the state directory %s: %s\n",
                 state_dir.c_str(), std::strerror(errno));
    return kFailed;
  }
  // Unique across runs (agent job ids start with it), whatever the state directory is called.
  run.run_id = journalled                  ? journalled->run_id
               : options.state_dir.empty() ? state_dir.substr(state_dir.rfind('/') + 1)
                                           : new_run_id();
  // Held for the cockpit's whole life: a frozen cockpit's run is never taken over.
  if (!run.locks.lock_run(state_dir, run.run_id, error)) {
    std::fprintf(stderr, "cutpilot run: %s\n", error.c_str());
    return kFailed;
  }
  if (!journalled && !options.state_dir.empty())
    if (const std::string warning = link_run(plan_dir, run.run_id, state_dir); !warning.empty())
      std::fprintf(stderr, "cutpilot run: warning: %s\n", warning.c_str());
  if (!run.journal.open(state_dir, error) ||
      !run.control.open(state_dir + "/" + plans::kControlSocket, error)) {
    std::fprintf(stderr, "cutpilot run: %s\n", error.c_str());
    return kFailed;
  }
  auto agent = load_agent_binary(error);
  if (!agent) {
    std::fprintf(stderr, "cutpilot run: %s\n", error.c_str());
    return kFailed;
  }
  plans::ExecutorOptions exec;
  exec.run_id = run.run_id;
  exec.approve = {options.approve.begin(), options.approve.end()};
  exec.approve_confirm = options.approve_confirm;
  exec.approve_all = options.approve_all;
  exec.operator_name = plans::operator_identity();
  exec.on_failure = options.on_failure;
  exec.control_hint = " --state-dir " + state_dir;
  exec.past = past_of(plan_dir, plan, run.run_id);  // the prediction learns from earlier runs
  if (options.approve_all)
    std::fprintf(stderr,
                 "cutpilot run: --approve-all: every gate is approved and every confirmation "
                 "text counts as typed, without stopping (the audit log names each step)\n");
  run.resuming = journalled.has_value();
  run.started_unix =
      journalled && journalled->started_unix > 0 ? journalled->started_unix : plans::unix_now();
  run.fleet = std::make_unique<transport::Fleet>(ssh_targets(plan), std::move(*agent));
  run.port = std::make_unique<FleetPort>(plan, *run.fleet);
  run.executor = std::make_unique<plans::Executor>(plan, exec, *run.port, run.journal, sink,
                                                   plans::process_environment());
  const auto now = plans::RunClock::now();
  if (!(journalled ? run.executor->resume(*journalled, now, error)
                   : run.executor->begin(now, error))) {
    // A run kept in a --state-dir of the operator's choosing stays there: when the executor
    // says to start a new run, that needs another directory (without one each run gets its own).
    const bool new_run = journalled && error.ends_with("start a new run");
    std::fprintf(stderr, "cutpilot run: %s%s\n", error.c_str(),
                 new_run && !options.state_dir.empty()
                     ? " (in another --state-dir: this one keeps the earlier run's journal and "
                       "audit log)"
                     : "");
    return kFailed;
  }
  if (options.abort_at_start) {
    const plans::Command abort{.kind = plans::CommandKind::kAbort, .by = exec.operator_name};
    if (const std::string refused = run.executor->command(abort, now); !refused.empty()) {
      std::fprintf(stderr, "cutpilot abort: %s\n", refused.c_str());
      return kFailed;
    }
  }
  return kOk;
}

// The run's poll loop: the fleet, the control socket, a view's commands, the executor's
// timers. Returns when the run ended, or the operator left (a signal, or the view closed).
int loop(const RunOptions& options, const plans::EventSink& sink, RunSession& run) {
  plans::Executor& executor = *run.executor;
  transport::Fleet& fleet = *run.fleet;
  // Blocked before the fleet's link threads exist, so they inherit the mask: a SIGTERM that
  // went to a thread still connecting would end the cockpit without a word.
  const sigset_t signals = stop_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  fleet.start();
  const int signal_fd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  std::vector<pollfd> fds;
  std::vector<transport::HostEvent> events;
  bool left = false;
  while (!executor.ended() && !left) {
    auto now = plans::RunClock::now();
    fds.clear();
    int wait = std::min(fleet.prepare(fds, now), 250);
    if (const auto timer = executor.next_timer())
      wait = std::clamp<int>(
          static_cast<int>(
              std::chrono::duration_cast<std::chrono::milliseconds>(*timer - now).count()) +
              1,
          0, wait);
    const size_t control_at = fds.size();
    run.control.prepare(fds);
    fds.push_back({signal_fd, POLLIN, 0});
    if (options.wake_fd >= 0) fds.push_back({options.wake_fd, POLLIN, 0});
    poll(fds.data(), fds.size(), wait);
    now = plans::RunClock::now();
    events.clear();
    fleet.tick(events, now);
    for (const auto& event : events)
      run.port->deliver(event, executor, now);
    run.control.service({fds.begin() + static_cast<long>(control_at), fds.end()},
                        [&](const nlohmann::json& request) { return answer(executor, request); });
    if (options.take_commands)
      for (const auto& command : options.take_commands()) {
        const std::string refused = executor.command(command, now);
        if (!refused.empty()) sink(plans::LogEvent{command.step, "", "agent", refused});
      }
    signalfd_siginfo info;
    if (read(signal_fd, &info, sizeof info) == sizeof info) left = true;
    if (options.should_leave && options.should_leave()) left = true;
    if (!executor.fatal().empty()) left = true;
    executor.tick(now);
  }
  // Let the last acknowledgements reach the agents.
  fleet.run_until([](const std::vector<transport::HostEvent>&) { return false; },
                  std::chrono::milliseconds(150));
  close(signal_fd);
  pthread_sigmask(SIG_UNBLOCK, &signals, nullptr);
  if (!executor.fatal().empty() && !executor.ended()) {
    std::fprintf(stderr, "cutpilot run: %s\n", executor.fatal().c_str());
    return kFailed;
  }
  if (left && !executor.ended()) return tui::kCockpitLeft;
  return executor.exit_code();
}

// What the operator reads after leaving a run that goes on without the cockpit.
void say_left(const RunSession& run) {
  std::fprintf(stderr,
               "cutpilot run: left run %s; the agents' jobs keep running. Come back with:\n"
               "  cutpilot run %s --resume --state-dir %s\n",
               run.run_id.c_str(), run.loaded.plan.path.c_str(), run.state_dir.c_str());
}

// The TUI on this thread, the run's loop on another; false when the terminal cannot host it.
bool run_with_cockpit(const RunOptions& options, int& status) {
  plans::RunLink link;
  RunSession run;
  const plans::EventSink sink = [&](const plans::Event& e) { link.publish(e); };
  if (const int prepared = prepare(options, sink, run); prepared != kOk) {
    status = prepared;
    return true;
  }
  tui::block_resize_signal();
  // The stop signals are the run loop's (its signalfd): blocked on this thread before the
  // loop's starts, or a SIGHUP from a closed tmux pane, or a SIGTERM, taken by the TUI's
  // thread would end the cockpit at once, without a word of how to come back.
  const sigset_t stops = stop_signals();
  pthread_sigmask(SIG_BLOCK, &stops, nullptr);
  RunOptions hooks = options;
  hooks.wake_fd = link.command_fd();
  hooks.take_commands = [&] { return link.take_commands(); };
  hooks.should_leave = [&] { return link.view_closed(); };
  int loop_status = kFailed;
  std::atomic<bool> done = false;
  std::thread runner([&] {
    loop_status = loop(hooks, sink, run);
    done = true;
    link.publish(plans::LogEvent{"", "", "agent", "the run's loop ended"});
    link.close_run();
  });
  tui::CockpitOptions view;
  view.model.seconds_before = std::max(0.0, plans::unix_now() - run.started_unix);
  if (tui::run_cockpit(run.loaded.plan, link, view) == tui::kCockpitNoTerminal) {
    // ncurses cannot drive this TERM: the run goes on with line output instead.
    std::fprintf(stderr,
                 "cutpilot run: the terminal cannot show the cockpit (TERM=%s); "
                 "showing lines instead\n",
                 std::getenv("TERM") ? std::getenv("TERM") : "");
    RunPrinter printer(stdout, false);
    while (!done) {
      pollfd fd{link.event_fd(), POLLIN, 0};
      poll(&fd, 1, 250);
      for (const auto& event : link.take_events())
        printer.print(event);
    }
  }
  runner.join();
  if (loop_status == tui::kCockpitLeft) {
    say_left(run);
    status = kFailed;
  } else {
    status = loop_status;
  }
  return true;
}

}  // namespace

int run_plan(const RunOptions& options) {
  if (!options.headless && !options.json && isatty(STDOUT_FILENO) && isatty(STDIN_FILENO)) {
    int status = kFailed;
    if (run_with_cockpit(options, status)) return status;
  }
  RunPrinter printer(stdout, options.json);
  const plans::EventSink sink = [&](const plans::Event& e) { printer.print(e); };
  RunSession run;
  if (const int prepared = prepare(options, sink, run); prepared != kOk) return prepared;
  if (!options.json)
    std::fprintf(stderr, "cutpilot run: %s run %s; state in %s\n",
                 run.resuming ? "resuming" : "starting", run.run_id.c_str(), run.state_dir.c_str());
  const int status = loop(options, sink, run);
  if (status == tui::kCockpitLeft) {
    say_left(run);
    return kFailed;
  }
  return status;
}

int run_command(const std::vector<std::string>& args) {
  RunOptions options;
  if (const int status = parse_run_options(args, options); status != kOk) return status;
  return run_plan(options);
}

int abort_stopped_run(const std::string& state_dir) {
  std::string error;
  const auto journal = plans::replay_journal(state_dir, error);
  if (!journal) {
    std::fprintf(stderr, "cutpilot abort: %s\n", error.c_str());
    return kFailed;
  }
  if (journal->ended && *journal->ended != "failed") {
    std::fprintf(stderr, "cutpilot abort: run %s in %s already ended (%s)\n",
                 journal->run_id.c_str(), state_dir.c_str(), journal->ended->c_str());
    return kFailed;
  }
  std::fprintf(stderr,
               "cutpilot abort: no cockpit holds run %s; taking it up from its journal to "
               "abort it (%s)\n",
               journal->run_id.c_str(), journal->plan_path.c_str());
  RunOptions options;
  options.plan_path = journal->plan_path;
  options.state_dir = state_dir;
  options.resume = true;
  options.headless = true;
  options.abort_at_start = true;
  // A rollback that fails is reported; nothing waits for an operator who asked to end it.
  options.on_failure = plans::OnFailure::kExit;
  return run_plan(options);
}

}  // namespace cutpilot::cli
