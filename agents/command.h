// Running a job's commands: each in its own process group, output read as lines,
// stopped as a whole on cancel (SIGTERM/SIGINT to the runner) or on a timeout.
#pragma once

#include <sys/types.h>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agents/runner.h"

namespace cutpilot::agent {

// One command to start: an argument vector (never a shell string unless argv says sh -c).
struct Command {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;  // added to the runner's environment
  std::string cwd;                         // "" : the runner's directory
  bool split_cr = false;                   // '\r' also ends a line (rsync's progress)
  // stdin: the stdout of commands[stdin_from] (pumped and counted by the runner, never
  // read as lines), after stdin_text; without either, /dev/null.
  std::optional<size_t> stdin_from;
  std::string stdin_text;  // e.g. a password line for `read` on the far side: never argv
  // Written after the piped input when its producer exited 0 (e.g. queries a restore runs
  // inside its transaction before it commits).
  std::function<std::string()> stdin_after;
  // When the producer exits non-zero, SIGTERM this command instead of ending its input (a
  // restore must not commit a stream cut short).
  bool stop_if_producer_fails = false;
  // Its stdout is read at most this often (0: as soon as anything arrives); lines wait in a
  // 1 MiB pipe meanwhile. A command that writes a line per file (rsync's progress for
  // 100,000 small files) then wakes the runner ~20 times a second, not once per line.
  std::chrono::milliseconds read_every{0};
};

// The longest line kept; longer lines are cut and end with kCutMarker.
inline constexpr size_t kMaxLineBytes = 16 * 1024;
// What a cut line ends with.
inline constexpr std::string_view kCutMarker = " \u2026[cut]";

// Splits a stream into lines, cutting overlong ones.
class LineSplitter {
 public:
  // split_cr: a carriage return ends a line too.
  explicit LineSplitter(bool split_cr = false) : split_cr_(split_cr) {}
  // Appends bytes; each complete line (without its terminator) goes to lines.
  void feed(std::string_view bytes, std::vector<std::string>& lines);
  // At EOF: the final partial line, if any.
  void finish(std::vector<std::string>& lines);

 private:
  std::string partial_;
  bool split_cr_;
  bool skipping_ = false;  // the rest of a line already cut
};

// Why a run of commands ended before they all exited by themselves.
enum class StopReason : uint8_t { kNone, kCancelled, kTimedOut };

// How one command ended.
struct CommandResult {
  std::optional<int> exit_code;  // 128 + signal when killed; unset when it never ran
  std::string start_error;       // why it could not start ("cannot run rsync: ...")
};

// How a run of commands ended.
struct RunResult {
  std::vector<CommandResult> commands;  // in the order given
  StopReason stop = StopReason::kNone;
};

// Gets each output line: which command (index), which stream, the line.
using LineSink = std::function<void(size_t index, proto::Stream stream, std::string line)>;

// How run_commands waits.
struct RunOptions {
  std::chrono::milliseconds timeout{0};  // 0: none; on expiry every command is stopped
  std::function<void()> tick;            // called at least every 100 ms while commands run
  // Told how many bytes went from commands[producer] into its consumer's stdin.
  std::function<void(size_t producer, uint64_t bytes)> piped;
  // Told once commands[index] has exited and all its output was delivered; may return
  // commands to start at once (no stdin_from), whose indexes follow the others' in order.
  std::function<std::vector<Command>(size_t index, int exit_code)> finished;
  // Asked after each round of output and exits (never once stopped): commands to start now
  // (no stdin_from), e.g. a chunk of a list that is still being read.
  std::function<std::vector<Command>()> ready;
};

// Runs commands concurrently until all have exited and their output is read.
// A cancel or the timeout sends SIGTERM to every group, SIGKILL after a grace period.
// Expects SIGTERM, SIGINT and SIGCHLD blocked (the runner does this).
RunResult run_commands(const std::vector<Command>& commands, const LineSink& sink,
                       const RunOptions& options, JobContext& job);

// A command left running beside the job's work (an ssh tunnel): its own process group,
// its output into a log file; stopped (TERM, then KILL) and reaped when destroyed.
class Background {
 public:
  // Starts command with stdout and stderr appended to log_path; error says why it could not.
  Background(const Command& command, const std::string& log_path, std::string& error);
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  // True while it runs (reaps it once it exited).
  bool running();

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
};

// Starts command in its own process group with the given descriptors as stdin (-1: /dev/null),
// stdout and stderr; its pid, or -1 with error saying why (for a caller that talks to it).
pid_t spawn_command(const Command& command, int in, int out, int err, std::string& error);

// True when name is an executable in this process's PATH.
bool on_path(const std::string& name);

// A command's exit as the operator reads it: "exit code 3".
std::string describe_exit(int exit_code);

}  // namespace cutpilot::agent
