#include "agents/leftovers.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>

namespace cutpilot::agent {
namespace {

// The fields of /proc/PID/stat this needs.
struct ProcStat {
  char state = '?';
  pid_t session = 0;
};

std::optional<ProcStat> proc_stat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // "pid (comm) state ppid pgrp session ...": comm may hold anything, even ") ".
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(text.substr(close + 1));
  ProcStat s;
  pid_t ppid = 0, group = 0;
  if (!(rest >> s.state >> ppid >> group >> s.session)) return std::nullopt;
  return s;
}

}  // namespace

std::string boot_id() {
  // Plain syscalls: every runner calls this, on the way to its job's first command.
  char id[64] = {};
  const int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  const ssize_t n = read(fd, id, sizeof id - 1);
  close(fd);
  std::string text(id, n > 0 ? static_cast<size_t>(n) : 0);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.pop_back();
  return text;
}

std::string runner_note() {
  return std::to_string(getpid()) + " " + std::to_string(getpgid(0)) + " " + boot_id();
}

pid_t note_group(std::string_view note) {
  std::istringstream in{std::string(note)};
  pid_t pid = 0, group = 0;
  return in >> pid >> group ? group : 0;
}

size_t stop_leftovers(std::string_view note, std::string_view this_boot) {
  std::istringstream in{std::string(note)};
  pid_t pid = 0, group = 0;
  std::string boot;
  if (!(in >> pid >> group >> boot) || pid <= 1 || group != pid || this_boot.empty() ||
      boot != this_boot)
    return 0;
  // A zombie is the dead runner not reaped yet; anything else alive with its pid is not ours.
  if (const auto leader = proc_stat(pid); leader && leader->state != 'Z') return 0;
  size_t stopped = 0;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return 0;
  while (const dirent* entry = readdir(proc)) {
    const pid_t other = static_cast<pid_t>(std::atol(entry->d_name));
    if (other <= 1 || other == pid) continue;
    const auto s = proc_stat(other);
    if (s && s->session == pid && s->state != 'Z' && kill(other, SIGKILL) == 0) ++stopped;
  }
  closedir(proc);
  return stopped;
}

}  // namespace cutpilot::agent
