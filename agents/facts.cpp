#include "agents/facts.h"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace cutpilot::agent {
namespace {

// The tools `cutpilot hosts` reports, in the order it shows them.
constexpr const char* kTools[] = {"rsync",     "pg_dump",      "psql",   "pg_restore",
                                  "mysqldump", "mariadb-dump", "mysql",  "nginx",
                                  "systemctl", "docker",       "podman", "sudo"};

std::string os_name() {
  std::ifstream in("/etc/os-release");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("PRETTY_NAME=", 0) != 0) continue;
    std::string value = line.substr(12);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    return value;
  }
  return "unknown";
}

// A /proc/meminfo value in bytes.
uint64_t meminfo(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  std::string name;
  uint64_t kib = 0;
  std::string unit;
  while (in >> name >> kib >> unit)
    if (name == key + ":") return kib * 1024;
  return 0;
}

bool executable_in_path(const std::string& tool) {
  const char* env = std::getenv("PATH");
  // sbin directories hold nginx and friends but are often not in a user's PATH.
  std::string path = std::string(env ? env : "/usr/bin:/bin") + ":/usr/sbin:/sbin:/usr/local/sbin";
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/" + tool;
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
  double load = 0;
  if (std::ifstream("/proc/loadavg") >> load)
    facts.load1_milli = static_cast<uint32_t>(load * 1000);
  facts.disks.push_back(disk_free("/"));
  for (const auto& path : paths)
    if (path != "/") facts.disks.push_back(disk_free(path));
  for (const char* tool : kTools)
    if (executable_in_path(tool)) facts.tools.emplace_back(tool);
  facts.docker_socket = docker_socket();
  return facts;
}

}  // namespace cutpilot::agent
