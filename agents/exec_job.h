// The `exec` job kind: a command with its output streamed as lines.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agents/runner.h"

namespace cutpilot::agent {

// An exec job's parameters, from spec JSON {"argv": [...]} or {"shell": "..."},
// with optional "env" (object of strings), "cwd" and "timeout_ms".
struct ExecSpec {
  std::vector<std::string> argv;  // the command; for a shell job: sh -c SHELL
  std::map<std::string, std::string> env;
  std::string cwd;
  uint64_t timeout_ms = 0;  // 0: no timeout
};

// Parses an exec spec strictly; nullopt with error set when it is malformed.
std::optional<ExecSpec> parse_exec_spec(std::string_view json, std::string& error);

// The longest line kept; longer lines are cut and end with kCutMarker.
inline constexpr size_t kMaxLineBytes = 16 * 1024;
// What a cut line ends with.
inline constexpr std::string_view kCutMarker = " \u2026[cut]";

// Splits a stream into lines, cutting overlong ones.
class LineSplitter {
 public:
  // Appends bytes; each complete line (without its newline) goes to lines.
  void feed(std::string_view bytes, std::vector<std::string>& lines);
  // At EOF: the final partial line, if any.
  void finish(std::vector<std::string>& lines);

 private:
  std::string partial_;
  bool skipping_ = false;  // the rest of a line already cut
};

// Runs an exec job to the end: validates spec, streams output through sink, honours
// cancellation (SIGTERM/SIGINT to the runner) and the timeout.
proto::JobFinished run_exec(std::string_view spec, JobContext& job);

}  // namespace cutpilot::agent
