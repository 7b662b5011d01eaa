// Plans that take hosts from an Ansible inventory: the hosts and groups it gives, `on =
// "group:NAME"`, the merge with [hosts.NAME] tables, and the errors (with line:col in the plan).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "plans/load.h"
#include "tests/plans/env_fake.h"

namespace cutpilot::plans {
namespace {

const std::string kData = CUTPILOT_SOURCE_DIR "/tests/inventory/data";

std::string all(const LoadResult& result) {
  std::string text;
  for (const Diagnostic& d : result.diagnostics)
    text += format_diagnostic(d) + "\n";
  return text;
}

std::vector<std::string> host_names(const Plan& plan) {
  std::vector<std::string> names;
  for (const HostSpec& host : plan.hosts)
    names.push_back(host.name);
  return names;
}

// The plan text of shop_plan.toml with another inventory and extra text after [plan].
std::string shop_plan(std::string_view inventory, std::string_view extra = "") {
  return "[plan]\nname = \"shop\"\ninventory = \"" + std::string(inventory) + "\"\n" +
         std::string(extra);
}

// Loads plan text as if it were a file in the test data folder (relative inventories resolve
// there).
LoadResult load_beside_data(const std::string& text) {
  return load_plan_text(text, kData + "/inline.toml", test::default_env());
}

TEST(InventoryPlan, HostsAndGroupsComeFromTheInventoryBesideThePlan) {
  const LoadResult result = load_plan(kData + "/shop_plan.toml");
  ASSERT_TRUE(result.ok()) << all(result);
  const Plan& plan = result.plan;
  // The inventory's hosts in its order, then the plan's own.
  EXPECT_EQ(host_names(plan), (std::vector<std::string>{"bastion.example.com", "web01.example.com",
                                                        "web02.example.com", "web03.example.com",
                                                        "web-old", "db1", "db2", "cockpit-side"}));
  const HostSpec* web02 = plan.find_host("web02.example.com");
  ASSERT_NE(web02, nullptr);
  EXPECT_EQ(web02->address, "web02.example.com");  // no ansible_host: the name
  EXPECT_EQ(web02->user, "deploy");
  EXPECT_EQ(web02->port, 2022);
  EXPECT_TRUE(web02->sudo);  // ansible_become
  EXPECT_EQ(web02->identity_file, kData + "/keys/deploy_ed25519");
  EXPECT_EQ(web02->origin(), "shop.ini:5");
  EXPECT_FALSE(web02->in_plan);

  // db1 is in both: the table adds what the inventory has no word for.
  const HostSpec* db1 = plan.find_host("db1");
  ASSERT_NE(db1, nullptr);
  EXPECT_EQ(db1->address, "10.0.1.5");
  EXPECT_EQ(db1->port, 5522);
  EXPECT_EQ(db1->peer_address, "10.9.0.5");
  EXPECT_EQ(db1->role, "db");
  EXPECT_TRUE(db1->sudo);
  EXPECT_EQ(db1->origin(), "shop.ini:9+plan");
  EXPECT_EQ(db1->pos.line, 7u);  // later messages about db1 point at its table

  const HostSpec* own = plan.find_host("cockpit-side");
  ASSERT_NE(own, nullptr);
  EXPECT_EQ(own->origin(), "plan");
  EXPECT_FALSE(own->sudo);

  // group:web is web's hosts in inventory order; a host that a group and its own name both
  // bring in runs once.
  ASSERT_EQ(plan.steps.size(), 2u);
  EXPECT_EQ(plan.steps[0].on, (std::vector<std::string>{"web01.example.com", "web02.example.com",
                                                        "web03.example.com", "web-old"}));
  EXPECT_EQ(plan.steps[1].on, (std::vector<std::string>{"db1", "db2", "cockpit-side"}));
}

TEST(InventoryPlan, AYamlInventoryGivesTheSameHosts) {
  const LoadResult ini = load_beside_data(shop_plan("shop.ini"));
  const LoadResult yaml = load_beside_data(shop_plan("shop.yml"));
  ASSERT_TRUE(ini.ok()) << all(ini);
  ASSERT_TRUE(yaml.ok()) << all(yaml);
  ASSERT_EQ(host_names(yaml.plan), host_names(ini.plan));
  for (size_t i = 0; i < ini.plan.hosts.size(); ++i) {
    const HostSpec& a = ini.plan.hosts[i];
    const HostSpec& b = yaml.plan.hosts[i];
    EXPECT_EQ(a.address, b.address) << a.name;
    EXPECT_EQ(a.user, b.user) << a.name;
    EXPECT_EQ(a.port, b.port) << a.name;
    EXPECT_EQ(a.sudo, b.sudo) << a.name;
    EXPECT_EQ(a.identity_file, b.identity_file) << a.name;
  }
  EXPECT_EQ(yaml.plan.find_host("db2")->origin(), "shop.yml:31");
}

TEST(InventoryPlan, ASettingBothSetDifferentlyIsAConflictAtThePlansKey) {
  const LoadResult result = load_beside_data(shop_plan("shop.ini",
                                                       "[hosts.db1]\n"
                                                       "role = \"db\"\n"
                                                       "port = 2222\n"
                                                       "[hosts.\"web01.example.com\"]\n"
                                                       "user = \"deploy\"\n"
                                                       "sudo = false\n"));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(
      all(result),
      kData +
          "/inline.toml:6:1: error: 'port' in [hosts.db1] is '2222', but shop.ini:9 sets "
          "ansible_port='5522' for 'db1' (a setting comes from one place: drop one of them)\n" +
          kData +
          "/inline.toml:9:1: error: 'sudo' in [hosts.web01.example.com] is 'false', but "
          "shop.ini:23 sets ansible_become='true' for 'web01.example.com' (a setting comes "
          "from one place: drop one of them)\n");
}

TEST(InventoryPlan, AnUnknownGroupIsAnErrorWithDidYouMean) {
  const LoadResult result =
      load_beside_data(shop_plan("shop.ini",
                                 "[[steps]]\nid = \"x\"\non = [\"db1\", \"group:wbe\"]\n"
                                 "exec = { run = [\"true\"] }\n"));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(all(result), kData +
                             "/inline.toml:6:14: error: unknown group 'wbe' in 'on' of step 'x'; "
                             "did you mean 'web'?\n");
}

TEST(InventoryPlan, AGroupWithoutAnInventorySaysWhereGroupsComeFrom) {
  const LoadResult result = load_beside_data(
      "[plan]\nname = \"p\"\n[hosts.a]\n[[steps]]\nid = \"x\"\non = \"group:web\"\n"
      "exec = { run = [\"true\"] }\n");
  ASSERT_FALSE(result.ok());
  EXPECT_NE(all(result).find(":6:6: error: unknown group 'web' in 'on' of step 'x' (groups come "
                             "from an Ansible inventory: [plan] inventory = \"FILE\")"),
            std::string::npos)
      << all(result);
}

TEST(InventoryPlan, AMissingInventoryIsAnErrorAtItsKeyAndGivesNoHosts) {
  const LoadResult result = load_beside_data(shop_plan("missing.ini"));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(all(result), kData +
                             "/inline.toml:3:13: error: missing.ini: cannot read the inventory: "
                             "No such file or directory\n");
  EXPECT_TRUE(result.plan.hosts.empty());
}

TEST(InventoryPlan, AGarbledInventoryNamesItsFileAndLine) {
  char dir[] = "/tmp/cp-inventory-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::ofstream(std::string(dir) + "/hosts.ini") << "[web]\nw1\nw2 ansible_port=none\n";
  std::ofstream(std::string(dir) + "/plan.toml") << shop_plan("hosts.ini");
  const LoadResult result = load_plan(std::string(dir) + "/plan.toml");
  std::filesystem::remove_all(dir);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(all(result), std::string(dir) +
                             "/plan.toml:3:13: error: hosts.ini:3: ansible_port must be a port "
                             "number from 1 to 65535, not 'none'\n");
  EXPECT_TRUE(result.plan.hosts.empty());
}

TEST(InventoryPlan, APlanHostMayNameItsOwnIdentityFile) {
  const LoadResult result =
      load_plan_text("[plan]\nname = \"p\"\n[hosts.a]\nidentity_file = \"~/.ssh/id_migrate\"\n",
                     "p.toml", test::default_env());
  ASSERT_TRUE(result.ok()) << all(result);
  EXPECT_EQ(result.plan.hosts[0].identity_file, "/home/op/.ssh/id_migrate");
  EXPECT_EQ(result.plan.hosts[0].origin(), "plan");
}

}  // namespace
}  // namespace cutpilot::plans
