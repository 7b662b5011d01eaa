// The cockpit <-> agent protocol: every message type, in one place.
//
// Bump kProtocolVersion if any message below is added, removed or changes its
// fields: the handshake refuses a peer that speaks another version.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cutpilot::proto {

// The protocol version both ends must speak (5: Progress.estimate_ms).
inline constexpr uint32_t kProtocolVersion = 5;
// The largest frame body (type byte + fields) either end accepts or sends.
inline constexpr uint32_t kMaxFrameBytes = 1u << 20;
// The 4-byte big-endian length prefix that starts every frame.
inline constexpr uint32_t kFrameHeaderBytes = 4;

// Which output stream a log line came from (the `stream` field of a log event).
enum class Stream : uint8_t { kStdout = 0, kStderr = 1, kAgent = 2 };

// How a job ended.
enum class JobState : uint8_t {
  kRunning = 0,
  kSucceeded = 1,
  kFailed = 2,
  kCancelled = 3,
  kTimedOut = 4,
};

// Why the agent (or the cockpit's decoder) sent an error.
enum class ErrorCode : uint8_t {
  kMalformed = 1,    // a frame or field could not be decoded
  kTooLarge = 2,     // a frame exceeded kMaxFrameBytes
  kVersion = 3,      // the peer speaks another protocol version
  kUnsupported = 4,  // a request this agent does not handle
  kBadRequest = 5,   // a well-formed request that cannot be honoured
  kUnknownJob = 6,   // a job id the agent has no record of: never started there, or its
                     // spool was acknowledged or expired (an Attach never starts a job)
  kInternal = 7,     // the agent failed on its own side
};

// ---- Requests: cockpit -> agent ----

// Opens a session; the agent answers Ready or Error(kVersion).
struct Hello {
  uint32_t protocol = kProtocolVersion;
  std::string client;  // "cutpilot 0.1.0"
  template <class F>
  void visit(F&& f) {
    f("protocol", protocol);
    f("client", client);
  }
  bool operator==(const Hello&) const = default;
};

// Starts a job, or returns the existing one when job_id is already known.
struct StartJob {
  std::string job_id;  // run id + step id + host, chosen by the cockpit
  std::string kind;    // "exec", "file", "sync", "db", "health"
  std::string spec;    // the kind's parameters, as JSON text
  template <class F>
  void visit(F&& f) {
    f("job_id", job_id);
    f("kind", kind);
    f("spec", spec);
  }
  bool operator==(const StartJob&) const = default;
};

// Asks the agent to stop a job (SIGTERM, then SIGKILL after a grace period).
struct CancelJob {
  std::string job_id;
  template <class F>
  void visit(F&& f) {
    f("job_id", job_id);
  }
  bool operator==(const CancelJob&) const = default;
};

// Asks for every job the agent knows; answered by JobList.
struct ListJobs {
  template <class F>
  void visit(F&&) {}
  bool operator==(const ListJobs&) const = default;
};

// Streams a job's events with a sequence number greater than after_seq. Never starts a job:
// an id the agent has no spool for is answered Error(kUnknownJob).
struct Attach {
  std::string job_id;
  uint64_t after_seq = 0;
  template <class F>
  void visit(F&& f) {
    f("job_id", job_id);
    f("after_seq", after_seq);
  }
  bool operator==(const Attach&) const = default;
};

// Confirms the cockpit has recorded a finished job; its spool may go.
struct Ack {
  std::string job_id;
  uint64_t seq = 0;
  template <class F>
  void visit(F&& f) {
    f("job_id", job_id);
    f("seq", seq);
  }
  bool operator==(const Ack&) const = default;
};

// Liveness probe; answered by Pong with the same token.
struct Ping {
  uint64_t token = 0;
  template <class F>
  void visit(F&& f) {
    f("token", token);
  }
  bool operator==(const Ping&) const = default;
};

// Asks for the host's facts (OS, resources, tools); answered by HostFacts.
struct Facts {
  std::vector<std::string> paths;  // report free disk for these too (besides "/")
  template <class F>
  void visit(F&& f) {
    f("paths", paths);
  }
  bool operator==(const Facts&) const = default;
};

// ---- Events: agent -> cockpit ----

// The agent's answer to Hello.
struct Ready {
  uint32_t protocol = kProtocolVersion;
  std::string agent_version;
  uint32_t pid = 0;
  template <class F>
  void visit(F&& f) {
    f("protocol", protocol);
    f("agent_version", agent_version);
    f("pid", pid);
  }
  bool operator==(const Ready&) const = default;
};

// A job was started (existing = true: it had been started before, not again).
struct JobStarted {
  std::string job_id;
  uint64_t seq = 0;
  bool existing = false;
  template <class F>
  void visit(F&& f) {
    f("job_id", job_id);
    f("seq", seq);
    f("existing", existing);
  }
  bool operator==(const JobStarted&) const = default;
};

// How far a job has come; counters never go backwards within a job.
struct Progress {
  std::string job_id;
  uint64_t seq = 0;
  uint64_t bytes = 0;
  std::optional<uint64_t> total;  // unknown until measured
  uint64_t rate = 0;              // bytes per second
  uint64_t files = 0;
  std::optional<uint64_t> files_total;
  std::string detail;  // e.g. the table being copied
  // The job's own estimate of what comes after it, in milliseconds: a streaming replica's of
  // its catch-up.
  std::optional<uint64_t> estimate_ms;
  template <class F>
  void visit(F&& f) {
    f("job_id", job_id);
    f("seq", seq);
    f("bytes", bytes);
    f("total", total);
    f("rate", rate);
    f("files", files);
    f("files_total", files_total);
    f("detail", detail);
    f("estimate_ms", estimate_ms);
  }
  bool operator==(const Progress&) const = default;
};

// One line of a job's output, or a note from the agent about the job.
struct LogLine {
  std::string job_id;
  uint64_t seq = 0;
  Stream stream = Stream::kStdout;
  std::string line;
  template <class F>
  void visit(F&& f) {
    f("job_id", job_id);
    f("seq", seq);
    f("stream", stream);
    f("line", line);
  }
  bool operator==(const LogLine&) const = default;
};

// A job ended; always delivered, never coalesced away.
struct JobFinished {
  std::string job_id;
  uint64_t seq = 0;
  JobState state = JobState::kSucceeded;
  int32_t exit_code = 0;
  std::string error;
  std::string result;  // the kind's findings as JSON (estimate sizes, verify differences...)
  template <class F>
  void visit(F&& f) {
    f("job_id", job_id);
    f("seq", seq);
    f("state", state);
    f("exit_code", exit_code);
    f("error", error);
    f("result", result);
  }
  bool operator==(const JobFinished&) const = default;
};

// The state of one watched thing: a container, a URL or a port.
struct Health {
  std::string job_id;
  uint64_t seq = 0;
  std::string target;
  std::string status;
  std::string detail;
  template <class F>
  void visit(F&& f) {
    f("job_id", job_id);
    f("seq", seq);
    f("target", target);
    f("status", status);
    f("detail", detail);
  }
  bool operator==(const Health&) const = default;
};

// The answer to Ping.
struct Pong {
  uint64_t token = 0;
  template <class F>
  void visit(F&& f) {
    f("token", token);
  }
  bool operator==(const Pong&) const = default;
};

// A request failed, or the agent is about to close the stream.
struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  std::string job_id;  // empty when the error is not about one job
  template <class F>
  void visit(F&& f) {
    f("code", code);
    f("message", message);
    f("job_id", job_id);
  }
  bool operator==(const Error&) const = default;
};

// One job as JobList reports it.
struct JobSummary {
  std::string job_id;
  std::string kind;
  JobState state = JobState::kRunning;
  uint64_t last_seq = 0;
  template <class F>
  void visit(F&& f) {
    f("job_id", job_id);
    f("kind", kind);
    f("state", state);
    f("last_seq", last_seq);
  }
  bool operator==(const JobSummary&) const = default;
};

// The answer to ListJobs.
struct JobList {
  std::vector<JobSummary> jobs;
  template <class F>
  void visit(F&& f) {
    f("jobs", jobs);
  }
  bool operator==(const JobList&) const = default;
};

// Free space of one filesystem, as the agent measured it.
struct DiskFree {
  std::string path;
  uint64_t free = 0;   // bytes available to unprivileged users
  uint64_t total = 0;  // bytes
  std::string error;   // why it could not be measured (e.g. the path does not exist)
  template <class F>
  void visit(F&& f) {
    f("path", path);
    f("free", free);
    f("total", total);
    f("error", error);
  }
  bool operator==(const DiskFree&) const = default;
};

// What a host is: the answer to Facts.
struct HostFacts {
  std::string hostname;
  std::string os;  // PRETTY_NAME from /etc/os-release
  std::string kernel;
  std::string arch;
  uint32_t cores = 0;
  uint64_t mem_total = 0;      // bytes
  uint64_t mem_available = 0;  // bytes
  uint32_t load1_milli = 0;    // 1-minute load average x 1000
  std::vector<DiskFree> disks;
  std::vector<std::string> tools;  // the tools found, of those the agent looks for
  std::string docker_socket;       // a Docker API socket that exists, or ""
  uint32_t kept_spools = 0;        // finished jobs' spools nobody acknowledged (kept until they
                                   // expire: agents/spool.h)
  template <class F>
  void visit(F&& f) {
    f("hostname", hostname);
    f("os", os);
    f("kernel", kernel);
    f("arch", arch);
    f("cores", cores);
    f("mem_total", mem_total);
    f("mem_available", mem_available);
    f("load1_milli", load1_milli);
    f("disks", disks);
    f("tools", tools);
    f("docker_socket", docker_socket);
    f("kept_spools", kept_spools);
  }
  bool operator==(const HostFacts&) const = default;
};

// Every message type: wire id, struct, name in logs. Ids below 64 are requests, the rest events.
// Never reuse an id.
#define CUTPILOT_MESSAGES(X)         \
  X(1, Hello, "hello")               \
  X(2, StartJob, "start-job")        \
  X(3, CancelJob, "cancel-job")      \
  X(4, ListJobs, "list-jobs")        \
  X(5, Attach, "attach")             \
  X(6, Ack, "ack")                   \
  X(7, Ping, "ping")                 \
  X(8, Facts, "facts")               \
  X(64, Ready, "ready")              \
  X(65, JobStarted, "job-started")   \
  X(66, Progress, "progress")        \
  X(67, LogLine, "log")              \
  X(68, JobFinished, "job-finished") \
  X(69, Health, "health")            \
  X(70, Pong, "pong")                \
  X(71, Error, "error")              \
  X(72, JobList, "job-list")         \
  X(73, HostFacts, "host-facts")

// The wire id of each message type.
enum class MessageType : uint8_t {
#define CUTPILOT_ENUM(id, name, text) k##name = id,
  CUTPILOT_MESSAGES(CUTPILOT_ENUM)
#undef CUTPILOT_ENUM
};

// Any one message. The order follows CUTPILOT_MESSAGES (checked in protocol.cpp).
using Message =
    std::variant<Hello, StartJob, CancelJob, ListJobs, Attach, Ack, Ping, Facts, Ready, JobStarted,
                 Progress, LogLine, JobFinished, Health, Pong, Error, JobList, HostFacts>;

// The wire id of each message struct.
template <class T>
struct MessageTraits;
#define CUTPILOT_TRAITS(id, name, text)                        \
  template <>                                                  \
  struct MessageTraits<name> {                                 \
    static constexpr MessageType kType = MessageType::k##name; \
  };
CUTPILOT_MESSAGES(CUTPILOT_TRAITS)
#undef CUTPILOT_TRAITS

// The wire id of a message.
MessageType type_of(const Message& message);
// The message's name as logs show it ("progress", "job-finished"); "unknown" otherwise.
std::string_view type_name(MessageType type);
// Whether a wire byte names a known message type.
bool is_known_type(uint8_t type);

}  // namespace cutpilot::proto
