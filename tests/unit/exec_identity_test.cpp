// Who an exec job's command runs as: sudo only when the agent is not root already, and the
// login user (not root) for a command that says sudo = false in an agent sudo made root.
#include <gtest/gtest.h>

#include "agents/exec_job.h"

namespace cutpilot::agent {
namespace {

ExecSpec spec_of(const char* json) {
  std::string error;
  std::optional<ExecSpec> spec = parse_exec_spec(json, error);
  EXPECT_TRUE(spec.has_value()) << error;
  return spec.value_or(ExecSpec{});
}

using Argv = std::vector<std::string>;

TEST(ExecIdentity, SudoWrapsOnlyWhenTheAgentIsNotRoot) {
  const ExecSpec spec = spec_of(R"({"argv": ["docker", "ps"], "env": {"A": "1"}, "sudo": true})");
  AgentIdentity login;  // an agent that logged in as a plain user
  const Command wrapped = command_to_run(spec, login);
  EXPECT_EQ(wrapped.argv, (Argv{"sudo", "-n", "--", "env", "A=1", "docker", "ps"}));
  EXPECT_TRUE(wrapped.env.empty());
  AgentIdentity under_sudo{true, "1001", "1001", "/home/ops"};
  const Command as_is = command_to_run(spec, under_sudo);
  EXPECT_EQ(as_is.argv, (Argv{"docker", "ps"}));
  EXPECT_EQ(as_is.env.at("A"), "1");
}

TEST(ExecIdentity, SudoFalseInAnAgentSudoMadeRootRunsAsTheLoginUser) {
  const ExecSpec spec = spec_of(R"({"argv": ["id", "-u"]})");
  AgentIdentity under_sudo{true, "1001", "1002", "/home/ops"};
  const Command dropped = command_to_run(spec, under_sudo);
  EXPECT_EQ(dropped.argv,
            (Argv{"setpriv", "--reuid=1001", "--regid=1002", "--init-groups", "--", "id", "-u"}));
  EXPECT_EQ(dropped.env.at("HOME"), "/home/ops");
  // Root that logged in as root (no sudo) stays root; so does a plain user.
  AgentIdentity root_login{true, "", "", ""};
  EXPECT_EQ(command_to_run(spec, root_login).argv, (Argv{"id", "-u"}));
  EXPECT_EQ(command_to_run(spec, AgentIdentity{}).argv, (Argv{"id", "-u"}));
}

}  // namespace
}  // namespace cutpilot::agent
