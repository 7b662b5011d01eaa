// The Ansible inventory reader on real inventory files of both formats (tests/inventory/data/,
// whose expected values were checked against `ansible-inventory --list`), and on broken ones.
#include "inventory/inventory.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cutpilot::inventory {
namespace {

const std::string kData = CUTPILOT_SOURCE_DIR "/tests/inventory/data";

std::vector<std::string> names(const std::vector<Host>& hosts) {
  std::vector<std::string> out;
  for (const Host& host : hosts)
    out.push_back(host.name);
  return out;
}

std::vector<std::string> group_hosts(const Inventory& inventory, std::string_view name) {
  const Group* group = inventory.find_group(name);
  return group ? group->hosts : std::vector<std::string>{"<no group " + std::string(name) + ">"};
}

std::string var(const Host& host, std::string_view name) {
  for (const Var& v : host.vars)
    if (v.name == name) return v.value;
  return "<unset>";
}

// What both shop inventories say, as Ansible resolves them.
void expect_shop(const ReadResult& read) {
  ASSERT_TRUE(read.ok()) << format_error("shop", read.errors.front());
  const Inventory& inv = read.inventory;
  EXPECT_EQ(names(inv.hosts), (std::vector<std::string>{"bastion.example.com", "web01.example.com",
                                                        "web02.example.com", "web03.example.com",
                                                        "web-old", "db1", "db2"}));
  EXPECT_EQ(group_hosts(inv, "web"),
            (std::vector<std::string>{"web01.example.com", "web02.example.com", "web03.example.com",
                                      "web-old"}));
  EXPECT_EQ(group_hosts(inv, "db"), (std::vector<std::string>{"db1", "db2"}));
  // A parent group holds its children's hosts, in inventory order.
  EXPECT_EQ(group_hosts(inv, "prod"),
            (std::vector<std::string>{"web01.example.com", "web02.example.com", "web03.example.com",
                                      "web-old", "db1", "db2"}));
  EXPECT_EQ(group_hosts(inv, "ungrouped"), (std::vector<std::string>{"bastion.example.com"}));
  EXPECT_EQ(group_hosts(inv, "all").size(), 7u);

  const Host* bastion = inv.find_host("bastion.example.com");
  ASSERT_NE(bastion, nullptr);
  EXPECT_FALSE(bastion->address);
  EXPECT_EQ(bastion->port->value, 2200);
  EXPECT_EQ(bastion->user->value, "nobody");  // [all:vars] only
  EXPECT_FALSE(bastion->identity_file);
  EXPECT_FALSE(bastion->become);

  // web's vars (the child) win over prod's (the parent), which win over all's.
  const Host* web02 = inv.find_host("web02.example.com");
  ASSERT_NE(web02, nullptr);
  EXPECT_EQ(web02->port->value, 2022);
  EXPECT_EQ(web02->user->value, "deploy");
  EXPECT_EQ(web02->identity_file->value, kData + "/keys/deploy_ed25519");
  EXPECT_TRUE(web02->become->value);
  EXPECT_EQ(var(*web02, "ntp_server"), "ntp.example.com");

  // Host vars win over every group's.
  const Host* old = inv.find_host("web-old");
  ASSERT_NE(old, nullptr);
  EXPECT_EQ(old->address->value, "10.0.0.9");
  EXPECT_EQ(old->user->value, "legacy");

  const Host* db1 = inv.find_host("db1");
  ASSERT_NE(db1, nullptr);
  EXPECT_EQ(db1->address->value, "10.0.1.5");
  EXPECT_EQ(db1->port->value, 5522);
  EXPECT_TRUE(db1->become->value);

  // "db2:2222" is the host db2 on port 2222; its quoted ansible_host loses its quotes.
  const Host* db2 = inv.find_host("db2");
  ASSERT_NE(db2, nullptr);
  EXPECT_EQ(db2->address->value, "10.0.1.6");
  EXPECT_EQ(db2->port->value, 2222);
  EXPECT_FALSE(db2->become);
}

TEST(InventoryIni, ShopInventoryResolvesAsAnsibleDoes) {
  const ReadResult read = read_inventory(kData + "/shop.ini");
  expect_shop(read);
  if (!read.ok()) return;
  const Inventory& inv = read.inventory;
  // Lines say where each host and setting is written.
  EXPECT_EQ(inv.find_host("bastion.example.com")->line, 2u);
  EXPECT_EQ(inv.find_host("web01.example.com")->line, 5u);
  EXPECT_EQ(inv.find_host("db1")->port->line, 9u);
  EXPECT_EQ(inv.find_host("web02.example.com")->port->line, 22u);
  EXPECT_EQ(inv.find_host("db2")->user->line, 17u);
}

TEST(InventoryYaml, ShopInventoryResolvesAsAnsibleDoes) {
  const ReadResult read = read_inventory(kData + "/shop.yml");
  expect_shop(read);
  if (!read.ok()) return;
  const Inventory& inv = read.inventory;
  EXPECT_EQ(inv.find_host("bastion.example.com")->line, 4u);
  EXPECT_EQ(inv.find_host("db1")->port->line, 29u);
  EXPECT_EQ(inv.find_host("web02.example.com")->port->line, 23u);
}

TEST(InventoryFormat, ChosenByTheFileNameAsAnsibleDoes) {
  EXPECT_EQ(format_of("hosts.yml"), Format::kYaml);
  EXPECT_EQ(format_of("x/hosts.yaml"), Format::kYaml);
  EXPECT_EQ(format_of("hosts.json"), Format::kYaml);
  EXPECT_EQ(format_of("inventory.ini"), Format::kIni);
  EXPECT_EQ(format_of("hosts"), Format::kIni);
}

TEST(InventoryIni, SiblingGroupsApplyByNameAndRangesExpand) {
  const ReadResult read = parse_ini(
      "[b]\nh1\n[a]\nh1\n[a:vars]\nx=from_a\n[b:vars]\nx=from_b\n"
      "[c]\nn[1:7:3]\ndb-[a:c]\nweb[08:10]\n");
  ASSERT_TRUE(read.ok()) << read.errors.front().message;
  EXPECT_EQ(var(*read.inventory.find_host("h1"), "x"), "from_b");
  EXPECT_EQ(group_hosts(read.inventory, "c"),
            (std::vector<std::string>{"n1", "n4", "n7", "db-a", "db-b", "db-c", "web08", "web09",
                                      "web10"}));
}

TEST(InventoryIni, HostsBeforeAnySectionAreUngroupedUnlessGroupedLater) {
  const ReadResult read = parse_ini("lone\nlater\n[web]\nlater\n");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(group_hosts(read.inventory, "ungrouped"), (std::vector<std::string>{"lone"}));
  EXPECT_EQ(group_hosts(read.inventory, "web"), (std::vector<std::string>{"later"}));
}

// One broken inventory: its text, the line of the first error and words of its message.
struct Broken {
  const char* name;
  Format format;
  const char* text;
  uint32_t line;
  const char* message;
};

class BrokenInventory : public testing::TestWithParam<Broken> {};

TEST_P(BrokenInventory, IsRefusedAtItsLine) {
  const Broken& b = GetParam();
  const ReadResult read = b.format == Format::kIni ? parse_ini(b.text) : parse_yaml(b.text);
  ASSERT_FALSE(read.ok()) << b.name;
  EXPECT_EQ(read.errors.front().line, b.line) << read.errors.front().message;
  EXPECT_NE(read.errors.front().message.find(b.message), std::string::npos)
      << read.errors.front().message;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BrokenInventory,
    testing::Values(
        Broken{"bad_port", Format::kIni, "[web]\nw1 ansible_port=abc\n", 2,
               "ansible_port must be a port number from 1 to 65535, not 'abc'"},
        Broken{"group_port", Format::kIni, "[web]\nw1\nw2\n[web:vars]\nansible_port=0\n", 5,
               "ansible_port must be a port number"},
        Broken{"bad_become", Format::kIni, "w1 ansible_become=maybe\n", 1,
               "ansible_become must be true or false"},
        Broken{"become_user", Format::kIni,
               "[db]\nd1 ansible_become=yes\n[db:vars]\nansible_become_user=postgres\n", 4,
               "ansible_become_user = 'postgres': cutpilot's sudo runs commands as root only"},
        Broken{"become_method", Format::kIni, "w1 ansible_become=yes ansible_become_method=su\n", 1,
               "cutpilot becomes root with sudo only"},
        Broken{"template", Format::kIni, "[web]\nw1 ansible_host='{{ x }}'\n", 2, "Jinja template"},
        Broken{"vars_of_nobody", Format::kIni, "[web:vars]\nx=1\n", 1,
               "[web:vars] is for a group that the inventory never declares"},
        Broken{"undeclared_child", Format::kIni, "[web]\nw1\n[prod:children]\nwbe\n", 4,
               "group 'wbe' is named as a child but never declared"},
        Broken{"cycle", Format::kIni, "[a:children]\nb\n[b:children]\na\n", 4, "cycle"},
        Broken{"header", Format::kIni, "[web\nw1\n", 1, "not a section header"},
        Broken{"kind", Format::kIni, "[web:hostz]\nw1\n", 1, "unknown kind 'hostz'"},
        Broken{"no_equals", Format::kIni, "[web]\nw1 ansible_port\n", 2, "expected key=value"},
        Broken{"quote", Format::kIni, "w1 ansible_user='deploy\n", 1, "never closed"},
        Broken{"range", Format::kIni, "[web]\nweb[3:1]\n", 2, "host range '3:1'"},
        Broken{"huge_range", Format::kIni, "web[0:99999]\n", 1, "longer than 10000 hosts"},
        Broken{"port_in_name", Format::kIni, "w1:99999\n", 1, "port that is not a number"},
        Broken{"yaml_syntax", Format::kYaml, "all:\n  hosts:\n    w1: [\n", 4, "not valid YAML"},
        Broken{"yaml_root", Format::kYaml, "- all\n", 1, "mapping of groups"},
        Broken{"yaml_hostz", Format::kYaml, "all:\n  hostz:\n    w1:\n", 2,
               "unknown key 'hostz' in group 'all'"},
        Broken{"yaml_host_list", Format::kYaml, "all:\n  hosts: [w1, w2]\n", 2,
               "must be a mapping"},
        Broken{"yaml_list_var", Format::kYaml, "all:\n  hosts:\n    w1:\n      ansible_port: [1]\n",
               4, "ansible_port must be a single value"},
        Broken{"yaml_children", Format::kYaml,
               "all:\n  children:\n    a:\n      children:\n        all:\n", 5,
               "group 'all' cannot be a child"}),
    [](const testing::TestParamInfo<Broken>& info) { return std::string(info.param.name); });

TEST(InventoryRead, AMissingFileOrADirectoryIsAClearError) {
  ReadResult read = read_inventory(kData + "/no-such-inventory.ini");
  ASSERT_EQ(read.errors.size(), 1u);
  EXPECT_EQ(format_error("no-such-inventory.ini", read.errors[0]),
            "no-such-inventory.ini: cannot read the inventory: No such file or directory");
  EXPECT_TRUE(read.inventory.hosts.empty());
  read = read_inventory(kData);
  ASSERT_EQ(read.errors.size(), 1u);
  EXPECT_NE(read.errors[0].message.find("it is a directory"), std::string::npos);
  read = read_inventory("/dev/zero");
  ASSERT_EQ(read.errors.size(), 1u);
  EXPECT_EQ(read.errors[0].message, "cannot read the inventory: it is not a regular file");
}

TEST(InventoryRead, ErrorsNameTheFileAndLine) {
  EXPECT_EQ(format_error("inventory.ini", {7, "something"}), "inventory.ini:7: something");
}

}  // namespace
}  // namespace cutpilot::inventory
