#include "transport/local_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "transport/sha256.h"

namespace cutpilot::transport {
namespace {

bool make_dirs(const std::string& path) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    const std::string part = path.substr(0, slash);
    if (mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) return false;
    if (slash == std::string::npos) return true;
  }
}

}  // namespace

std::string local_cache_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg == '/')
    return std::string(xdg) + "/cutpilot";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.cache/cutpilot";
  return "";
}

std::string file_identity(const struct stat& st) {
  char text[160];
  std::snprintf(text, sizeof text, "%llu %llu %lld %lld.%09ld %lld.%09ld",
                static_cast<unsigned long long>(st.st_dev),
                static_cast<unsigned long long>(st.st_ino), static_cast<long long>(st.st_size),
                static_cast<long long>(st.st_mtim.tv_sec), st.st_mtim.tv_nsec,
                static_cast<long long>(st.st_ctim.tv_sec), st.st_ctim.tv_nsec);
  return text;
}

std::optional<std::string> cache_read(const std::string& name) {
  const std::string dir = local_cache_dir();
  if (dir.empty()) return std::nullopt;
  return read_file(dir + "/" + name);
}

bool cache_write(const std::string& name, const std::string& text) {
  const std::string dir = local_cache_dir();
  if (dir.empty()) return false;
  const std::string path = dir + "/" + name;
  if (!make_dirs(path.substr(0, path.rfind('/')))) return false;
  const std::string temp =
      path + ".tmp." + std::to_string(getpid()) + "." + std::to_string(gettid());
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  if (close(fd) != 0 || !written || rename(temp.c_str(), path.c_str()) != 0) {
    unlink(temp.c_str());
    return false;
  }
  return true;
}

void cache_prune(const std::string& sub, std::chrono::seconds max_age) {
  const std::string dir = local_cache_dir();
  if (dir.empty()) return;
  const std::string path = dir + "/" + sub;
  DIR* d = opendir(path.c_str());
  if (!d) return;
  const time_t oldest = time(nullptr) - static_cast<time_t>(max_age.count());
  while (const dirent* e = readdir(d)) {
    struct stat st;
    if (e->d_name[0] != '.' && fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode) && st.st_mtime < oldest)
      unlinkat(dirfd(d), e->d_name, 0);
  }
  closedir(d);
}

}  // namespace cutpilot::transport
