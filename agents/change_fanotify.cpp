// ChangeWatch's fanotify backend: one mark on the tree's file system (FAN_MARK_FILESYSTEM),
// events that name their directory by file handle (FAN_REPORT_DFID_NAME, Linux 5.9), an
// unlimited queue. Every directory of the tree has its handle recorded (at arm time by a scan,
// later as directories are made, moved in or renamed), so an event is placed by looking its
// handle up: a directory outside the tree has none and its events are skipped. A handle stays
// valid after its directory is removed, so the events of a removed tree are placed too (where
// resolving the handle to a path, open_by_handle_at, would fail with ESTALE).
#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "agents/change_watch.h"

namespace cutpilot::agent {
namespace {

// What the tree's file system is marked for (a directory's own events too).
constexpr uint64_t kFanMask = FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO | FAN_MODIFY |
                              FAN_ATTRIB | FAN_DELETE_SELF | FAN_MOVE_SELF | FAN_ONDIR;

// A file handle as a map key: its type, then its bytes.
std::string handle_key(int type, const unsigned char* bytes, unsigned int size) {
  return std::string(reinterpret_cast<const char*>(&type), sizeof type) +
         std::string(reinterpret_cast<const char*>(bytes), size);
}

}  // namespace

bool ChangeWatch::arm_fanotify(std::string& why) {
  fan_fd_ = fanotify_init(
      FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME | FAN_UNLIMITED_QUEUE,
      O_RDONLY | O_LARGEFILE);
  if (fan_fd_ < 0) {
    why = errno == EPERM    ? "it needs CAP_SYS_ADMIN (an agent running as root)"
          : errno == EINVAL ? "this kernel has no FAN_REPORT_DFID_NAME (it needs Linux 5.9)"
                            : std::string("fanotify_init: ") + std::strerror(errno);
    return false;
  }
  std::string error;
  if (fanotify_mark(fan_fd_, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, kFanMask, AT_FDCWD,
                    root_.c_str()) != 0) {
    error = "cannot mark the file system of " + root_ + ": " + std::strerror(errno);
  } else if (!scan("", false, error) || !lost_.empty()) {
    if (error.empty()) error = lost_;
  }
  if (error.empty()) return true;
  why = error;
  close(fan_fd_);
  fan_fd_ = -1;
  fan_dirs_.clear();
  fan_by_path_.clear();
  lost_.clear();
  return false;
}

int ChangeWatch::fan_watch(const std::string& rel, std::string& error) {
  struct stat st {};
  if (lstat(full(rel).c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return -1;  // gone already
  if (st.st_dev != root_dev_) {
    // The mark covers one file system: a mount inside the tree would go unseen.
    error = full(rel) + " is on another file system than " + root_ + " (a mount inside the tree)";
    return -1;
  }
  alignas(file_handle) unsigned char buffer[sizeof(file_handle) + MAX_HANDLE_SZ];
  auto* handle = reinterpret_cast<file_handle*>(buffer);
  handle->handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  if (name_to_handle_at(AT_FDCWD, full(rel).c_str(), handle, &mount_id, 0) != 0) {
    if (errno == ENOENT) return -1;
    error = "cannot get the file handle of " + full(rel) + ": " + std::strerror(errno);
    return -1;
  }
  const std::string key = handle_key(handle->handle_type, handle->f_handle, handle->handle_bytes);
  // A directory renamed within the tree keeps its handle under its new name.
  if (auto old = fan_dirs_.find(key); old != fan_dirs_.end()) fan_by_path_.erase(old->second);
  fan_dirs_[key] = rel;
  fan_by_path_[rel] = key;
  return 0;
}

void ChangeWatch::drain_fanotify() {
  // Records are 4-byte aligned at best (a name's length decides): every field is copied out.
  char buffer[64 * 1024];
  for (;;) {
    const ssize_t n = read(fan_fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // EAGAIN: the queue is empty
    for (size_t at = 0; at + sizeof(fanotify_event_metadata) <= static_cast<size_t>(n);) {
      fanotify_event_metadata meta;
      std::memcpy(&meta, buffer + at, sizeof meta);
      if (meta.event_len < sizeof meta || at + meta.event_len > static_cast<size_t>(n)) break;
      if (meta.fd >= 0) close(meta.fd);
      if (meta.mask & FAN_Q_OVERFLOW) lose("the kernel's fanotify queue overflowed");
      for (size_t info = at + meta.metadata_len;
           info + sizeof(fanotify_event_info_header) <= at + meta.event_len;) {
        fanotify_event_info_header header;
        std::memcpy(&header, buffer + info, sizeof header);
        if (header.len == 0 || info + header.len > at + meta.event_len) break;
        const size_t handle_at = info + offsetof(fanotify_event_info_fid, handle);
        if ((header.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME ||
             header.info_type == FAN_EVENT_INFO_TYPE_DFID) &&
            handle_at + sizeof(file_handle) <= info + header.len) {
          file_handle handle;  // handle_bytes and handle_type; the bytes follow
          std::memcpy(&handle, buffer + handle_at, sizeof handle);
          const size_t bytes_at = handle_at + offsetof(file_handle, f_handle);
          if (bytes_at + handle.handle_bytes <= info + header.len) {
            const auto* bytes = reinterpret_cast<const unsigned char*>(buffer + bytes_at);
            const std::string name =
                header.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME
                    ? std::string(buffer + bytes_at + handle.handle_bytes,
                                  strnlen(buffer + bytes_at + handle.handle_bytes,
                                          info + header.len - bytes_at - handle.handle_bytes))
                    : std::string(".");
            on_fanotify(meta.mask, handle_key(handle.handle_type, bytes, handle.handle_bytes),
                        name);
          }
        }
        info += header.len;
      }
      at += meta.event_len;
    }
  }
}

void ChangeWatch::on_fanotify(uint64_t mask, const std::string& handle, const std::string& name) {
  const auto dir = fan_dirs_.find(handle);
  if (dir == fan_dirs_.end()) return;  // outside the tree (or a directory moved out of it)
  const std::string rel = dir->second;
  if (name == ".") {  // the directory itself
    if (rel.empty() && (mask & (FAN_DELETE_SELF | FAN_MOVE_SELF)))
      return lose("the synced directory " + root_ + " itself was removed or moved");
    if (mask & FAN_ATTRIB) on_change(rel, "", {});
    return;  // a removal or a move: its parent says so too
  }
  on_change(rel, name,
            {.created = (mask & (FAN_CREATE | FAN_MOVED_TO)) != 0,
             .removed = (mask & FAN_DELETE) != 0,
             .moved_away = (mask & FAN_MOVED_FROM) != 0,
             .is_dir = (mask & FAN_ONDIR) != 0});
}

}  // namespace cutpilot::agent
