#include "agents/change_watch.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include "agents/spool.h"

namespace cutpilot::agent {
namespace {

// What a tree's directories are watched for (the directory's own and its entries' changes).
constexpr uint32_t kTreeMask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM |
                               IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR |
                               IN_DONT_FOLLOW | IN_EXCL_UNLINK;

std::string join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

// The directory a relative path sits in ("." for the root's entries).
std::string parent_of(const std::string& rel) {
  const size_t slash = rel.rfind('/');
  return slash == std::string::npos ? "." : rel.substr(0, slash);
}

// fs.inotify.max_user_watches, as the kernel says it ("?" when unreadable).
std::string max_user_watches() {
  auto text = read_file("/proc/sys/fs/inotify/max_user_watches");
  if (!text) return "?";
  while (!text->empty() && (text->back() == '\n' || text->back() == ' '))
    text->pop_back();
  return *text;
}

}  // namespace

ChangeWatch::ChangeWatch(std::string root, size_t max_paths, WatchBackend backend)
    : root_(std::move(root)), max_paths_(max_paths), asked_(backend) {
  while (root_.size() > 1 && root_.back() == '/')
    root_.pop_back();
}

ChangeWatch::~ChangeWatch() {
  if (fd_ >= 0) close(fd_);
  if (fan_fd_ >= 0) close(fan_fd_);
}

std::vector<int> ChangeWatch::fds() const {
  if (fan_fd_ >= 0) return {fd_, fan_fd_};
  return {fd_};
}

std::string ChangeWatch::full(const std::string& rel) const {
  return rel.empty() || rel == "." ? root_ : root_ + "/" + rel;
}

bool ChangeWatch::arm(std::string& error) {
  fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) {
    error = std::string("cannot start inotify: ") + std::strerror(errno) +
            (errno == EMFILE ? " (fs.inotify.max_user_instances reached)" : "");
    return false;
  }
  struct stat st {};
  if (lstat(root_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    error = root_ + " is not a directory" +
            (errno == ENOENT ? std::string(" (it does not exist)") : std::string());
    return false;
  }
  root_dev_ = st.st_dev;
  if (asked_ != WatchBackend::kInotify) {
    std::string why;
    if (arm_fanotify(why)) return true;
    if (asked_ == WatchBackend::kFanotify) {
      error = "fanotify: " + why;
      return false;
    }
    fanotify_refused_ = why;
  }
  if (!scan("", false, error)) return false;
  if (!lost_.empty()) {
    error = lost_;
    return false;
  }
  return true;
}

bool ChangeWatch::watch_names(const std::string& dir, std::string& error) {
  names_wd_ = inotify_add_watch(fd_, dir.c_str(), IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
  if (names_wd_ < 0) error = "cannot watch " + dir + ": " + std::strerror(errno);
  return names_wd_ >= 0;
}

int ChangeWatch::watch(const std::string& rel, std::string& error) {
  if (fan_fd_ >= 0) return fan_watch(rel, error);
  const int wd = inotify_add_watch(fd_, full(rel).c_str(), kTreeMask);
  if (wd < 0) {
    if (errno == ENOSPC)
      error = "fs.inotify.max_user_watches (" + max_user_watches() +
              ") is too small for the directories under " + root_ + " (" +
              std::to_string(dirs_.size()) +
              " watched so far): raise it (sysctl fs.inotify.max_user_watches=N)";
    else if (errno != ENOENT && errno != ENOTDIR)
      error = "cannot watch " + full(rel) + ": " + std::strerror(errno);
    return -1;
  }
  // A directory moved within the tree keeps its watch (and wd) under its new name.
  if (auto old = dirs_.find(wd); old != dirs_.end()) by_path_.erase(old->second);
  dirs_[wd] = rel;
  by_path_[rel] = wd;
  return wd;
}

bool ChangeWatch::scan(const std::string& top, bool record, std::string& error) {
  std::vector<std::string> todo = {top};
  while (!todo.empty()) {
    const std::string rel = std::move(todo.back());
    todo.pop_back();
    // The watch first, then the listing: an entry made in between is in one or the other.
    if (watch(rel, error) < 0) {
      if (!error.empty()) {
        lose(error);
        return false;
      }
      continue;  // gone already: its removal is an event of its parent
    }
    DIR* dir = opendir(full(rel).c_str());
    if (!dir) continue;
    while (const dirent* entry = readdir(dir)) {
      const std::string name = entry->d_name;
      if (name == "." || name == "..") continue;
      const std::string path = join(rel, name);
      bool is_dir = entry->d_type == DT_DIR;
      if (entry->d_type == DT_UNKNOWN) {
        struct stat st {};
        is_dir = lstat(full(path).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
      }
      if (record) add(path, true);
      if (is_dir) todo.push_back(path);
    }
    closedir(dir);
  }
  return true;
}

void ChangeWatch::unwatch(const std::string& rel) {
  for (auto it = fan_by_path_.lower_bound(rel); it != fan_by_path_.end();) {
    if (it->first != rel && !it->first.starts_with(rel + "/")) break;
    fan_dirs_.erase(it->second);
    it = fan_by_path_.erase(it);
  }
  for (auto it = by_path_.lower_bound(rel); it != by_path_.end();) {
    if (it->first != rel && !it->first.starts_with(rel + "/")) break;
    inotify_rm_watch(fd_, it->second);
    dirs_.erase(it->second);
    it = by_path_.erase(it);
  }
}

void ChangeWatch::add(const std::string& rel, bool look) {
  if (!lost_.empty()) return;
  uint64_t size = 0;
  struct stat st {};
  if (look && lstat(full(rel).c_str(), &st) == 0 && S_ISREG(st.st_mode)) size = st.st_size;
  auto [it, made] = paths_.emplace(rel, size);
  if (!made && look) {
    bytes_ -= it->second;
    it->second = size;
  }
  if (made || look) bytes_ += size;
  if (paths_.size() > max_paths_)
    lose("more than " + std::to_string(max_paths_) +
         " paths changed since the watch began: a list that long is no faster than a full scan");
}

void ChangeWatch::lose(std::string why) {
  if (!lost_.empty()) return;
  lost_ = std::move(why);
  paths_.clear();
  bytes_ = 0;
}

void ChangeWatch::drain(std::vector<std::string>& named) {
  alignas(inotify_event) char buffer[64 * 1024];
  for (;;) {
    const ssize_t n = read(fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EAGAIN: the queue is empty
    for (ssize_t at = 0; at < n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
      const std::string name = event->len ? std::string(event->name) : std::string();
      on_event(event->wd, event->mask, name, named);
      at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
    }
  }
  // With fanotify the names came first: every change made before one of them is queued.
  if (fan_fd_ >= 0) drain_fanotify();
}

void ChangeWatch::on_event(int wd, uint32_t mask, const std::string& name,
                           std::vector<std::string>& named) {
  if (mask & IN_Q_OVERFLOW) {
    const auto limit = read_file("/proc/sys/fs/inotify/max_queued_events");
    lose(
        "the kernel's event queue overflowed (more changes waiting than "
        "fs.inotify.max_queued_events = " +
        (limit ? limit->substr(0, limit->find('\n')) : std::string("?")) + ")");
    return;
  }
  if (wd == names_wd_) {
    if (!name.empty() && (mask & (IN_CREATE | IN_MOVED_TO))) named.push_back(name);
    return;
  }
  const auto dir = dirs_.find(wd);
  if (dir == dirs_.end()) return;  // a watch given up already (its directory moved away)
  const std::string rel = dir->second;
  if (mask & IN_UNMOUNT) return lose("the file system under " + full(rel) + " was unmounted");
  if (mask & IN_IGNORED) {
    by_path_.erase(rel);
    dirs_.erase(dir);
    if (rel.empty()) lose("the synced directory " + root_ + " itself was removed");
    return;
  }
  if (rel.empty() && (mask & (IN_DELETE_SELF | IN_MOVE_SELF)))
    return lose("the synced directory " + root_ + " itself was removed or moved");
  if (mask & (IN_DELETE_SELF | IN_MOVE_SELF)) return;  // its parent says so too
  on_change(rel, name,
            {.created = (mask & (IN_CREATE | IN_MOVED_TO)) != 0,
             .removed = (mask & IN_DELETE) != 0,
             .moved_away = (mask & IN_MOVED_FROM) != 0,
             .is_dir = (mask & IN_ISDIR) != 0});
}

void ChangeWatch::on_change(const std::string& rel, const std::string& name, EntryChange change) {
  if (name.empty()) {
    add(rel.empty() ? "." : rel, true);  // the directory's own attributes
    return;
  }
  const std::string path = join(rel, name);
  // Removal first: a queue that merged "removed, then made again" holds both.
  if (change.removed || change.moved_away) {
    add(path, false);
    if (auto it = paths_.find(path); it != paths_.end()) {
      bytes_ -= it->second;
      it->second = 0;
    }
    add(rel.empty() ? "." : rel, false);
    if (change.is_dir && change.moved_away) unwatch(path);  // watched again where it lands
  }
  if (change.created) {
    add(path, true);
    add(rel.empty() ? "." : rel, false);
    std::string error;
    if (change.is_dir) scan(path, true, error);  // watched first, then everything in it
  }
  if (!change.removed && !change.moved_away && !change.created) add(path, true);
}

std::vector<std::string> final_sync_list(const ChangeWatch& watch, const std::string& prefix) {
  const std::string& root = watch.root();
  auto look = [&](const std::string& rel, bool& is_dir) {
    struct stat st {};
    const bool found = lstat((rel == "." ? root : root + "/" + rel).c_str(), &st) == 0;
    is_dir = found && S_ISDIR(st.st_mode);
    return found;
  };
  std::set<std::string> names;
  for (const auto& [rel, size] : watch.paths()) {
    std::string path = rel;
    // Gone with its directory (or the directory is a file now): the topmost such ancestor
    // stands for it; rsync names a missing directory a vanished file, a path below a file an
    // error.
    bool is_dir = false;
    while (path != "." && !look(path, is_dir) && parent_of(path) != ".") {
      look(parent_of(path), is_dir);
      if (is_dir) break;
      path = parent_of(path);
    }
    names.insert(path);
  }
  std::vector<std::string> list;
  list.reserve(names.size());
  const std::string top = prefix.empty() ? "." : prefix.substr(0, prefix.size() - 1);
  for (const auto& name : names)
    list.push_back(name == "." ? top : prefix + name);
  return list;
}

}  // namespace cutpilot::agent
