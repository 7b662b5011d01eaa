// A SQL client kept open on the source for the whole copy: it opens the snapshot the dump
// reads (PostgreSQL exports it; MariaDB holds a read lock until the dump's own consistent
// snapshot has started), measures the database and counts its rows inside that snapshot.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agents/command.h"
#include "agents/runner.h"

namespace cutpilot::agent {

// One client process we write SQL to and read rows from as it answers.
class DbSession {
 public:
  // Starts command (its stdin_text is written first); its stderr goes to err_path.
  DbSession(const Command& command, std::string err_path);
  // Stops the client (its transaction ends without a commit) and reaps it.
  ~DbSession();
  DbSession(const DbSession&) = delete;
  DbSession& operator=(const DbSession&) = delete;

  // Queues SQL for its stdin and writes what the pipe takes now, without waiting.
  void write(std::string_view sql);
  // Output lines up to (not including) the first that is marker; nullopt with error set when
  // the client ended first, the deadline passed or the job was cancelled.
  std::optional<std::vector<std::string>> read_until(std::string_view marker,
                                                     std::chrono::steady_clock::time_point deadline,
                                                     std::string& error);
  // The last lines it wrote to stderr, joined with " | " (to say why it failed).
  std::string complaints() const;

 private:
  // Moves queued input and ready output until deadline (or once, without waiting, when
  // wait is false); false when the client exited or the job was cancelled.
  bool pump(std::chrono::steady_clock::time_point deadline, bool wait);

  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
  std::string err_path_;
  std::string pending_;  // queued for stdin
  std::vector<std::string> lines_;
  LineSplitter splitter_;
  std::string start_error_;
  bool ended_ = false;
};

}  // namespace cutpilot::agent
