// The job runner: the detached process (forked by serve) that runs one job to its end.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "transport/protocol.h"

namespace cutpilot::agent {

// The shortest time between two logged progress events of one job (at most 10 a second).
inline constexpr std::chrono::milliseconds kProgressEvery{100};

// The file descriptor on which the serve process hands the runner the job's spool directory,
// flock()ed: held for as long as the runner lives.
inline constexpr int kRunnerLockFd = 3;

// What a job kind's run function gets from the runner: its id and its event log.
class JobContext {
 public:
  // Events go to log_fd (O_APPEND) numbered from next_seq on; dir is the job's spool.
  JobContext(std::string job_id, std::string dir, int log_fd, uint64_t next_seq)
      : job_id_(std::move(job_id)), dir_(std::move(dir)), log_fd_(log_fd), next_seq_(next_seq) {}
  // Logs an event with the job's id and the next seq; false if the log cannot be written.
  bool emit(proto::Message event);
  // Logs one line of output (or an agent note) about the job.
  bool log(proto::Stream stream, std::string line);
  // Records progress; logged at most every kProgressEvery, the latest held back until then.
  void progress(proto::Progress update);
  // Logs held-back progress once kProgressEvery has passed (run_commands calls this).
  void progress_tick();
  // Logs held-back progress now (the runner does this before JobFinished).
  void flush_progress();
  // The job's id, as the cockpit chose it.
  const std::string& job_id() const { return job_id_; }
  // The job's spool directory (a kind may keep its working files there).
  const std::string& dir() const { return dir_; }
  // The seq the next event gets.
  uint64_t next_seq() const { return next_seq_; }
  // True when a cancel arrived before the runner could take signals (the spool's cancel file).
  bool cancel_requested() const { return cancel_requested_; }
  // Records an early cancel; run functions then stop before starting anything.
  void request_cancel() { cancel_requested_ = true; }

 private:
  std::string job_id_;
  std::string dir_;
  int log_fd_;
  uint64_t next_seq_;
  bool cancel_requested_ = false;
  std::optional<proto::Progress> held_;  // progress not logged yet
  std::chrono::steady_clock::time_point last_progress_{};
};

// A failed job result: no exit code, error says why.
proto::JobFinished failed_result(std::string job_id, std::string error, uint64_t seq = 0);

// A job that was cancelled before it started anything.
proto::JobFinished cancelled_before_start(const JobContext& job);

// A signalfd for the cancel signals the runner blocks (SIGTERM, SIGINT), for a kind that waits
// in poll(); -1 with error set when it cannot be had.
int cancel_signal_fd(std::string& error);
// True when a cancel signal arrives on signal_fd within wait_ms (0: only one already waiting);
// the signals read are consumed.
bool cancel_arrived(int signal_fd, int wait_ms);

// One job kind: its name, how to check a spec before claiming, how to run it.
struct JobKind {
  std::string_view name;
  bool (*validate)(std::string_view spec, std::string& error);
  proto::JobFinished (*run)(std::string_view spec, JobContext& job);
};

// The job kind called name, or nullptr when the agent has none.
const JobKind* find_job_kind(std::string_view name);
// The names of every job kind, comma-separated (for error messages).
std::string job_kind_names();

// Runs the job (kind, spec) whose spool is dir to the end and records JobFinished; the process
// exit status. Expects the job's lock, already held, on kRunnerLockFd; signals SIGTERM/SIGINT
// cancel the job.
int run_job(const std::string& dir, const JobKind& kind, const std::string& spec);

}  // namespace cutpilot::agent
