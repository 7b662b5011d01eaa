#include "agents/facts.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace cutpilot::agent {
namespace {

// The tools `cutpilot hosts` reports, in the order it shows them.
constexpr const char* kTools[] = {"rsync",     "pg_dump",      "psql",   "pg_restore",
                                  "mysqldump", "mariadb-dump", "mysql",  "nginx",
                                  "systemctl", "docker",       "podman", "sudo"};

// A small file's text ("" when unreadable). No iostreams: they double the agent's size.
std::string read_text(const char* path) {
  std::string text;
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return text;
  char buffer[8192];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof buffer)) > 0 && text.size() < (1 << 20))
    text.append(buffer, static_cast<size_t>(n));
  close(fd);
  return text;
}

// The lines of text, without their newlines.
std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    lines.push_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

std::vector<std::string_view> split(std::string_view text, char by) {
  std::vector<std::string_view> parts;
  size_t at;
  while ((at = text.find(by)) != std::string_view::npos) {
    parts.push_back(text.substr(0, at));
    text.remove_prefix(at + 1);
  }
  parts.push_back(text);
  return parts;
}

std::string os_name() {
  const std::string text = read_text("/etc/os-release");
  for (std::string_view line : lines_of(text)) {
    if (!line.starts_with("PRETTY_NAME=")) continue;
    std::string value(line.substr(12));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    return value;
  }
  return "unknown";
}

// A /proc/meminfo value in bytes.
uint64_t meminfo(std::string_view key) {
  const std::string text = read_text("/proc/meminfo");
  for (std::string_view line : lines_of(text)) {
    if (!line.starts_with(key) || line.size() <= key.size() || line[key.size()] != ':') continue;
    return std::strtoull(std::string(line.substr(key.size() + 1)).c_str(), nullptr, 10) * 1024;
  }
  return 0;
}

bool executable_in_path(const std::string& tool) {
  const char* env = std::getenv("PATH");
  // sbin directories hold nginx and friends but are often not in a user's PATH.
  const std::string path =
      std::string(env ? env : "/usr/bin:/bin") + ":/usr/sbin:/sbin:/usr/local/sbin";
  for (std::string_view dir : split(path, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = std::string(dir) + "/" + tool;
    if (access(candidate.c_str(), X_OK) == 0) return true;
  }
  return false;
}

bool is_socket(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

std::string docker_socket() {
  if (const char* host = std::getenv("DOCKER_HOST")) {
    const std::string value = host;
    if (value.rfind("unix://", 0) == 0 && is_socket(value.substr(7))) return value.substr(7);
  }
  for (const char* path : {"/var/run/docker.sock", "/run/docker.sock", "/run/podman/podman.sock"})
    if (is_socket(path)) return path;
  return "";
}

proto::DiskFree disk_free(const std::string& path) {
  proto::DiskFree disk;
  disk.path = path;
  struct statvfs st {};
  if (statvfs(path.c_str(), &st) != 0) {
    disk.error = std::strerror(errno);
    return disk;
  }
  disk.free = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  disk.total = static_cast<uint64_t>(st.f_blocks) * st.f_frsize;
  return disk;
}

}  // namespace

proto::HostFacts collect_facts(const std::vector<std::string>& paths) {
  proto::HostFacts facts;
  struct utsname uts {};
  if (uname(&uts) == 0) {
    facts.hostname = uts.nodename;
    facts.kernel = uts.release;
    facts.arch = uts.machine;
  }
  facts.os = os_name();
  facts.cores = static_cast<uint32_t>(sysconf(_SC_NPROCESSORS_ONLN));
  facts.mem_total = meminfo("MemTotal");
  facts.mem_available = meminfo("MemAvailable");
  const std::string load = read_text("/proc/loadavg");
  if (!load.empty())
    facts.load1_milli = static_cast<uint32_t>(std::strtod(load.c_str(), nullptr) * 1000);
  facts.disks.push_back(disk_free("/"));
  for (const auto& path : paths)
    if (path != "/") facts.disks.push_back(disk_free(path));
  for (const char* tool : kTools)
    if (executable_in_path(tool)) facts.tools.emplace_back(tool);
  facts.docker_socket = docker_socket();
  return facts;
}

}  // namespace cutpilot::agent
