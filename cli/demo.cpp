// `cutpilot demo`: until the cockpit exists, start the local lab (a source and a
// target host with PostgreSQL and nginx), say how to reach it, and stop it when
// the operator presses Enter or Ctrl-C.
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cutpilot/version.h"

extern char** environ;

namespace cutpilot::cli {
namespace {

// The signals that end the demo; they are blocked in cutpilot itself and read from a
// signalfd, so the lab is always stopped however the operator leaves.
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

// Runs argv to completion; returns its exit status (127 when it could not start).
// A shielded child ignores the stop signals, so a second Ctrl-C cannot cut the
// lab's shutdown short; other children get them with their default meaning.
int run_program(const std::vector<std::string>& argv, bool shielded = false) {
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
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, args[0], nullptr, &attr, args.data(), environ);
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

// Waits for Enter on a terminal, or for a stop signal (which it consumes).
void wait_for_operator() {
  const sigset_t signals = stop_signals();
  const int sfd = signalfd(-1, &signals, SFD_CLOEXEC);
  pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {sfd, POLLIN, 0}};
  while (poll(fds, 2, -1) < 0 && errno == EINTR) {
  }
  if (fds[1].revents & POLLIN) {
    signalfd_siginfo info;
    [[maybe_unused]] ssize_t n = read(sfd, &info, sizeof info);
  }
  close(sfd);
}

}  // namespace

int demo(const std::vector<std::string>& args) {
  bool headless = false;
  for (const auto& arg : args) {
    if (arg == "--headless") {
      headless = true;
    } else {
      std::fprintf(stderr,
                   "cutpilot demo: unknown option '%s'\nusage: cutpilot demo [--headless]\n",
                   arg.c_str());
      return kUsage;
    }
  }
  // From here on a stop signal only ends the wait; the lab is always stopped.
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
  const std::vector<std::vector<std::string>> steps = {
      {lab, "up", "--dir", dir, "source", "target"}, {lab, "postgres", "--dir", dir, "source"},
      {lab, "postgres", "--dir", dir, "target"},     {lab, "nginx", "--dir", dir, "source"},
      {lab, "nginx", "--dir", dir, "target"},
  };
  int result = kOk;
  for (const auto& step : steps) {
    if (run_program(step) != 0) {
      std::fprintf(stderr, "cutpilot demo: '%s %s' failed; stopping the lab\n", step[1].c_str(),
                   step.back().c_str());
      result = kFailed;
      break;
    }
  }
  if (result == kOk) {
    // What the transport already does: reach both hosts, deploy the agent, show facts.
    const std::string plan = dir + "/hosts.toml";
    std::FILE* out = std::fopen(plan.c_str(), "w");
    if (out) {
      std::fprintf(out,
                   "[plan]\nname = \"demo lab\"\nssh_config = \"%s/ssh_config\"\n\n"
                   "[hosts.source]\n[hosts.target]\n",
                   dir.c_str());
      std::fclose(out);
      std::printf("\n$ cutpilot hosts %s\n", plan.c_str());
      std::fflush(stdout);
      if (hosts({plan}) != kOk) result = kFailed;
    }
  }
  if (result == kOk) {
    std::printf(
        "\nThe demo lab is up in %s: hosts 'source' and 'target', each with PostgreSQL and "
        "nginx.\n"
        "  export CUTPILOT_LAB=%s\n"
        "  ssh -F %s/ssh_config source\n"
        "The cockpit itself is not built yet: this demo starts the lab and shows its hosts.\n",
        dir.c_str(), dir.c_str(), dir.c_str());
    if (!headless && isatty(STDIN_FILENO)) {
      std::printf("Press Enter (or Ctrl-C) to stop the lab.\n");
      std::fflush(stdout);
      wait_for_operator();
    }
  }
  std::fflush(stdout);
  if (run_program({lab, "down", "--dir", dir, "--rm"}, /*shielded=*/true) != 0) {
    std::fprintf(stderr, "cutpilot demo: stopping the lab in %s failed\n", dir.c_str());
    return kFailed;
  }
  return result;
}

}  // namespace cutpilot::cli
