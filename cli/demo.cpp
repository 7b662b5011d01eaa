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

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cutpilot/version.h"

extern char** environ;

namespace cutpilot::cli {
namespace {

// Runs argv to completion; returns its exit status (127 when it could not start).
int run_program(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return 127;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return 127;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string lab_script() {
  if (const char* path = std::getenv("CUTPILOT_LAB_SCRIPT")) return path;
  return std::string(kSourceDir) + "/tests/lab/lab";
}

// Waits for Enter on a terminal, or for SIGINT/SIGTERM/SIGHUP.
void wait_for_operator() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  const int sfd = signalfd(-1, &signals, SFD_CLOEXEC);
  pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {sfd, POLLIN, 0}};
  while (poll(fds, 2, -1) < 0 && errno == EINTR) {
  }
  close(sfd);
  sigprocmask(SIG_UNBLOCK, &signals, nullptr);
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
    std::printf(
        "\nThe demo lab is up in %s: hosts 'source' and 'target', each with PostgreSQL and "
        "nginx.\n"
        "  export CUTPILOT_LAB=%s\n"
        "  ssh -F %s/ssh_config source\n"
        "The cockpit itself is not built yet: this demo only starts the lab.\n",
        dir.c_str(), dir.c_str(), dir.c_str());
    if (!headless && isatty(STDIN_FILENO)) {
      std::printf("Press Enter (or Ctrl-C) to stop the lab.\n");
      std::fflush(stdout);
      wait_for_operator();
    }
  }
  std::fflush(stdout);
  if (run_program({lab, "down", "--dir", dir, "--rm"}) != 0) {
    std::fprintf(stderr, "cutpilot demo: stopping the lab in %s failed\n", dir.c_str());
    return kFailed;
  }
  return result;
}

}  // namespace cutpilot::cli
