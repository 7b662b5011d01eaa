#include "agents/exec_job.h"

#include <unistd.h>

#include <cstdlib>

#include <nlohmann/json.hpp>

#include "agents/peer_job.h"

namespace cutpilot::agent {
namespace {

using Json = nlohmann::json;

bool fail(std::string& error, std::string message) {
  error = std::move(message);
  return false;
}

bool parse_into(const Json& j, ExecSpec& spec, std::string& error) {
  if (!j.is_object()) return fail(error, "the exec spec must be a JSON object");
  Command& command = spec.command;
  for (const auto& [key, value] : j.items()) {
    if (key == "argv") {
      if (!value.is_array() || value.empty())
        return fail(error, "\"argv\" must be a non-empty array of strings");
      for (const auto& arg : value) {
        if (!arg.is_string()) return fail(error, "\"argv\" must be a non-empty array of strings");
        command.argv.push_back(arg.get<std::string>());
      }
    } else if (key == "shell") {
      if (!value.is_string() || value.get<std::string>().empty())
        return fail(error, "\"shell\" must be a non-empty string");
    } else if (key == "env") {
      if (!value.is_object()) return fail(error, "\"env\" must be an object of strings");
      for (const auto& [name, v] : value.items()) {
        if (!v.is_string() || name.empty() || name.find('=') != std::string::npos)
          return fail(error,
                      "\"env\" must map variable names to strings (bad entry \"" + name + "\")");
        command.env[name] = v.get<std::string>();
      }
    } else if (key == "cwd") {
      if (!value.is_string()) return fail(error, "\"cwd\" must be a string");
      command.cwd = value.get<std::string>();
    } else if (key == "timeout_ms") {
      if (!value.is_number_unsigned())
        return fail(error, "\"timeout_ms\" must be a non-negative integer");
      spec.timeout_ms = value.get<uint64_t>();
    } else if (key == "sudo") {
      if (!value.is_boolean()) return fail(error, "\"sudo\" must be true or false");
      spec.sudo = value.get<bool>();
    } else {
      return fail(error, "unknown exec field \"" + key +
                             "\" (expected argv or shell, env, cwd, timeout_ms, sudo)");
    }
  }
  const bool has_argv = j.contains("argv"), has_shell = j.contains("shell");
  if (has_argv == has_shell) return fail(error, "the exec spec needs exactly one of argv or shell");
  if (has_shell) command.argv = {"/bin/sh", "-c", j["shell"].get<std::string>()};
  return true;
}

}  // namespace

AgentIdentity AgentIdentity::current() {
  AgentIdentity who;
  who.root = geteuid() == 0;
  const char* uid = std::getenv("SUDO_UID");
  const char* gid = std::getenv("SUDO_GID");
  if (who.root && uid && gid && *uid && *gid && std::string(uid) != "0") {
    who.sudo_uid = uid;
    who.sudo_gid = gid;
    if (const char* home = std::getenv(kLoginHomeEnv)) who.login_home = home;
  }
  return who;
}

Command command_to_run(const ExecSpec& spec, const AgentIdentity& who) {
  // Started by sudo for a login user, the agent is root: a command that says sudo = false
  // runs as that user (setpriv, with its groups and HOME), never as root by accident.
  if (!spec.sudo && !who.sudo_uid.empty()) {
    Command command = spec.command;
    std::vector<std::string> argv = {"setpriv", "--reuid=" + who.sudo_uid,
                                     "--regid=" + who.sudo_gid, "--init-groups", "--"};
    argv.insert(argv.end(), command.argv.begin(), command.argv.end());
    command.argv = std::move(argv);
    if (!who.login_home.empty() && !command.env.count("HOME")) command.env["HOME"] = who.login_home;
    return command;
  }
  // An agent under sudo is root already: a second sudo would only swap the login's PATH
  // for root's secure_path, and the operator's `sudo CMD` runs with the login's sudo rules.
  if (!spec.sudo || who.root) return spec.command;
  // sudo resets the environment: the variables travel as env(1) arguments instead.
  Command command = spec.command;
  std::vector<std::string> argv = {"sudo", "-n", "--", "env"};
  for (const auto& [name, value] : command.env)
    argv.push_back(name + "=" + value);
  argv.insert(argv.end(), command.argv.begin(), command.argv.end());
  command.argv = std::move(argv);
  command.env.clear();
  return command;
}

std::optional<ExecSpec> parse_exec_spec(std::string_view json, std::string& error) {
  const Json j = Json::parse(json.begin(), json.end(), nullptr, false);
  if (j.is_discarded()) {
    error = "the exec spec is not valid JSON";
    return std::nullopt;
  }
  ExecSpec spec;
  if (!parse_into(j, spec, error)) return std::nullopt;
  return spec;
}

proto::JobFinished run_logged(const Command& command, uint64_t timeout_ms, JobContext& job) {
  proto::JobFinished done = failed_result(job.job_id(), "");
  const RunResult run = run_commands(
      {command},
      [&](size_t, proto::Stream stream, std::string line) { job.log(stream, std::move(line)); },
      {.timeout = std::chrono::milliseconds(timeout_ms)}, job);
  const CommandResult& result = run.commands.front();
  done.exit_code = result.exit_code.value_or(-1);
  if (run.stop == StopReason::kCancelled) {
    done.state = proto::JobState::kCancelled;
    done.error = result.exit_code ? "cancelled" : "cancelled before it started";
  } else if (run.stop == StopReason::kTimedOut) {
    done.state = proto::JobState::kTimedOut;
    done.error = "timed out after " + std::to_string(timeout_ms) + " ms";
  } else if (!result.start_error.empty()) {
    done.error = result.start_error;
  } else {
    done.state = done.exit_code == 0 ? proto::JobState::kSucceeded : proto::JobState::kFailed;
    if (done.exit_code != 0) done.error = describe_exit(done.exit_code);
  }
  return done;
}

proto::JobFinished run_exec(std::string_view spec_json, JobContext& job) {
  std::string error;
  const std::optional<ExecSpec> spec = parse_exec_spec(spec_json, error);
  if (!spec) return failed_result(job.job_id(), error);
  return run_logged(command_to_run(*spec, AgentIdentity::current()), spec->timeout_ms, job);
}

}  // namespace cutpilot::agent
