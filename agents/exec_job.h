// The `exec` job kind: a command with its output streamed as lines.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agents/command.h"
#include "agents/runner.h"

namespace cutpilot::agent {

// An exec job's parameters, from spec JSON {"argv": [...]} or {"shell": "..."},
// with optional "env" (object of strings), "cwd", "timeout_ms" and "sudo".
struct ExecSpec {
  Command command;          // for a shell job: sh -c SHELL (sudo is added by command_to_run)
  uint64_t timeout_ms = 0;  // 0: no timeout
  bool sudo = false;        // run as root through `sudo -n` (never prompts)
};

// Parses an exec spec strictly; nullopt with error set when it is malformed.
std::optional<ExecSpec> parse_exec_spec(std::string_view json, std::string& error);

// Who the agent runs as: root or not, and the login user sudo started it for.
struct AgentIdentity {
  bool root = false;
  std::string sudo_uid, sudo_gid;  // SUDO_UID/SUDO_GID when sudo made a login user root
  std::string login_home;          // that user's HOME (kLoginHomeEnv), when known
  // The running agent's identity, from its euid and environment.
  static AgentIdentity current();
};

// The command as it runs: with sudo, `sudo -n -- env VARS... argv`, unless the agent is root
// already; without sudo in an agent that sudo made root, as the login user (setpriv).
Command command_to_run(const ExecSpec& spec, const AgentIdentity& who);

// Runs one command to the end with its output logged as the job's lines; the job's result.
proto::JobFinished run_logged(const Command& command, uint64_t timeout_ms, JobContext& job);

// Runs an exec job to the end: validates spec, streams output, honours cancel and timeout.
proto::JobFinished run_exec(std::string_view spec, JobContext& job);

}  // namespace cutpilot::agent
