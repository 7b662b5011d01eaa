// `cutpilot demo`: start the local lab (a source and a target host with PostgreSQL and
// nginx), run plans/demo.toml on it (the TUI on a terminal, else lines or --json), and
// stop the lab however the run ends.
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/run_plan.h"
#include "cutpilot/version.h"

extern char** environ;

namespace cutpilot::cli {
namespace {

// Runs argv to completion; returns its exit status (127 when it could not start).
// A shielded child ignores the stop signals, so a second Ctrl-C cannot cut the
// lab's shutdown short; other children get them with their default meaning.
int run_program(const std::vector<std::string>& argv, bool shielded = false,
                bool quiet_stdout = false) {
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const sigset_t signals = stop_signals();
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setsigmask(&attr, &none);
  if (shielded) {
    // Ignored dispositions survive exec; pending stop signals are dropped with them.
    for (int sig : {SIGINT, SIGTERM, SIGHUP})
      std::signal(sig, SIG_IGN);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  } else {
    posix_spawnattr_setsigdefault(&attr, &signals);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  }
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  if (quiet_stdout) posix_spawn_file_actions_adddup2(&files, STDERR_FILENO, STDOUT_FILENO);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, args[0], &files, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&files);
  posix_spawnattr_destroy(&attr);
  if (spawned != 0) return 127;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return 127;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string lab_script() {
  if (const char* path = std::getenv("CUTPILOT_LAB_SCRIPT")) return path;
  return std::string(kSourceDir) + "/tests/lab/lab";
}

// Puts every NAME=VALUE of the lab's DIR/hosts/HOST/SERVICE.env files into the
// environment as HOST_NAME (SOURCE_PGPORT, TARGET_NGINX_PORT, ...) for the demo plan.
void export_lab_env(const std::string& dir) {
  for (const char* host : {"source", "target"})
    for (const char* service : {"postgres", "nginx", "podman"}) {
      std::FILE* in = std::fopen((dir + "/hosts/" + host + "/" + service + ".env").c_str(), "r");
      if (!in) continue;
      char line[4096];
      while (std::fgets(line, sizeof line, in)) {
        std::string text = line;
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
          text.pop_back();
        const size_t eq = text.find('=');
        if (text.empty() || text[0] == '#' || eq == std::string::npos) continue;
        std::string name = std::string(host) + "_" + text.substr(0, eq);
        for (char& c : name)
          c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        setenv(name.c_str(), text.substr(eq + 1).c_str(), 1);
      }
      std::fclose(in);
    }
  setenv("CUTPILOT_LAB", dir.c_str(), 1);
}

std::string demo_plan() {
  if (const char* path = std::getenv("CUTPILOT_DEMO_PLAN")) return path;
  return std::string(kSourceDir) + "/plans/demo.toml";
}

}  // namespace

int demo(const std::vector<std::string>& args) {
  RunOptions options;
  for (const auto& arg : args) {
    if (arg == "--headless") {
      options.headless = true;
    } else if (arg == "--json") {
      options.json = true;
    } else if (arg == "--approve-all") {
      options.approve_all = true;
    } else {
      std::fprintf(stderr,
                   "cutpilot demo: unknown option '%s'\nusage: cutpilot demo [--headless] "
                   "[--json] [--approve-all]\n",
                   arg.c_str());
      return kUsage;
    }
  }
  // From here on a stop signal only ends the run; the lab is always stopped.
  const sigset_t signals = stop_signals();
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  const std::string lab = lab_script();
  struct stat st {};
  if (stat(lab.c_str(), &st) != 0) {
    std::fprintf(stderr, "cutpilot demo: the lab script %s is missing (set CUTPILOT_LAB_SCRIPT)\n",
                 lab.c_str());
    return kFailed;
  }
  char dir_template[] = "/tmp/cutpilot-demo-XXXXXX";
  if (!mkdtemp(dir_template)) {
    std::perror("cutpilot demo: mkdtemp");
    return kFailed;
  }
  const std::string dir = dir_template;
  // The lab's own chatter goes to stderr: with --json, stdout is only the event schema.
  std::fprintf(stderr, "cutpilot demo: starting the lab in %s (source and target)\n", dir.c_str());
  const std::vector<std::vector<std::string>> steps = {
      {lab, "up", "--dir", dir, "source", "target"},
      {lab, "postgres", "--dir", dir, "--logical", "source"},
      {lab, "postgres", "--dir", dir, "target"},
      {lab, "nginx", "--dir", dir, "source"},
      {lab, "nginx", "--dir", dir, "target"},
  };
  int result = kOk;
  for (const auto& step : steps) {
    if (run_program(step, false, true) != 0) {
      std::fprintf(stderr, "cutpilot demo: 'lab %s %s' failed; stopping the lab\n", step[1].c_str(),
                   step.back().c_str());
      result = kFailed;
      break;
    }
  }
  if (result == kOk) {
    // Containers when podman works here; without, the plan's optional container steps fail.
    const bool podman = run_program({lab, "podman", "--dir", dir, "target"}, false, true) == 0;
    if (!podman)
      std::fprintf(stderr,
                   "cutpilot demo: podman does not work here; the container steps "
                   "will fail (they are optional)\n");
    export_lab_env(dir);
    if (const char* host = std::getenv("TARGET_DOCKER_HOST");
        podman && host && std::string(host).rfind("unix://", 0) == 0) {
      setenv("TARGET_DOCKER_SOCKET", host + 7, 1);
    } else {
      setenv("TARGET_PODMAN_WRAPPER", (dir + "/no-podman-here").c_str(), 1);
      setenv("TARGET_CUTPILOT_LAB_IMAGE", "none", 1);
      setenv("TARGET_DOCKER_SOCKET", (dir + "/no-podman-here.sock").c_str(), 1);
    }
    options.plan_path = demo_plan();
    options.state_dir = dir + "/state";
    // Each demo has a lab of its own: earlier demos' runs are none of its business.
    options.plan_dir = dir;
    options.on_failure = options.headless || options.json || !isatty(STDOUT_FILENO)
                             ? plans::OnFailure::kExit
                             : plans::OnFailure::kWait;
    // The stop signals stay blocked: the run's loop reads them (and leaves), then the lab stops.
    result = run_plan(options);
    std::fprintf(stderr, "cutpilot demo: the run's journal and audit log were in %s/state\n",
                 dir.c_str());
  }
  std::fflush(stdout);
  if (run_program({lab, "down", "--dir", dir, "--rm"}, /*shielded=*/true, true) != 0) {
    std::fprintf(stderr, "cutpilot demo: stopping the lab in %s failed\n", dir.c_str());
    return kFailed;
  }
  std::fprintf(stderr, "cutpilot demo: stopped the lab\n");
  return result;
}

}  // namespace cutpilot::cli
