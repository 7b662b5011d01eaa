#include "agents/image_job.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "agents/command.h"
#include "agents/peer_ssh.h"
#include "agents/rate_meter.h"
#include "agents/spec_fields.h"
#include "agents/spool.h"

namespace cutpilot::agent {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kCodecs[] = {"none", "gzip", "zstd", "auto"};
// Bytes read and written at a time; a run of zeros this long (aligned) becomes a hole.
constexpr size_t kChunk = 1 << 20;
constexpr size_t kHoleBlock = 64 * 1024;
// What the far side says on stderr before the data and after it.
constexpr std::string_view kSizeMark = "cutpilot-image size ";
constexpr std::string_view kHashMark = "cutpilot-image sha256 ";
// What the far side says when it refuses, before anything is sent.
constexpr std::string_view kRefusalMark = "cutpilot-image: ";

// The far side, run by sh with $1 = the source and $2 = the codec wanted ("auto": zstd when
// the host has it, else gzip). It reads the source once: tee sends it on (fd 4, through the
// compressor) and into the hasher, whose sum goes to stderr (fd 3) after the data. The hasher
// is openssl where the host has it (SHA-NI: about five times coreutils' sha256sum, which
// otherwise caps the copy near 300 MiB/s), else sha256sum; both print "HASH rest".
constexpr const char* kFarSide = R"sh(f=$1
if [ -b "$f" ]; then size=$(blockdev --getsize64 "$f") || exit 2
elif [ -f "$f" ]; then size=$(stat -L -c %s "$f") || exit 2
elif [ -e "$f" ]; then echo "cutpilot-image: it is neither a file nor a block device" >&2; exit 2
else echo "cutpilot-image: it does not exist" >&2; exit 2; fi
[ -r "$f" ] || { echo "cutpilot-image: it cannot be read (permission denied)" >&2; exit 2; }
c=$2
if [ "$c" = auto ]; then if command -v zstd >/dev/null 2>&1; then c=zstd; else c=gzip; fi; fi
if [ "$c" = zstd ] && ! command -v zstd >/dev/null 2>&1; then
  echo "cutpilot-image: zstd is not installed there" >&2; exit 2; fi
sum=sha256sum
if command -v openssl >/dev/null 2>&1; then sum="openssl dgst -sha256 -r"; fi
echo "cutpilot-image size $size $c" >&2
{ { tee /dev/fd/4 <"$f" | $sum | { read -r h r; echo "cutpilot-image sha256 $h" >&3; }; } 4>&1 |
  case $c in zstd) zstd -q -1 -c ;; gzip) gzip -1 -c ;; *) cat ;; esac; } 3>&2
)sh";

// A parsed image spec.
struct ImageSpec {
  std::string from, to, compress = "none", volume, source_host;
  Peer peer;
  uint64_t timeout_ms = 0;
};

std::optional<ImageSpec> parse(std::string_view text, std::string& error) {
  const Json j = Json::parse(text.begin(), text.end(), nullptr, false);
  if (!j.is_object()) {
    error = "the image spec must be a JSON object";
    return std::nullopt;
  }
  ImageSpec spec;
  std::optional<Peer> peer;
  const FieldHandlers fields = {
      {"from", text_field(spec.from, error, "from")},
      {"to", text_field(spec.to, error, "to")},
      {"compress", text_field(spec.compress, error, "compress")},
      {"volume", text_field(spec.volume, error, "volume")},
      {"source_host", text_field(spec.source_host, error, "source_host")},
      {"timeout_ms", count_field(spec.timeout_ms)},
      {"peer",
       [&](const Json& v) {
         peer = parse_peer(v, "peer", error);
         return peer.has_value();
       }},
  };
  if (!read_fields(j, "image", fields, error)) return std::nullopt;
  if (!peer) {
    error = "an image spec needs \"peer\" (the host the image comes from)";
  } else if (spec.from.empty() || spec.from[0] != '/' || spec.to.empty() || spec.to[0] != '/') {
    error = "image \"from\" and \"to\" must be absolute paths";
  } else if (spec.to.back() == '/') {
    error = "image \"to\" must name a file, not a directory";
  } else if (std::find(std::begin(kCodecs), std::end(kCodecs), spec.compress) ==
             std::end(kCodecs)) {
    error = "image \"compress\" must be none, gzip, zstd or auto";
  }
  if (!error.empty()) return std::nullopt;
  spec.peer = std::move(*peer);
  return spec;
}

std::string hex(const unsigned char* bytes, unsigned n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out += kDigits[bytes[i] >> 4];
    out += kDigits[bytes[i] & 15];
  }
  return out;
}

// SHA-256 through OpenSSL (the hash runs at disk speed: SHA-NI where the CPU has it).
class Hasher {
 public:
  Hasher() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr);
  }
  void update(const char* data, size_t n) { EVP_DigestUpdate(ctx_.get(), data, n); }
  std::string hex_digest() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(ctx_.get(), digest, &n);
    return hex(digest, n);
  }

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
};

// The SHA-256 of a whole file, or "" when it cannot be read.
std::string hash_file(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  Hasher hasher;
  std::string buffer(kChunk, '\0');
  ssize_t n;
  while ((n = read(fd, buffer.data(), buffer.size())) > 0)
    hasher.update(buffer.data(), static_cast<size_t>(n));
  close(fd);
  return n < 0 ? "" : hasher.hex_digest();
}

bool all_zero(const char* p, size_t n) {
  return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0);
}

// A child process in its own group, stopped and reaped when destroyed.
struct Child {
  pid_t pid = -1;
  ~Child() {
    if (pid > 0) {
      kill(-pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  }
  // Waits for it to exit; its exit as a shell reports it (128 + signal when killed).
  int wait() {
    int status = 0;
    if (pid <= 0 || waitpid(pid, &status, 0) != pid) return -1;
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
};

// One copy in progress: the processes, the partial file and what came so far.
class ImageCopy {
 public:
  ImageCopy(const ImageSpec& spec, JobContext& job) : spec_(spec), job_(job) {}
  ~ImageCopy() {
    for (int fd : {data_fd_, err_fd_, file_fd_})
      if (fd >= 0) close(fd);
    if (!kept_) unlink(partial().c_str());
  }
  proto::JobFinished run(int signal_fd);

 private:
  std::string partial() const { return spec_.to + std::string(kImagePartialSuffix); }
  std::string where() const {
    return (spec_.source_host.empty() ? spec_.peer.address : spec_.source_host) + ":" + spec_.from;
  }
  proto::JobFinished fail(std::string why) { return failed_result(job_.job_id(), std::move(why)); }
  std::optional<std::string> start(const std::string& codec);
  std::optional<std::string> on_stderr_line(const std::string& line);
  std::optional<std::string> take(const char* data, size_t n);
  std::optional<std::string> flush();
  std::string far_errors() const;

  const ImageSpec& spec_;
  JobContext& job_;
  Child ssh_, decoder_;
  int data_fd_ = -1, err_fd_ = -1, file_fd_ = -1;
  std::string err_partial_;
  std::vector<std::string> far_lines_;  // what the far side said that was not a mark
  std::string refusal_;                 // why the far side would not send the source
  std::optional<uint64_t> size_;
  std::string codec_, far_hash_;
  uint64_t received_ = 0, offset_ = 0;
  std::string buffer_;
  Hasher received_hash_;
  RateMeter rate_;
  bool kept_ = false;
};

std::string ImageCopy::far_errors() const {
  std::string text;
  for (size_t i = far_lines_.size() > 3 ? far_lines_.size() - 3 : 0; i < far_lines_.size(); ++i)
    text += (text.empty() ? "" : "; ") + far_lines_[i];
  return text.empty() ? "it said nothing" : text;
}

std::optional<std::string> ImageCopy::start(const std::string& codec) {
  std::string error;
  std::optional<std::vector<std::string>> argv = ssh_argv(spec_.peer, job_.dir(), error);
  if (!argv) return error;
  std::vector<std::string> remote = {"sh", "-c", kFarSide, "cutpilot-image", spec_.from, codec};
  if (spec_.peer.sudo) remote.insert(remote.begin(), {"sudo", "-n"});
  argv->push_back(spec_.peer.address);
  argv->push_back(shell_line(remote));
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return std::string("cannot make a pipe: ") + std::strerror(errno);
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    return std::string("cannot make a pipe: ") + std::strerror(errno);
  }
  fcntl(out[0], F_SETPIPE_SZ, static_cast<int>(kChunk));
  ssh_.pid = spawn_command(Command{.argv = *argv}, -1, out[1], err[1], error);
  close(out[1]);
  close(err[1]);
  data_fd_ = out[0];
  err_fd_ = err[0];
  fcntl(err_fd_, F_SETFL, O_NONBLOCK);
  if (ssh_.pid < 0) return "cannot run ssh: " + error;
  return std::nullopt;
}

// Reads the far side's size announcement (then starts the decoder) and its checksum.
std::optional<std::string> ImageCopy::on_stderr_line(const std::string& line) {
  if (line.rfind(kSizeMark, 0) == 0 && !size_) {
    const std::string rest = line.substr(kSizeMark.size());
    const size_t space = rest.find(' ');
    size_ = std::strtoull(rest.c_str(), nullptr, 10);
    codec_ = space == std::string::npos ? "none" : rest.substr(space + 1);
    job_.log(proto::Stream::kAgent,
             where() + " is " + std::to_string(*size_) + " bytes; " +
                 (codec_ == "none" ? "sent as it is" : "sent through " + codec_));
    if (codec_ == "none") return std::nullopt;
    if (codec_ != "zstd" && codec_ != "gzip")
      return "the far side chose an unknown codec " + codec_;
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0)
      return std::string("cannot make a pipe: ") + std::strerror(errno);
    fcntl(out[0], F_SETPIPE_SZ, static_cast<int>(kChunk));
    const std::string err_path = job_.dir() + "/decoder.err";
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    std::string error;
    decoder_.pid = spawn_command(Command{.argv = {codec_, "-d", "-q", "-c"}}, data_fd_, out[1],
                                 err >= 0 ? err : out[1], error);
    if (err >= 0) close(err);
    close(out[1]);
    close(data_fd_);
    data_fd_ = out[0];
    if (decoder_.pid < 0) return "cannot run " + codec_ + " -d: " + error;
    return std::nullopt;
  }
  if (line.rfind(kHashMark, 0) == 0) {
    far_hash_ = line.substr(kHashMark.size());
    return std::nullopt;
  }
  if (line.rfind(kRefusalMark, 0) == 0) refusal_ = line.substr(kRefusalMark.size());
  far_lines_.push_back(line);
  job_.log(proto::Stream::kStderr, line);
  return std::nullopt;
}

// Writes the buffered data at the current offset, leaving aligned zero blocks as holes.
std::optional<std::string> ImageCopy::flush() {
  for (size_t at = 0; at < buffer_.size(); at += kHoleBlock) {
    const size_t n = std::min(kHoleBlock, buffer_.size() - at);
    const char* p = buffer_.data() + at;
    if (!all_zero(p, n)) {
      for (size_t done = 0; done < n;) {
        const ssize_t w = pwrite(file_fd_, p + done, n - done, static_cast<off_t>(offset_ + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
          return "cannot write " + partial() + ": " + std::strerror(w < 0 ? errno : ENOSPC) +
                 " (after " + std::to_string(offset_) + " of " + std::to_string(size_.value_or(0)) +
                 " bytes; the partial file is removed, " + spec_.to + " is as it was)";
        done += static_cast<size_t>(w);
      }
    }
    offset_ += n;
  }
  buffer_.clear();
  return std::nullopt;
}

std::optional<std::string> ImageCopy::take(const char* data, size_t n) {
  received_ += n;
  if (size_ && received_ > *size_)
    return where() + " sent more than the " + std::to_string(*size_) + " bytes it announced";
  received_hash_.update(data, n);
  while (n > 0) {
    const size_t room = std::min(n, kChunk - buffer_.size());
    buffer_.append(data, room);
    data += room;
    n -= room;
    if (buffer_.size() == kChunk)
      if (auto error = flush()) return error;
  }
  proto::Progress p;
  p.bytes = received_;
  p.total = size_;
  p.rate = rate_.update(received_);
  p.detail = "image " + where();
  job_.progress(std::move(p));
  return std::nullopt;
}

proto::JobFinished ImageCopy::run(int signal_fd) {
  const auto began = Clock::now();
  const std::string dir = spec_.to.substr(0, spec_.to.rfind('/'));
  struct stat st {};
  if (stat(dir.empty() ? "/" : dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return fail("the directory " + dir + " does not exist on this host");
  if (stat(spec_.to.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    return fail(spec_.to + " exists and is not a file; an image copy writes only files");
  const bool replaces = stat(spec_.to.c_str(), &st) == 0;

  std::string codec = spec_.compress;
  if ((codec == "zstd" || codec == "auto") && !on_path("zstd")) {
    if (codec == "zstd") return fail("zstd is not installed on this host (compress = \"zstd\")");
    codec = "gzip";
  }
  file_fd_ = open(partial().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (file_fd_ < 0) return fail("cannot create " + partial() + ": " + std::strerror(errno));
  if (auto error = start(codec)) return fail(*error);
  if (replaces)
    job_.log(proto::Stream::kAgent, spec_.to + " exists: it is replaced once the copy is verified");

  const auto deadline = began + std::chrono::milliseconds(spec_.timeout_ms);
  std::string data(kChunk, '\0');
  LineSplitter splitter;
  bool data_open = true, err_open = true;
  while (data_open || err_open) {
    // The data is read only once the size is known (the decoder reads it otherwise).
    const bool reading_data = data_open && size_.has_value();
    pollfd fds[3] = {{signal_fd, POLLIN, 0},
                     {err_open ? err_fd_ : -1, POLLIN, 0},
                     {reading_data ? data_fd_ : -1, POLLIN, 0}};
    int wait_ms = 100;
    if (spec_.timeout_ms) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0)
        return fail("timed out after " + std::to_string(spec_.timeout_ms / 1000) + " s copying " +
                    where() + " (" + std::to_string(received_) + " bytes came)");
      wait_ms = static_cast<int>(std::min<int64_t>(wait_ms, left.count()));
    }
    if (poll(fds, 3, wait_ms) < 0 && errno != EINTR) return fail(std::strerror(errno));
    job_.progress_tick();
    if (fds[0].revents & POLLIN) {
      proto::JobFinished done = fail("cancelled after " + std::to_string(received_) +
                                     " bytes; the partial file is removed");
      done.state = proto::JobState::kCancelled;
      return done;
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      char text[4096];
      const ssize_t n = read(err_fd_, text, sizeof text);
      std::vector<std::string> lines;
      if (n > 0) {
        splitter.feed(std::string_view(text, static_cast<size_t>(n)), lines);
      } else if (n == 0 || errno != EAGAIN) {
        splitter.finish(lines);
        err_open = false;
      }
      for (const auto& line : lines)
        if (auto error = on_stderr_line(line)) return fail(*error);
    }
    if (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = read(data_fd_, data.data(), data.size());
      if (n > 0) {
        if (auto error = take(data.data(), static_cast<size_t>(n))) return fail(*error);
      } else if (n == 0 || errno != EINTR) {
        data_open = false;
      }
    }
    // The far side ended before saying its size: nothing of the data will come.
    if (!err_open && !size_) data_open = false;
  }
  const int ssh_exit = ssh_.wait();
  const int decoder_exit = decoder_.wait();
  if (ssh_exit != 0 && !refusal_.empty()) return fail("cannot copy " + where() + ": " + refusal_);
  if (ssh_exit != 0)
    return fail("the copy of " + where() + " failed (" +
                (ssh_exit == 255 ? "ssh could not reach it" : describe_exit(ssh_exit)) +
                "): " + far_errors());
  if (decoder_exit > 0) {
    const std::string said = read_file(job_.dir() + "/decoder.err").value_or("");
    return fail("the " + codec_ + " stream from " + where() + " was damaged (" + codec_ + " -d: " +
                (said.empty() ? describe_exit(decoder_exit) : said.substr(0, said.find('\n'))) +
                ")");
  }
  if (!size_ || far_hash_.empty())
    return fail("the far side of " + where() + " did not say its " + (size_ ? "checksum" : "size") +
                ": " + far_errors());
  if (received_ != *size_)
    return fail(where() + " is " + std::to_string(*size_) + " bytes but " +
                std::to_string(received_) + " came (read error or cut stream); " + spec_.to +
                " is as it was");
  if (auto error = flush()) return fail(*error);
  if (ftruncate(file_fd_, static_cast<off_t>(*size_)) != 0 || fsync(file_fd_) != 0)
    return fail("cannot finish " + partial() + ": " + std::strerror(errno));
  const std::string received = received_hash_.hex_digest();
  const std::string written = hash_file(partial());
  if (received != far_hash_ || written != far_hash_)
    return fail("checksums differ for " + where() + ": sent " + far_hash_ + ", received " +
                received + ", written " + (written.empty() ? "(unreadable)" : written) + "; " +
                spec_.to + " is as it was");
  fstat(file_fd_, &st);
  if (rename(partial().c_str(), spec_.to.c_str()) != 0)
    return fail("cannot rename " + partial() + " to " + spec_.to + ": " + std::strerror(errno));
  kept_ = true;
  if (const int dir_fd = open(dir.empty() ? "/" : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
  job_.flush_progress();
  const double seconds = std::chrono::duration<double>(Clock::now() - began).count();
  job_.log(proto::Stream::kAgent, "copied " + where() + " to " + spec_.to + ": " +
                                      std::to_string(*size_) + " bytes, sha256 " + far_hash_ +
                                      " on both ends");
  const Json result = {{"volume", spec_.volume},
                       {"source_host", spec_.source_host},
                       {"from", spec_.from},
                       {"to", spec_.to},
                       {"size", *size_},
                       {"sha256", far_hash_},
                       {"codec", codec_},
                       {"allocated", static_cast<uint64_t>(st.st_blocks) * 512},
                       {"seconds", std::round(seconds * 1000) / 1000}};
  return {job_.job_id(), 0, proto::JobState::kSucceeded, 0, "", result.dump()};
}

}  // namespace

bool validate_image_spec(std::string_view spec, std::string& error) {
  return parse(spec, error).has_value();
}

proto::JobFinished run_image(std::string_view text, JobContext& job) {
  std::string error;
  const std::optional<ImageSpec> spec = parse(text, error);
  if (!spec) return failed_result(job.job_id(), error);
  if (job.cancel_requested()) return cancelled_before_start(job);
  const int signal_fd = cancel_signal_fd(error);
  if (signal_fd < 0) return failed_result(job.job_id(), error);
  proto::JobFinished done = ImageCopy(*spec, job).run(signal_fd);
  close(signal_fd);
  return done;
}

}  // namespace cutpilot::agent
