#include "transport/deploy.h"

#include <sys/stat.h>

#include "cutpilot/version.h"
#include "transport/codec.h"
#include "transport/local_cache.h"
#include "transport/sha256.h"

namespace cutpilot::transport {
namespace {

using Clock = std::chrono::steady_clock;

// Runs the cached agent when it is known good; otherwise says what is missing.
// One round trip when the agent is already there. Wrapped in /bin/sh so that a
// login shell of another kind (fish, csh) does not matter.
//
// Hashing 6 MB on every connect costs more than the rest of the launch, so a
// verified copy gets a stamp beside it: its size, inode and ctime (with
// nanoseconds). Any write, chmod or replacement changes the ctime or the inode,
// and then the copy is hashed again before it may run.
std::string launch_script(const AgentBinary& agent, bool sudo) {
  // Under sudo the agent's HOME is root's; it is told the login home, whose authorized_keys
  // the run's migration keys go to.
  const std::string run =
      sudo ? "exec sudo -n \"$f\" serve --login-home \"$HOME\"" : "exec \"$f\" serve";
  const std::string script =
      std::string("f=\"") + kRemoteCacheDir + "/" + agent.remote_name() +
      "\"; s=$(stat -c '%s %i %z' \"$f\" 2>/dev/null) || s=; "
      "if [ -n \"$s\" ] && [ -x \"$f\" ] && read -r k 2>/dev/null < \"$f.stamp\" && "
      "[ \"$k\" = \"$s\" ]; then " +
      run +
      "; fi; "
      "a=$(uname -m); "
      "if [ \"$a\" != x86_64 ]; then echo \"CUTPILOT-ARCH $a\"; exit 0; fi; "
      "if [ -x \"$f\" ] && [ \"$(sha256sum < \"$f\" | cut -c1-64)\" = " +
      agent.sha256 + " ]; then { [ -n \"$s\" ] && echo \"$s\" > \"$f.stamp\"; } 2>/dev/null; " +
      run + "; fi; echo CUTPILOT-UPLOAD";
  return "exec /bin/sh -c " + shell_quote(script);
}

// Writes stdin to a temporary file, checks its hash, then renames it into place.
std::string upload_script(const AgentBinary& agent) {
  const std::string script = std::string("set -e; umask 077; d=\"") + kRemoteCacheDir +
                             "\"; mkdir -p \"$d\"; t=\"$d/." + agent.remote_name() +
                             ".$$\"; trap 'rm -f \"$t\"' EXIT; cat > \"$t\"; "
                             "h=$(sha256sum < \"$t\" | cut -c1-64); "
                             "if [ \"$h\" != " +
                             agent.sha256 +
                             " ]; then echo \"uploaded copy has sha256 $h\" >&2; exit 3; fi; "
                             "chmod 700 \"$t\"; mv -f \"$t\" \"$d/" +
                             agent.remote_name() + "\"; trap - EXIT";
  return "exec /bin/sh -c " + shell_quote(script);
}

enum class Launch { kReady, kNeedsUpload, kFailed };

std::string last_lines(const std::string& text) {
  std::string trimmed = text;
  while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == '\r'))
    trimmed.pop_back();
  if (trimmed.size() > 600) trimmed = "…" + trimmed.substr(trimmed.size() - 600);
  return trimmed;
}

Launch launch(SshSession& session, const AgentBinary& agent, RunningAgent& out, std::string& error,
              Clock::time_point deadline) {
  const std::string& host = session.target().name;
  ssh_channel channel = session.start(launch_script(agent, session.target().sudo));
  if (!channel) {
    error = session.error();
    return Launch::kFailed;
  }
  proto::HandshakeScanner scanner(proto::kProtocolVersion, std::string("cutpilot ") + kVersion);
  std::string stderr_text;
  char buffer[16 * 1024];
  auto status = proto::HandshakeScanner::Status::kNeedMore;
  bool eof = false;
  while (status == proto::HandshakeScanner::Status::kNeedMore && !eof) {
    if (Clock::now() > deadline) {
      error = host + ": the agent did not answer in time";
      break;
    }
    const int n = ssh_channel_read_timeout(channel, buffer, sizeof buffer, 0, 50);
    if (n == SSH_ERROR) {
      error =
          host + ": connection lost while starting the agent: " + ssh_get_error(session.handle());
      break;
    }
    if (n > 0) status = scanner.feed(std::string_view(buffer, static_cast<size_t>(n)));
    int e;
    while ((e = ssh_channel_read_nonblocking(channel, buffer, sizeof buffer, 1)) > 0)
      stderr_text.append(buffer, static_cast<size_t>(e));
    eof = n == 0 && ssh_channel_is_eof(channel);
  }
  if (status == proto::HandshakeScanner::Status::kReady) {
    out.channel = channel;
    out.leftover = scanner.leftover();
    out.preamble = scanner.preamble();
    out.identity = scanner.agent();
    return Launch::kReady;
  }
  ssh_channel_close(channel);
  ssh_channel_free(channel);
  if (status == proto::HandshakeScanner::Status::kError) {
    error = host + ": " + scanner.error();
    return Launch::kFailed;
  }
  if (!error.empty()) return Launch::kFailed;
  for (const auto& line : scanner.preamble()) {
    if (line == "CUTPILOT-UPLOAD") return Launch::kNeedsUpload;
    if (line.rfind("CUTPILOT-ARCH ", 0) == 0) {
      error = host + ": unsupported architecture " + line.substr(14) +
              " (cutpilot-agent is built for x86_64 only)";
      return Launch::kFailed;
    }
  }
  error = host + ": the agent exited before its ready line";
  if (!stderr_text.empty()) error += ": " + last_lines(stderr_text);
  if (session.target().sudo && stderr_text.find("password") != std::string::npos)
    error += " (sudo = true needs passwordless sudo for the agent)";
  return Launch::kFailed;
}

// Sends Hello and waits for Ready (or the agent's Error) on a fresh agent channel.
bool greet(SshSession& session, RunningAgent& agent, std::string& error,
           Clock::time_point deadline) {
  const std::string& host = session.target().name;
  const std::string hello = proto::encode_frame(
      proto::Hello{proto::kProtocolVersion, std::string("cutpilot ") + kVersion});
  if (ssh_channel_write(agent.channel, hello.data(), static_cast<uint32_t>(hello.size())) !=
      static_cast<int>(hello.size())) {
    error = host + ": cannot talk to the agent: " + ssh_get_error(session.handle());
    return false;
  }
  proto::FrameDecoder decoder;
  decoder.feed(agent.leftover);
  char buffer[16 * 1024];
  for (;;) {
    proto::Message message;
    const auto status = decoder.next(message);
    if (status == proto::FrameDecoder::Status::kError) {
      error = host + ": bad frame from the agent: " + decoder.error();
      return false;
    }
    if (status == proto::FrameDecoder::Status::kMessage) {
      if (std::holds_alternative<proto::Ready>(message)) break;
      if (const auto* e = std::get_if<proto::Error>(&message)) {
        error = host + ": the agent refused the session: " + e->message;
        return false;
      }
      error = host + ": the agent answered hello with " +
              std::string(proto::type_name(proto::type_of(message)));
      return false;
    }
    if (Clock::now() > deadline) {
      error = host + ": the agent did not answer hello in time";
      return false;
    }
    const int n = ssh_channel_read_timeout(agent.channel, buffer, sizeof buffer, 0, 50);
    if (n == SSH_ERROR || (n == 0 && ssh_channel_is_eof(agent.channel))) {
      error = host + ": the agent closed the channel during the handshake";
      return false;
    }
    if (n > 0) decoder.feed(std::string_view(buffer, static_cast<size_t>(n)));
  }
  // Whatever followed Ready stays for the caller's decoder (none is expected).
  agent.leftover.clear();
  return true;
}

}  // namespace

std::optional<AgentBinary> AgentBinary::load(const std::string& path, std::string& error) {
  AgentBinary agent;
  agent.path = path;
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
    error = "cannot read the agent binary " + path;
    return std::nullopt;
  }
  // One entry per agent path; it holds the identity of the file that was hashed.
  const std::string entry = "agent-sha256/" + sha256_hex(path).substr(0, 16);
  const std::string identity = file_identity(st);
  if (const auto cached = cache_read(entry)) {
    const size_t space = cached->rfind(' ');
    if (space != std::string::npos && cached->compare(0, space, identity) == 0 &&
        cached->size() == space + 1 + 64) {
      agent.sha256 = cached->substr(space + 1);
      return agent;
    }
  }
  auto bytes = read_file(path);
  if (!bytes || bytes->empty()) {
    error = "cannot read the agent binary " + path;
    return std::nullopt;
  }
  agent.sha256 = sha256_hex(*bytes);
  agent.bytes = std::move(*bytes);
  // Only a file that did not change while it was read is remembered.
  struct stat after;
  if (stat(path.c_str(), &after) == 0 && file_identity(after) == identity)
    cache_write(entry, identity + " " + agent.sha256);
  return agent;
}

bool start_agent(SshSession& session, const AgentBinary& agent, RunningAgent& out,
                 std::string& error, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  Launch result = launch(session, agent, out, error, deadline);
  if (result == Launch::kNeedsUpload) {
    std::string read_now;  // the bytes, when load() took only the hash from its cache
    if (agent.bytes.empty()) {
      auto bytes = read_file(agent.path);
      if (!bytes || sha256_hex(*bytes) != agent.sha256) {
        error = session.target().name + ": the agent binary " + agent.path +
                (bytes ? " changed since the cockpit started" : " can no longer be read");
        return false;
      }
      read_now = std::move(*bytes);
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    ExecResult upload =
        session.run(upload_script(agent), agent.bytes.empty() ? read_now : agent.bytes, left);
    if (!upload.error.empty()) {
      error = upload.error;
      return false;
    }
    if (upload.exit_status != 0) {
      error = session.target().name + ": uploading the agent to " + kRemoteCacheDir + "/" +
              agent.remote_name() + " failed (exit " + std::to_string(upload.exit_status) +
              "): " + last_lines(upload.err);
      return false;
    }
    out.uploaded = true;
    result = launch(session, agent, out, error, deadline);
    if (result == Launch::kNeedsUpload) {
      error = session.target().name + ": the uploaded agent does not verify on the host";
      return false;
    }
  }
  if (result != Launch::kReady) return false;
  if (greet(session, out, error, deadline)) return true;
  ssh_channel_close(out.channel);
  ssh_channel_free(out.channel);
  out.channel = nullptr;
  return false;
}

}  // namespace cutpilot::transport
