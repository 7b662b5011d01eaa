// What changed under a directory tree since a moment: recursive inotify, one watch per
// directory, and the set of paths (relative to the tree) that were made, written, had their
// attributes changed, were renamed or removed since then.
//
// The set is what a final sync must look at and nothing else: every changed entry and the
// directory it sits in (whose time changed with it); a directory made or moved in counts
// with everything below it (it is scanned after its watch is set, so nothing made in between
// is missed). Whatever makes the set unsure empties it and says why (lost()): the kernel's
// queue overflowed, the tree's root went away, a directory could not be watched, more paths
// changed than max_paths. inotify does not see writes through a shared mmap(2); a tree written
// that way needs a full scan.
//
// Names made in directories outside the tree watched with watch_names() come through the same
// queue, after every change made before them: a request dropped there is answered with a set
// that holds every change made before the request.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cutpilot::agent {

// A tree's changes as a set of relative paths ("." is the root itself).
class ChangeWatch {
 public:
  // Watches root (a directory, absolute); at most max_paths changed paths are kept.
  ChangeWatch(std::string root, size_t max_paths);
  ~ChangeWatch();
  ChangeWatch(const ChangeWatch&) = delete;
  ChangeWatch& operator=(const ChangeWatch&) = delete;

  // Watches every directory below root; false with error set when that cannot be done (root
  // missing, more directories than fs.inotify.max_user_watches allows).
  bool arm(std::string& error);
  // The inotify descriptor (non-blocking): poll it for reading, then drain().
  int fd() const { return fd_; }
  // Also reports names made in dir (outside the tree) through drain(); false with error set
  // when it cannot be watched.
  bool watch_names(const std::string& dir, std::string& error);
  // Reads every queued event into the set; names made in the watch_names() directory are
  // appended to named, in order.
  void drain(std::vector<std::string>& named);

  // True while every change since arm() is in paths().
  bool complete() const { return lost_.empty(); }
  // Why the set is not complete ("" while it is).
  const std::string& lost() const { return lost_; }
  // The changed paths and their sizes when last seen (0: a directory, or gone).
  const std::map<std::string, uint64_t>& paths() const { return paths_; }
  // The bytes of the changed regular files, as last seen.
  uint64_t bytes() const { return bytes_; }
  // How many directories are watched.
  size_t directories() const { return dirs_.size(); }
  // The root as given.
  const std::string& root() const { return root_; }

 private:
  void on_event(int wd, uint32_t mask, uint32_t cookie, const std::string& name,
                std::vector<std::string>& named);
  // Watches rel (a directory) and, when record, adds everything below it to the set.
  bool scan(const std::string& rel, bool record, std::string& error);
  int watch(const std::string& rel, std::string& error);
  // Stops watching rel and every directory below it (moved out, or away).
  void unwatch(const std::string& rel);
  void add(const std::string& rel, bool look);
  void lose(std::string why);
  std::string full(const std::string& rel) const;

  std::string root_;
  size_t max_paths_;
  int fd_ = -1;
  int names_wd_ = -1;
  std::map<int, std::string> dirs_;     // wd → relative directory ("" for the root)
  std::map<std::string, int> by_path_;  // relative directory → wd
  std::map<std::string, uint64_t> paths_;
  uint64_t bytes_ = 0;
  std::string lost_;
};

// The list a final sync is given: the set's paths sorted, with each path that is gone and
// whose directory is gone too, or is a file now, replaced by its topmost such ancestor (rsync
// names a missing directory a vanished file, and a path below a file an error). prefix goes before
// every path ("app/" when the sync copies the directory itself, not its contents); "." then becomes
// "app".
std::vector<std::string> final_sync_list(const ChangeWatch& watch, const std::string& prefix);

}  // namespace cutpilot::agent
