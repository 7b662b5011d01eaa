#include "agents/file_job.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "agents/exec_job.h"
#include "agents/spool.h"
#include "transport/sha256.h"

namespace cutpilot::agent {
namespace {

using Json = nlohmann::json;

// Escaped paths longer than this get a hash instead of their tail (a name has at most 255 bytes).
constexpr size_t kMaxBackupName = 200;

// A file job's parameters, parsed strictly.
struct FileSpec {
  bool restore = false;  // action "restore"; else "write"
  std::string path;
  std::string content;
  std::optional<mode_t> mode;
  std::string owner, group;  // "" : preserve
  bool backup = true;
  std::optional<ExecSpec> validate;
};

// What a backup's meta file records.
struct BackupMeta {
  std::string path;
  bool restored = false;  // a tombstone: the content was put back already
  bool existed = false;   // was there a file before the first write?
  mode_t mode = 0644;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string job;  // the job that wrote (or restored) it
};

// Who a written file belongs to; unset fields are left as the agent creates them.
struct Ownership {
  mode_t mode = 0644;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
};

bool fail(std::string& error, std::string message) {
  error = std::move(message);
  return false;
}

std::string errno_text() {
  return std::strerror(errno);
}

std::string octal(mode_t mode) {
  char text[16];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode));
  return text;
}

std::string parent_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Why path is not an absolute, normalized file path ("" when it is).
std::string path_problem(const std::string& path) {
  if (path.empty() || path[0] != '/') return "\"path\" must be absolute (got \"" + path + "\")";
  if (path.size() > 4000) return "\"path\" is too long";
  if (path.find('\0') != std::string::npos) return "\"path\" contains a NUL byte";
  if (path == "/" || path.back() == '/') return "\"path\" must name a file, not a directory";
  for (size_t at = 1; at <= path.size();) {
    const size_t end = std::min(path.find('/', at), path.size());
    const std::string_view part = std::string_view(path).substr(at, end - at);
    if (part.empty() || part == "." || part == "..")
      return "\"path\" must be normalized (no //, . or .. parts): \"" + path + "\"";
    at = end + 1;
  }
  return "";
}

std::optional<mode_t> parse_mode(const std::string& text) {
  if (text.size() < 3 || text.size() > 4) return std::nullopt;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '7') return std::nullopt;
    value = value * 8 + static_cast<unsigned>(c - '0');
  }
  return static_cast<mode_t>(value);
}

bool parse_field(const std::string& key, const Json& value, FileSpec& spec, std::string& error) {
  if (key == "path") {
    if (!value.is_string()) return fail(error, "\"path\" must be a string");
    spec.path = value.get<std::string>();
  } else if (key == "content") {
    if (!value.is_string()) return fail(error, "\"content\" must be a string");
    spec.content = value.get<std::string>();
    if (spec.content.size() > kMaxFileContentBytes)
      return fail(error, "\"content\" is " + std::to_string(spec.content.size()) +
                             " bytes; a file job writes at most " +
                             std::to_string(kMaxFileContentBytes));
  } else if (key == "mode") {
    if (!value.is_string() || !(spec.mode = parse_mode(value.get<std::string>())))
      return fail(error, "\"mode\" must be an octal string such as \"0644\"");
  } else if (key == "owner" || key == "group") {
    if (!value.is_string() || value.get<std::string>().empty())
      return fail(error, "\"" + key + "\" must be a non-empty name or number");
    (key == "owner" ? spec.owner : spec.group) = value.get<std::string>();
  } else if (key == "backup") {
    if (!value.is_boolean()) return fail(error, "\"backup\" must be true or false");
    spec.backup = value.get<bool>();
  } else if (key == "validate") {
    std::string why;
    spec.validate = parse_exec_spec(value.dump(), why);
    if (!spec.validate) return fail(error, "\"validate\": " + why);
  } else {
    return fail(error, "unknown file field \"" + key +
                           "\" (expected action, path, content, mode, owner, group, backup, "
                           "validate)");
  }
  return true;
}

bool parse_into(const Json& j, FileSpec& spec, std::string& error) {
  if (!j.is_object()) return fail(error, "the file spec must be a JSON object");
  const auto action = j.find("action");
  if (action == j.end() || !action->is_string() || (*action != "write" && *action != "restore"))
    return fail(error, "\"action\" must be \"write\" or \"restore\"");
  spec.restore = *action == "restore";
  for (const auto& [key, value] : j.items()) {
    if (key == "action") continue;
    if (spec.restore && key != "path")
      return fail(error, "unknown field \"" + key + "\" for action \"restore\" (expected path)");
    if (!parse_field(key, value, spec, error)) return false;
  }
  if (!j.contains("path")) return fail(error, "the file spec needs \"path\"");
  if (!spec.restore && !j.contains("content"))
    return fail(error, "action \"write\" needs \"content\"");
  error = path_problem(spec.path);
  return error.empty();
}

std::optional<FileSpec> parse_file_spec(std::string_view json, std::string& error) {
  const Json j = Json::parse(json.begin(), json.end(), nullptr, false);
  if (j.is_discarded()) {
    error = "the file spec is not valid JSON";
    return std::nullopt;
  }
  FileSpec spec;
  if (!parse_into(j, spec, error)) return std::nullopt;
  return spec;
}

// The id of name in an /etc/passwd or /etc/group style file (both keep it in field 3).
std::optional<unsigned> lookup_id(const char* db, const std::string& name) {
  unsigned id = 0;
  const char* end = name.data() + name.size();
  if (auto [p, ec] = std::from_chars(name.data(), end, id); ec == std::errc() && p == end)
    return id;
  const std::optional<std::string> text = read_file(db);
  std::string_view rest = text ? std::string_view(*text) : std::string_view();
  while (!rest.empty()) {
    const std::string_view line = rest.substr(0, rest.find('\n'));
    rest.remove_prefix(std::min(rest.size(), line.size() + 1));
    const size_t first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string_view::npos || second == std::string_view::npos ||
        line.substr(0, first) != name)
      continue;
    const std::string_view field = line.substr(second + 1, line.find(':', second + 1) - second - 1);
    if (std::from_chars(field.data(), field.data() + field.size(), id).ec == std::errc()) return id;
  }
  return std::nullopt;
}

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Writes content to a hidden temp file beside path (owner, mode, fsync): its name, or "".
std::string write_temp_beside(const std::string& path, std::string_view content,
                              const Ownership& owner, std::string& error) {
  const std::string dir = parent_of(path);
  // Hidden: `include dir/*` globs skip dot files, so a half-written file is never loaded.
  const std::string name = path.substr(path.rfind('/') + 1).substr(0, 200);
  std::string temp = path.substr(0, path.rfind('/')) + "/." + name + ".cutpilot-XXXXXX";
  const int fd = mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) {
    error = "cannot create a temp file in " + dir + ": " + errno_text();
    return "";
  }
  std::string step, why;
  if (!write_all(fd, content)) {
    step = "cannot write " + temp;
  } else if ((owner.uid || owner.gid) && fchown(fd, owner.uid.value_or(static_cast<uid_t>(-1)),
                                                owner.gid.value_or(static_cast<gid_t>(-1))) != 0) {
    step = "cannot give " + temp + " owner " + (owner.uid ? std::to_string(*owner.uid) : "-") +
           ":" + (owner.gid ? std::to_string(*owner.gid) : "-");
  } else if (fchmod(fd, owner.mode) != 0) {
    step = "cannot set mode " + octal(owner.mode) + " on " + temp;
  } else if (fsync(fd) != 0) {
    step = "cannot fsync " + temp;
  }
  if (!step.empty()) why = step + ": " + errno_text();
  if (close(fd) != 0 && step.empty()) why = "cannot write " + temp + ": " + errno_text();
  if (!why.empty()) {
    unlink(temp.c_str());
    error = why;
    return "";
  }
  return temp;
}

// Replaces path with content atomically (temp file, fsync, rename, directory fsync).
bool replace_file(const std::string& path, std::string_view content, const Ownership& owner,
                  std::string& error) {
  const std::string temp = write_temp_beside(path, content, owner, error);
  if (temp.empty()) return false;
  if (rename(temp.c_str(), path.c_str()) != 0) {
    error = "cannot rename " + temp + " to " + path + ": " + errno_text();
    unlink(temp.c_str());
    return false;
  }
  if (!sync_dir(parent_of(path)))
    return fail(error, "cannot fsync " + parent_of(path) + ": " + errno_text());
  return true;
}

// Removes path (gone already is fine) and makes the removal durable.
bool remove_file(const std::string& path, std::string& error) {
  if (unlink(path.c_str()) != 0 && errno != ENOENT)
    return fail(error, "cannot remove " + path + ": " + errno_text());
  if (!sync_dir(parent_of(path)))
    return fail(error, "cannot fsync " + parent_of(path) + ": " + errno_text());
  return true;
}

// The spool directory keeping path's backup: the escaped path, or its head and a hash.
std::string backup_dir_of(const std::string& path) {
  const std::string root = cache_dir("backups");
  if (root.empty()) return "";
  std::string name = escape_job_id(path);
  if (name.size() > kMaxBackupName)
    name = name.substr(0, kMaxBackupName - 33) + "~" + transport::sha256_hex(path).substr(0, 32);
  return root + "/" + name;
}

// The backup directory of one path, locked (flock) for as long as this lives.
class BackupLock {
 public:
  BackupLock() = default;
  BackupLock(const BackupLock&) = delete;
  BackupLock& operator=(const BackupLock&) = delete;
  ~BackupLock() {
    if (fd_ >= 0) close(fd_);
  }
  // Locks the backup directory of path, creating it when create; false with error set.
  // Without create, a missing directory is no error (there is no backup to lock).
  bool acquire(const std::string& path, bool create, std::string& error) {
    dir_ = backup_dir_of(path);
    if (dir_.empty())
      return fail(error, "HOME is not set, so the agent has nowhere to keep backups");
    if (create && !make_dirs(dir_))
      return fail(error, "cannot create " + dir_ + ": " + errno_text());
    fd_ = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0)
      return errno == ENOENT && !create ? true
                                        : fail(error, "cannot open " + dir_ + ": " + errno_text());
    // Two jobs on one path would race on "is there a backup yet?": the second one fails.
    if (flock(fd_, LOCK_EX | LOCK_NB) != 0)
      return fail(error, "another file job is changing " + path + " right now");
    return true;
  }
  // The backup directory.
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  int fd_ = -1;
};

std::optional<BackupMeta> read_meta(const std::string& dir, const std::string& path,
                                    std::string& error) {
  const std::optional<std::string> text = read_file(dir + "/meta");
  if (!text) return std::nullopt;
  const Json j = Json::parse(*text, nullptr, false);
  BackupMeta meta;
  try {
    meta.path = j.at("path").get<std::string>();
    meta.restored = j.value("restored", false);
    meta.job = j.value("job", "");
    if (!meta.restored) {
      meta.existed = j.at("existed").get<bool>();
      meta.mode = parse_mode(j.at("mode").get<std::string>()).value();
      meta.uid = j.at("uid").get<uid_t>();
      meta.gid = j.at("gid").get<gid_t>();
    }
  } catch (const std::exception&) {
    meta.path.clear();
  }
  if (meta.path != path) {
    error = "the backup in " + dir + " is damaged or belongs to another path; fix it by hand";
    return std::nullopt;
  }
  return meta;
}

std::string meta_json(const BackupMeta& meta) {
  Json j = {{"path", meta.path}, {"job", meta.job}};
  if (meta.restored) {
    j["restored"] = true;
  } else {
    j.update({{"existed", meta.existed},
              {"mode", octal(meta.mode)},
              {"uid", meta.uid},
              {"gid", meta.gid}});
  }
  return j.dump() + "\n";
}

// Writes content (when meta.existed) then meta; meta comes last, so its presence means complete.
bool save_backup(const std::string& dir, const BackupMeta& meta, std::string_view content,
                 std::string& error) {
  const bool ok = (!meta.existed || write_file_atomic(dir + "/content", content)) &&
                  write_file_atomic(dir + "/meta", meta_json(meta)) && sync_dir(dir);
  return ok || fail(error, "cannot write the backup in " + dir + ": " + errno_text());
}

proto::JobFinished succeeded(JobContext& job, const Json& summary) {
  return {job.job_id(), 0, proto::JobState::kSucceeded, 0, "", summary.dump()};
}

// The state of the file at path before a write.
struct OldFile {
  bool exists = false;
  struct stat st {};
  std::string content;
};

bool read_old(const std::string& path, OldFile& old, std::string& error) {
  if (lstat(path.c_str(), &old.st) != 0) {
    if (errno != ENOENT) return fail(error, "cannot stat " + path + ": " + errno_text());
    struct stat dir {};
    const std::string parent = parent_of(path);
    if (stat(parent.c_str(), &dir) != 0)
      return fail(error, "the directory " + parent + " does not exist (" + errno_text() + ")");
    if (!S_ISDIR(dir.st_mode)) return fail(error, parent + " is not a directory");
    return true;
  }
  if (S_ISLNK(old.st.st_mode))
    return fail(error, path + " is a symlink; name the file it points to instead");
  if (!S_ISREG(old.st.st_mode)) return fail(error, path + " is not a regular file");
  std::optional<std::string> content = read_file(path);
  if (!content) return fail(error, "cannot read " + path + ": " + errno_text());
  old.exists = true;
  old.content = std::move(*content);
  return true;
}

// The mode and owner a write gives the file: the spec's, else the old file's, else defaults.
bool ownership_of(const FileSpec& spec, const OldFile& old, Ownership& owner, std::string& error) {
  owner.mode = spec.mode.value_or(old.exists ? old.st.st_mode & 07777 : 0644);
  const bool root = geteuid() == 0;
  if (old.exists && root) {
    owner.uid = old.st.st_uid;
    owner.gid = old.st.st_gid;
  }
  if (!spec.owner.empty() && !(owner.uid = lookup_id("/etc/passwd", spec.owner)))
    return fail(error, "unknown user \"" + spec.owner + "\" (not in /etc/passwd)");
  if (!spec.group.empty() && !(owner.gid = lookup_id("/etc/group", spec.group)))
    return fail(error, "unknown group \"" + spec.group + "\" (not in /etc/group)");
  return true;
}

// Puts the old version (or no file) back after a failed validation.
bool put_back(const std::string& path, const OldFile& old, std::string& error) {
  if (!old.exists) return remove_file(path, error);
  Ownership owner{static_cast<mode_t>(old.st.st_mode & 07777), {}, {}};
  if (geteuid() == 0) owner.uid = old.st.st_uid, owner.gid = old.st.st_gid;
  return replace_file(path, old.content, owner, error);
}

// A write, with the backup directory of its path locked.
proto::JobFinished write_locked(const FileSpec& spec, const BackupLock& lock, JobContext& job) {
  const std::string& path = spec.path;
  std::string error;
  OldFile old;
  Ownership owner;
  if (!read_old(path, old, error) || !ownership_of(spec, old, owner, error))
    return failed_result(job.job_id(), error);

  // The new content is complete on disk before anything else changes (a full disk fails here).
  const std::string temp = write_temp_beside(path, spec.content, owner, error);
  if (temp.empty()) return failed_result(job.job_id(), error + "; " + path + " is untouched");

  // Backup: only when the path has none, so the rollback target stays the pre-migration state.
  const std::optional<std::string> earlier_text = read_file(lock.dir() + "/meta");
  std::optional<BackupMeta> earlier;
  bool new_backup = false;
  if (spec.backup && (earlier = read_meta(lock.dir(), path, error)) && !earlier->restored) {
    // Kept as it is: it holds the version from before the first write.
  } else if (spec.backup && error.empty()) {
    const auto old_mode = static_cast<mode_t>(old.exists ? old.st.st_mode & 07777 : 0);
    const BackupMeta meta{path,          false,         old.exists,  old_mode,
                          old.st.st_uid, old.st.st_gid, job.job_id()};
    new_backup = save_backup(lock.dir(), meta, old.content, error);
  }
  if (!error.empty()) {
    unlink(temp.c_str());
    return failed_result(job.job_id(), error + "; " + path + " is untouched");
  }
  // Undoes this job's backup when the write does not stand (the earlier record comes back).
  auto drop_new_backup = [&] {
    if (!new_backup) return;
    unlink((lock.dir() + "/content").c_str());
    if (earlier_text)
      write_file_atomic(lock.dir() + "/meta", *earlier_text);
    else
      unlink((lock.dir() + "/meta").c_str());
  };

  if (rename(temp.c_str(), path.c_str()) != 0) {
    error = "cannot rename " + temp + " to " + path + ": " + errno_text();
    unlink(temp.c_str());
    drop_new_backup();
    return failed_result(job.job_id(), error + "; " + path + " is untouched");
  }
  if (!sync_dir(parent_of(path)))
    job.log(proto::Stream::kAgent,
            "warning: cannot fsync " + parent_of(path) + ": " + errno_text());
  struct stat now {};
  lstat(path.c_str(), &now);
  std::string kept;
  if (!spec.backup) {
    kept = "no backup kept (backup: false)";
  } else if (new_backup) {
    kept = old.exists ? "previous version kept in " + lock.dir()
                      : "there was no previous version: a rollback removes it";
  } else {
    kept = earlier->existed ? "the backup from before the first write (job " + earlier->job +
                                  ") stays in " + lock.dir()
                            : "it did not exist before the first write (job " + earlier->job +
                                  "): a rollback removes it";
  }
  job.log(proto::Stream::kAgent, "wrote " + path + " (" + std::to_string(spec.content.size()) +
                                     " bytes, mode " + octal(owner.mode) + ", owner " +
                                     std::to_string(now.st_uid) + ":" + std::to_string(now.st_gid) +
                                     (old.exists ? "" : ", new file") + "), " + kept);
  if (old.exists && (now.st_uid != old.st.st_uid || now.st_gid != old.st.st_gid) &&
      spec.owner.empty() && spec.group.empty())
    job.log(proto::Stream::kAgent, "note: the agent is not root, so " + path +
                                       " changed owner from " + std::to_string(old.st.st_uid) +
                                       ":" + std::to_string(old.st.st_gid));

  Json summary = {{"action", "write"},
                  {"path", path},
                  {"bytes", spec.content.size()},
                  {"sha256", transport::sha256_hex(spec.content)},
                  {"mode", octal(owner.mode)},
                  {"uid", now.st_uid},
                  {"gid", now.st_gid},
                  {"created", !old.exists},
                  {"backup", spec.backup ? Json(lock.dir()) : Json(nullptr)},
                  {"new_backup", new_backup},
                  {"validated", false}};
  if (!spec.validate) return succeeded(job, summary);

  const Command validate = command_to_run(*spec.validate, AgentIdentity::current());
  std::string shown;
  for (const auto& arg : validate.argv)
    shown += (shown.empty() ? "" : " ") + arg;
  job.log(proto::Stream::kAgent, "validating " + path + " with: " + shown);
  proto::JobFinished done = run_logged(validate, spec.validate->timeout_ms, job);
  if (done.state == proto::JobState::kSucceeded) {
    job.log(proto::Stream::kAgent, "validation passed; keeping the new " + path);
    summary["validated"] = true;
    done.result = summary.dump();
    return done;
  }
  const std::string why = "validation failed (" + done.error + ")";
  if (!put_back(path, old, error)) {
    done.error = why + " and the previous version could not be put back: " + error +
                 (new_backup ? "; it is in " + lock.dir() : "");
    job.log(proto::Stream::kAgent, done.error);
    return done;
  }
  drop_new_backup();
  done.error = why + "; " +
               (old.exists ? "the previous version of " + path + " is back in place"
                           : path + " is removed again (there was none before)");
  job.log(proto::Stream::kAgent, done.error);
  summary.update({{"rolled_back", true}, {"new_backup", false}});
  done.result = summary.dump();
  return done;
}

proto::JobFinished run_write(const FileSpec& spec, JobContext& job) {
  BackupLock lock;
  std::string error;
  if (!lock.acquire(spec.path, true, error)) return failed_result(job.job_id(), error);
  proto::JobFinished done = write_locked(spec, lock, job);
  // A write that kept no backup (failed, or backup: false) leaves no empty directory behind.
  rmdir(lock.dir().c_str());
  return done;
}

proto::JobFinished run_restore(const FileSpec& spec, JobContext& job) {
  const std::string& path = spec.path;
  std::string error;
  BackupLock lock;
  if (!lock.acquire(path, false, error)) return failed_result(job.job_id(), error);
  const std::optional<BackupMeta> meta = read_meta(lock.dir(), path, error);
  if (!meta)
    return failed_result(job.job_id(), !error.empty()
                                           ? error
                                           : "no backup of " + path + " to restore (nothing in " +
                                                 lock.dir() + "; was it written with backup?)");
  Json summary = {{"action", "restore"}, {"path", path}, {"backup", lock.dir()}};
  if (meta->restored) {
    job.log(proto::Stream::kAgent,
            "nothing to do: " + path + " was restored already (job " + meta->job + ")");
    summary["restored"] = false;
    return succeeded(job, summary);
  }
  std::string what;
  if (meta->existed) {
    const std::optional<std::string> content = read_file(lock.dir() + "/content");
    if (!content)
      return failed_result(job.job_id(),
                           "the backup in " + lock.dir() + " has no content: " + errno_text());
    Ownership owner{meta->mode, {}, {}};
    if (geteuid() == 0) owner.uid = meta->uid, owner.gid = meta->gid;
    if (!replace_file(path, *content, owner, error)) return failed_result(job.job_id(), error);
    what = "restored " + path + " from " + lock.dir() + " (" + std::to_string(content->size()) +
           " bytes, mode " + octal(meta->mode) + ")";
    summary["bytes"] = content->size();
  } else {
    if (!remove_file(path, error)) return failed_result(job.job_id(), error);
    what = "removed " + path + ": there was no file before the first write (backup " + lock.dir() +
           ")";
  }
  summary["restored"] = true;
  summary["removed"] = !meta->existed;
  // The tombstone makes a repeated restore a no-op; the content is not needed any more.
  const BackupMeta tombstone{path, true, false, 0, 0, 0, job.job_id()};
  if (!write_file_atomic(lock.dir() + "/meta", meta_json(tombstone)) ||
      (unlink((lock.dir() + "/content").c_str()) != 0 && errno != ENOENT))
    what += "; warning: cannot mark the backup as used: " + errno_text();
  job.log(proto::Stream::kAgent, what);
  return succeeded(job, summary);
}

}  // namespace

bool validate_file_spec(std::string_view spec, std::string& error) {
  return parse_file_spec(spec, error).has_value();
}

proto::JobFinished run_file(std::string_view spec_json, JobContext& job) {
  std::string error;
  const std::optional<FileSpec> spec = parse_file_spec(spec_json, error);
  if (!spec) return failed_result(job.job_id(), error);
  if (job.cancel_requested()) {
    proto::JobFinished done = failed_result(job.job_id(), "cancelled before it started");
    done.state = proto::JobState::kCancelled;
    return done;
  }
  return spec->restore ? run_restore(*spec, job) : run_write(*spec, job);
}

}  // namespace cutpilot::agent
