#include "agents/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "transport/codec.h"

namespace cutpilot::agent {
namespace {

bool is_plain(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Every job event names its seq field the same way; the visitor finds it.
template <class F>
void with_seq(proto::Message& event, F&& f) {
  std::visit(
      [&](auto& m) {
        m.visit([&](const char* name, auto& field) {
          if constexpr (std::is_same_v<std::decay_t<decltype(field)>, uint64_t>)
            if (std::string_view(name) == "seq") f(field);
        });
      },
      event);
}

bool is_job_event(const proto::Message& m) {
  return std::holds_alternative<proto::JobStarted>(m) ||
         std::holds_alternative<proto::Progress>(m) || std::holds_alternative<proto::LogLine>(m) ||
         std::holds_alternative<proto::JobFinished>(m) || std::holds_alternative<proto::Health>(m);
}

}  // namespace

time_t spool_max_age_s() {
  const char* text = std::getenv("CUTPILOT_AGENT_SPOOL_MAX_AGE");
  if (!text || !*text) return kSpoolMaxAgeS;
  char* end = nullptr;
  const long long seconds = std::strtoll(text, &end, 10);
  return *end == '\0' && seconds >= 0 ? static_cast<time_t>(seconds) : kSpoolMaxAgeS;
}

std::string jobs_root() {
  return cache_dir("jobs");
}

std::string cache_dir(std::string_view name) {
  const char* home = std::getenv("HOME");
  if (!home || !*home) return "";
  return std::string(home) + "/.cache/cutpilot/" + std::string(name);
}

std::string escape_job_id(std::string_view id) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string name;
  for (size_t i = 0; i < id.size(); ++i) {
    const auto c = static_cast<unsigned char>(id[i]);
    // A leading '.' would let "." and ".." name the jobs directory itself.
    if (is_plain(c) && !(i == 0 && c == '.')) {
      name += static_cast<char>(c);
    } else {
      name += '%';
      name += kHex[c >> 4];
      name += kHex[c & 15];
    }
  }
  return name;
}

std::string unescape_job_id(std::string_view name) {
  std::string id;
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '%' && i + 2 < name.size() && hex_value(name[i + 1]) >= 0 &&
        hex_value(name[i + 2]) >= 0) {
      id += static_cast<char>(hex_value(name[i + 1]) * 16 + hex_value(name[i + 2]));
      i += 2;
    } else {
      id += name[i];
    }
  }
  return id;
}

uint64_t seq_of(const proto::Message& event) {
  uint64_t seq = 0;
  // The structs' visit() is not const; this visitor only reads.
  if (is_job_event(event))
    with_seq(const_cast<proto::Message&>(event), [&](uint64_t& s) { seq = s; });
  return seq;
}

void set_seq(proto::Message& event, uint64_t seq) {
  if (is_job_event(event)) with_seq(event, [&](uint64_t& s) { s = seq; });
}

LogChunk read_events(const std::string& path, uint64_t offset) {
  LogChunk chunk;
  chunk.next_offset = offset;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return chunk;
  std::string data;
  char buffer[64 * 1024];
  ssize_t n;
  uint64_t at = offset;
  while ((n = pread(fd, buffer, sizeof buffer, static_cast<off_t>(at))) > 0) {
    data.append(buffer, static_cast<size_t>(n));
    at += static_cast<uint64_t>(n);
  }
  close(fd);
  size_t pos = 0;
  while (data.size() - pos >= proto::kFrameHeaderBytes) {
    const auto* p = reinterpret_cast<const unsigned char*>(data.data() + pos);
    const uint32_t length =
        (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
    if (length == 0 || length > proto::kMaxFrameBytes) {
      chunk.error = "corrupt event log " + path + " at byte " + std::to_string(offset + pos);
      break;
    }
    if (data.size() - pos - proto::kFrameHeaderBytes < length) break;  // still being written
    proto::DecodeResult decoded =
        proto::decode_body(std::string_view(data).substr(pos + proto::kFrameHeaderBytes, length));
    if (!decoded.ok) {
      chunk.error = "corrupt event log " + path + ": " + decoded.error;
      break;
    }
    chunk.events.push_back(std::move(decoded.message));
    pos += proto::kFrameHeaderBytes + length;
  }
  chunk.next_offset = offset + pos;
  return chunk;
}

bool append_event(int fd, const proto::Message& event) {
  const std::string frame = proto::encode_frame(event);
  ssize_t n;
  do {
    n = ::write(fd, frame.data(), frame.size());
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(frame.size());
}

JobStatus read_status(const std::string& dir) {
  JobStatus status;
  status.kind = spool_note(dir, "kind");
  LogChunk log = read_events(dir + "/events", 0);
  for (const auto& event : log.events) {
    status.last_seq = seq_of(event);
    if (const auto* done = std::get_if<proto::JobFinished>(&event)) status.finished = *done;
  }
  return status;
}

bool set_spool_note(const std::string& dir, int dir_fd, std::string_view name,
                    std::string_view value) {
  const std::string attribute = "user.cutpilot." + std::string(name);
  if (fsetxattr(dir_fd, attribute.c_str(), value.data(), value.size(), 0) == 0) return true;
  if (errno != ENOTSUP) return false;
  return write_file_atomic(dir + "/" + std::string(name), value, Durability::kAtomicOnly);
}

std::string spool_note(const std::string& dir, std::string_view name) {
  const std::string attribute = "user.cutpilot." + std::string(name);
  char value[256];
  const ssize_t n = getxattr(dir.c_str(), attribute.c_str(), value, sizeof value);
  if (n >= 0) return std::string(value, static_cast<size_t>(n));
  if (errno != ENOTSUP) return "";
  return read_file(dir + "/" + std::string(name)).value_or("");
}

std::optional<std::string> read_file(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buffer[8192];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof buffer)) > 0)
    text.append(buffer, static_cast<size_t>(n));
  close(fd);
  if (n < 0) return std::nullopt;
  return text;
}

bool write_file_atomic(const std::string& path, std::string_view text, Durability durability) {
  const std::string temp = path + ".tmp";
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  if (durability == Durability::kSynced) ok = fsync(fd) == 0 && ok;
  ok = close(fd) == 0 && ok;
  ok = ok && rename(temp.c_str(), path.c_str()) == 0;
  if (!ok) unlink(temp.c_str());
  return ok;
}

bool sync_dir(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = fsync(fd) == 0;
  close(fd);
  return ok;
}

bool make_dirs(const std::string& path) {
  for (size_t at = 1; at <= path.size(); ++at) {
    if (at != path.size() && path[at] != '/') continue;
    const std::string prefix = path.substr(0, at);
    if (mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) return false;
  }
  return true;
}

uint64_t tree_bytes(const std::string& dir) {
  uint64_t bytes = 0;
  struct stat st {};
  if (lstat(dir.c_str(), &st) != 0) return 0;
  if (!S_ISDIR(st.st_mode)) return S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* entry = readdir(d)) {
      const std::string_view name = entry->d_name;
      if (name != "." && name != "..") bytes += tree_bytes(dir + "/" + std::string(name));
    }
    closedir(d);
  }
  return bytes;
}

bool remove_tree(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return errno == ENOENT;
  if (!S_ISDIR(st.st_mode)) return unlink(path.c_str()) == 0;
  bool ok = true;
  if (DIR* dir = opendir(path.c_str())) {
    while (dirent* entry = readdir(dir)) {
      const std::string_view name = entry->d_name;
      if (name == "." || name == "..") continue;
      ok = remove_tree(path + "/" + std::string(name)) && ok;
    }
    closedir(dir);
  }
  return rmdir(path.c_str()) == 0 && ok;
}

}  // namespace cutpilot::agent
