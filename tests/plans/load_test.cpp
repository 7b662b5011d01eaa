#include "plans/load.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

#include "tests/plans/env_fake.h"
#include "transport/sha256.h"

namespace cutpilot::plans {
namespace {

using namespace std::chrono_literals;

std::string all(const LoadResult& result) {
  std::string text;
  for (const Diagnostic& d : result.diagnostics)
    text += format_diagnostic(d) + "\n";
  return text;
}

constexpr std::string_view kHostsOnly = R"(# a migration with no steps yet
[plan]
name = "shop migration"
description = "move the shop"
downtime_budget = "5m"
ssh_config = "${env:CUTPILOT_LAB}/ssh_config"
known_hosts = "${env:CUTPILOT_LAB}/known_hosts"

[vars]
domain = "example.com"

[hosts.source]
address = "old.${domain}"
user = "deploy"
port = 2222
sudo = true
role = "source"
connect_timeout = "1m30s"

[hosts.target]
address = "new.${domain}"
jump = "bastion"
peer_address = "10.0.0.2"
known_hosts = "~/lab/known_hosts"

[hosts.bastion]
)";

TEST(LoadPlan, HostsOnlyPlanParsesIntoTypedStructs) {
  const LoadResult result = load_plan_text(kHostsOnly, "shop.toml", test::default_env());
  ASSERT_TRUE(result.ok()) << all(result);
  EXPECT_TRUE(result.diagnostics.empty()) << all(result);
  const Plan& plan = result.plan;
  EXPECT_EQ(plan.path, "shop.toml");
  EXPECT_EQ(plan.sha256, transport::sha256_hex(kHostsOnly));
  EXPECT_EQ(plan.settings.name, "shop migration");
  EXPECT_EQ(plan.settings.description, "move the shop");
  EXPECT_EQ(plan.settings.downtime_budget, std::optional<std::chrono::seconds>(300s));
  EXPECT_EQ(plan.settings.ssh_config, "/tmp/lab/ssh_config");
  EXPECT_EQ(plan.settings.known_hosts, "/tmp/lab/known_hosts");
  EXPECT_TRUE(plan.settings.ssh_config_set);
  EXPECT_TRUE(plan.settings.known_hosts_set);
  EXPECT_EQ(plan.vars.at("domain"), "example.com");
  EXPECT_TRUE(plan.steps.empty());

  // File order, not hash order.
  ASSERT_EQ(plan.hosts.size(), 3u);
  EXPECT_EQ(plan.hosts[0].name, "source");
  EXPECT_EQ(plan.hosts[1].name, "target");
  EXPECT_EQ(plan.hosts[2].name, "bastion");

  const HostSpec& source = plan.hosts[0];
  EXPECT_EQ(source.address, "old.example.com");
  EXPECT_EQ(source.user, std::optional<std::string>("deploy"));
  EXPECT_EQ(source.port, std::optional<uint16_t>(2222));
  EXPECT_TRUE(source.sudo);
  EXPECT_EQ(source.role, std::optional<std::string>("source"));
  EXPECT_EQ(source.connect_timeout, std::optional<std::chrono::milliseconds>(90s));
  EXPECT_EQ(source.jump, std::nullopt);
  EXPECT_EQ(source.pos, (SourcePos{12, 1}));

  const HostSpec& target = plan.hosts[1];
  EXPECT_EQ(target.address, "new.example.com");
  EXPECT_EQ(target.jump, std::optional<std::string>("bastion"));
  EXPECT_EQ(target.peer_address, std::optional<std::string>("10.0.0.2"));
  EXPECT_EQ(target.known_hosts, std::optional<std::string>("/home/op/lab/known_hosts"));
  EXPECT_FALSE(target.sudo);
  EXPECT_EQ(target.user, std::nullopt);

  ASSERT_NE(plan.find_host("bastion"), nullptr);
  EXPECT_EQ(plan.find_host("bastion")->address, "bastion");
  EXPECT_EQ(plan.find_host("nope"), nullptr);
}

TEST(LoadPlan, DefaultsApplyWhenKeysAreLeftOut) {
  const LoadResult result = load_plan_text("[plan]\nname = \"x\"\n[hosts.db1]\n[hosts.web]\n",
                                           "p.toml", test::default_env());
  ASSERT_TRUE(result.ok()) << all(result);
  const Plan& plan = result.plan;
  EXPECT_EQ(plan.settings.ssh_config, "/home/op/.ssh/config");
  EXPECT_EQ(plan.settings.known_hosts, "/home/op/.ssh/known_hosts");
  EXPECT_FALSE(plan.settings.ssh_config_set);
  EXPECT_FALSE(plan.settings.known_hosts_set);
  EXPECT_EQ(plan.settings.downtime_budget, std::nullopt);
  EXPECT_EQ(plan.settings.description, "");
  ASSERT_EQ(plan.hosts.size(), 2u);
  for (const HostSpec& host : plan.hosts) {
    EXPECT_EQ(host.address, host.name);
    EXPECT_EQ(host.port, std::nullopt);
    EXPECT_FALSE(host.sudo);
    EXPECT_EQ(host.connect_timeout, std::nullopt);
  }
}

TEST(LoadPlan, DefaultPathsStayUnexpandedWithoutHome) {
  const LoadResult result =
      load_plan_text("[plan]\nname = \"x\"\n[hosts.a]\n", "p.toml", test::fake_env({}));
  ASSERT_TRUE(result.ok()) << all(result);
  EXPECT_EQ(result.plan.settings.ssh_config, "~/.ssh/config");
  EXPECT_EQ(result.plan.settings.known_hosts, "~/.ssh/known_hosts");
}

TEST(LoadPlan, VariablesAndEnvironmentExpandEverywhereInPlanAndHosts) {
  const LoadResult result =
      load_plan_text(R"([plan]
name = "${app} to ${env:DC}"
description = "costs $$5"
[vars]
app = "shop"
root = "/srv/${app}"
port = 2200
[hosts.source]
address = "${app}-old.${env:DC}"
user = "${app}"
known_hosts = "${root}/known_hosts"
role = "${env:DC}"
)",
                     "p.toml", test::fake_env({{"HOME", "/root"}, {"DC", "fra1"}}));
  ASSERT_TRUE(result.ok()) << all(result);
  EXPECT_EQ(result.plan.settings.name, "shop to fra1");
  EXPECT_EQ(result.plan.settings.description, "costs $5");
  EXPECT_EQ(result.plan.vars.at("root"), "/srv/shop");
  EXPECT_EQ(result.plan.vars.at("port"), "2200");
  const HostSpec& source = result.plan.hosts.at(0);
  EXPECT_EQ(source.address, "shop-old.fra1");
  EXPECT_EQ(source.user, std::optional<std::string>("shop"));
  EXPECT_EQ(source.known_hosts, std::optional<std::string>("/srv/shop/known_hosts"));
  EXPECT_EQ(source.role, std::optional<std::string>("fra1"));
}

TEST(LoadPlan, AConfigPathThatExpandsToNothingIsAsIfAbsent) {
  const auto load = [](const char* lab) {
    std::map<std::string, std::string, std::less<>> env{{"HOME", "/home/op"}};
    if (lab) env["LAB"] = lab;
    return load_plan_text(R"([plan]
name = "x"
ssh_config = "${env:LAB:-}"
known_hosts = "${env:LAB:-}"
[hosts.a]
)",
                          "p.toml", test::fake_env(env));
  };
  const LoadResult production = load(nullptr);
  ASSERT_TRUE(production.ok()) << all(production);
  EXPECT_FALSE(production.plan.settings.ssh_config_set);  // ssh reads its own files
  EXPECT_FALSE(production.plan.settings.known_hosts_set);
  EXPECT_EQ(production.plan.settings.ssh_config, "/home/op/.ssh/config");
  const LoadResult lab = load("/tmp/lab/ssh_config");
  ASSERT_TRUE(lab.ok()) << all(lab);
  EXPECT_TRUE(lab.plan.settings.ssh_config_set);
  EXPECT_EQ(lab.plan.settings.ssh_config, "/tmp/lab/ssh_config");
  // Written empty by hand it is still an error: only an expansion may come to nothing.
  const LoadResult empty = load_plan_text("[plan]\nname = \"x\"\nssh_config = \"\"\n[hosts.a]\n",
                                          "p.toml", test::fake_env({{"HOME", "/home/op"}}));
  EXPECT_FALSE(empty.ok());
}

TEST(LoadPlan, StepsAreTypedInFileOrder) {
  const LoadResult result = load_plan_text(R"([plan]
name = "x"
[hosts.source]
[hosts.target]
[[steps]]
id = "presync"
on = "target"
sync = { from = "source:/srv/", to = "/srv/" }
[[steps]]
id = "stop-app"
on = "source"
gate = "approve"
exec = { run = ["systemctl", "stop", "shop"] }
)",
                                           "p.toml", test::default_env());
  ASSERT_TRUE(result.ok()) << all(result);
  ASSERT_EQ(result.plan.steps.size(), 2u);
  EXPECT_EQ(result.plan.steps[0].id, "presync");
  EXPECT_EQ(result.plan.steps[1].id, "stop-app");
  EXPECT_EQ(result.plan.steps[1].pos.line, 9u);
  EXPECT_TRUE(std::holds_alternative<SyncAction>(result.plan.steps[0].action));
  EXPECT_EQ(result.plan.steps[1].gate, Gate::kApprove);
}

TEST(LoadPlan, JumpToAnotherPlanHostOrAnSshAliasIsFine) {
  const LoadResult result = load_plan_text(R"([plan]
name = "x"
[hosts.a]
jump = "b"
[hosts.b]
jump = "corp-bastion,edge"
)",
                                           "p.toml", test::default_env());
  EXPECT_TRUE(result.ok()) << all(result);
}

TEST(LoadPlan, FileOnDiskIsReadAndHashed) {
  char path[] = "/tmp/cutpilot-plan-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string text = "[plan]\nname = \"disk\"\n[hosts.a]\n";
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  const LoadResult result = load_plan(path);
  unlink(path);
  ASSERT_TRUE(result.ok()) << all(result);
  EXPECT_EQ(result.plan.settings.name, "disk");
  EXPECT_EQ(result.plan.sha256, transport::sha256_hex(text));
}

TEST(LoadPlan, MissingFileIsOneErrorNamingIt) {
  const LoadResult result = load_plan("/nonexistent/plan.toml");
  ASSERT_EQ(result.diagnostics.size(), 1u);
  EXPECT_EQ(format_diagnostic(result.diagnostics[0]),
            "/nonexistent/plan.toml:1:1: error: cannot open the plan: No such file or directory");
  EXPECT_FALSE(result.ok());
}

TEST(LoadPlan, DirectoryIsRefused) {
  const LoadResult result = load_plan("/tmp");
  ASSERT_EQ(result.diagnostics.size(), 1u);
  EXPECT_EQ(result.diagnostics[0].message, "cannot read the plan: it is a directory");
}

TEST(LoadPlan, OversizePlanIsRefusedBeforeParsing) {
  std::string text = "[plan]\nname = \"x\"\n[hosts.a]\n# ";
  text.append(kMaxPlanBytes, 'x');
  const LoadResult result = load_plan_text(text, "big.toml", test::default_env());
  ASSERT_EQ(result.diagnostics.size(), 1u);
  EXPECT_EQ(result.diagnostics[0].pos, (SourcePos{1, 1}));
  EXPECT_NE(result.diagnostics[0].message.find("at most 1048576"), std::string::npos);
}

}  // namespace
}  // namespace cutpilot::plans
