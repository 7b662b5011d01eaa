// What changed under a directory tree since a moment: fanotify where the agent may use it (a
// mark on the tree's whole file system, events placed by their directory's file handle), else
// recursive inotify (one watch per directory), and the set of paths (relative to the tree) that
// were made, written, had their attributes changed, were renamed or removed since then.
//
// The set is what a final sync must look at and nothing else: every changed entry and the
// directory it sits in (whose time changed with it); a directory made or moved in counts
// with everything below it (it is scanned after its watch is set, so nothing made in between
// is missed). Whatever makes the set unsure empties it and says why (lost()): the kernel's
// queue overflowed, the tree's root went away, a directory could not be watched, more paths
// changed than max_paths. inotify does not see writes through a shared mmap(2); a tree written
// that way needs a full scan.
//
// Names made in a directory outside the tree watched with watch_names() are read first by
// drain(), then every queued change of the tree: a change made before a name was made is queued
// before drain() reads that name (both queues are filled inside the system call that made the
// change), so the set drain() leaves holds every change made before each name it returns.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cutpilot::agent {

// How a ChangeWatch learns of changes.
enum class WatchBackend {
  kAuto,      // fanotify when it can be had (root, Linux >= 5.9, one file system), else inotify
  kInotify,   // one watch per directory; bounded by fs.inotify.max_user_watches, a queue that
              // overflows at fs.inotify.max_queued_events
  kFanotify,  // a mark on the file system and an unlimited queue; needs CAP_SYS_ADMIN
};

// A tree's changes as a set of relative paths ("." is the root itself).
class ChangeWatch {
 public:
  // Watches root (a directory, absolute); at most max_paths changed paths are kept.
  ChangeWatch(std::string root, size_t max_paths, WatchBackend backend = WatchBackend::kAuto);
  ~ChangeWatch();
  ChangeWatch(const ChangeWatch&) = delete;
  ChangeWatch& operator=(const ChangeWatch&) = delete;

  // Watches every directory below root; false with error set when that cannot be done (root
  // missing, more directories than fs.inotify.max_user_watches allows).
  bool arm(std::string& error);
  // The descriptors (non-blocking) to poll for reading before drain().
  std::vector<int> fds() const;
  // "fanotify" or "inotify", once armed.
  const char* backend() const { return fan_fd_ >= 0 ? "fanotify" : "inotify"; }
  // Why auto did not use fanotify ("" when it did, or was not asked to).
  const std::string& fanotify_refused() const { return fanotify_refused_; }
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
  size_t directories() const { return fan_fd_ >= 0 ? fan_dirs_.size() : dirs_.size(); }
  // The root as given.
  const std::string& root() const { return root_; }

 private:
  // What happened to one entry (a queue may merge several).
  struct EntryChange {
    bool created = false;     // made, or moved in
    bool removed = false;     // removed
    bool moved_away = false;  // renamed away (its new name, if in the tree, comes as created)
    bool is_dir = false;
  };
  void on_event(int wd, uint32_t mask, const std::string& name, std::vector<std::string>& named);
  // A change of entry name in directory rel (or of rel itself: name ""), from either backend;
  // neither made nor removed: written, or its attributes changed.
  void on_change(const std::string& rel, const std::string& name, EntryChange change);
  // fanotify (agents/change_fanotify.cpp): a group and a mark on root's file system, every
  // directory's file handle known; false with why (and nothing of it kept).
  bool arm_fanotify(std::string& why);
  // fanotify: remembers rel's file handle (watch() for that backend).
  int fan_watch(const std::string& rel, std::string& error);
  void drain_fanotify();
  void on_fanotify(uint64_t mask, const std::string& handle, const std::string& name);
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
  WatchBackend asked_;
  int fd_ = -1;      // inotify: the tree's watches (inotify backend) and the names watch
  int fan_fd_ = -1;  // fanotify: the tree's file system
  int names_wd_ = -1;
  dev_t root_dev_ = 0;
  std::string fanotify_refused_;
  std::map<std::string, std::string> fan_dirs_;     // file handle → relative directory
  std::map<std::string, std::string> fan_by_path_;  // relative directory → file handle
  std::map<int, std::string> dirs_;                 // wd → relative directory ("" for the root)
  std::map<std::string, int> by_path_;              // relative directory → wd
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
