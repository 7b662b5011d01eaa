// Child processes the transport runs as argument vectors (never through a shell):
// the operator's ssh client (`ssh -G`, `ssh -V`, a jump host's `ssh -W`) and ssh-keygen.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace cutpilot::transport {

// What a finished command printed and how it ended.
struct CommandOutput {
  int exit_status = -1;  // -1 when it did not exit normally (or could not start)
  std::string out;
  std::string err;
  std::string error;  // why it could not run or was stopped (empty when it ran)
};

// Runs argv[0] (searched in PATH) with stdin from `input`, bounded by timeout.
CommandOutput run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                          const std::string& input = "");

// Runs argv_for(PORT) as run_command does, where PORT is a loopback port whose every
// connection is handed to a child running `proxy` (the connection as its stdin and
// stdout): ssh-keyscan reaching a host behind a jump host or a ProxyCommand.
CommandOutput run_command_through(const std::function<std::vector<std::string>(int)>& argv_for,
                                  const std::vector<std::string>& proxy,
                                  std::chrono::milliseconds timeout);

// A child whose stdin and stdout are one end of a socket pair (a ProxyCommand-like
// transport); its stderr goes to a pipe the owner can read for messages.
class ProxyProcess {
 public:
  ProxyProcess() = default;
  ~ProxyProcess();
  ProxyProcess(const ProxyProcess&) = delete;
  ProxyProcess& operator=(const ProxyProcess&) = delete;

  // Starts argv; false with error set when it cannot.
  bool start(const std::vector<std::string>& argv, std::string& error);
  // The parent's end of the socket (handed to libssh, which then owns it).
  int release_socket();
  // What the child wrote on stderr, trimmed; with wait, until it closes stderr
  // (bounded: the child has lost its socket by then and is exiting).
  std::string stderr_text(bool wait = false);
  // Whether start() ran the child.
  bool started() const { return started_; }
  // Whether the child is still running.
  bool running();

 private:
  pid_t pid_ = -1;
  int socket_ = -1;
  int err_ = -1;
  std::string err_text_;
  bool started_ = false;
};

}  // namespace cutpilot::transport
