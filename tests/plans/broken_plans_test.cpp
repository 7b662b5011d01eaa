// Broken plans, each with the one diagnostic it must produce (line, column and text).
#include <gtest/gtest.h>

#include "plans/load.h"
#include "tests/plans/env_fake.h"

namespace cutpilot::plans {
namespace {

// A plan that is broken in one way, and what the loader must say about it.
struct BrokenPlan {
  const char* what;
  const char* text;
  const char* expected;  // "LINE:COL: error: message"
};

// Every case is a whole plan; only the line that breaks it differs from a valid one.
const BrokenPlan kBrokenPlans[] = {
    {"unterminated string (TOML syntax)", "[plan]\nname = \"x\n[hosts.a]\n",
     "2:8: error: invalid TOML: the next token is not a valid string"},
    {"text after a value (TOML syntax)", "[plan]\nname = \"x\" y\n[hosts.a]\n",
     "2:12: error: invalid TOML: invalid line format (expected newline, but got 'y')"},
    {"duplicate key (TOML syntax)", "[plan]\nname = \"x\"\nname = \"y\"\n[hosts.a]\n",
     "3:8: error: duplicate key 'name' (first defined on line 2)"},
    {"duplicate host table (TOML syntax)", "[plan]\nname = \"x\"\n[hosts.a]\n[hosts.a]\n",
     "4:1: error: duplicate key 'hosts.a' (first defined on line 3)"},
    {"unknown host key with a suggestion",
     "[plan]\nname = \"x\"\n[hosts.source]\nadress = \"old.example.com\"\n",
     "4:1: error: unknown key 'adress' in [hosts.source]; did you mean 'address'?"},
    {"unknown plan key with a suggestion", "[plan]\nname = \"x\"\n  downtime = \"5m\"\n[hosts.a]\n",
     "3:3: error: unknown key 'downtime' in [plan]; did you mean 'downtime_budget'?"},
    {"unknown key with nothing close", "[plan]\nname = \"x\"\n[hosts.a]\ncolour = \"red\"\n",
     "4:1: error: unknown key 'colour' in [hosts.a]"},
    {"unknown top-level table", "[plan]\nname = \"x\"\n[hosts.a]\n[host.b]\n",
     "4:2: error: unknown key 'host' in the top level of the plan; did you mean 'hosts'?"},
    {"port of the wrong type", "[plan]\nname = \"x\"\n[hosts.source]\nport = \"22\"\n",
     "4:8: error: 'port' in [hosts.source] must be an integer from 1 to 65535"},
    {"port out of range", "[plan]\nname = \"x\"\n[hosts.source]\nport = 70000\n",
     "4:8: error: 'port' in [hosts.source] must be an integer from 1 to 65535"},
    {"sudo not a boolean", "[plan]\nname = \"x\"\n[hosts.a]\nsudo = \"yes\"\n",
     "4:8: error: 'sudo' in [hosts.a] must be true or false, not a string"},
    {"duration in words", "[plan]\nname = \"x\"\ndowntime_budget = \"5 minutes\"\n[hosts.a]\n",
     "3:19: error: 'downtime_budget' in [plan] must be a duration like \"90s\", \"5m\" or "
     "\"1h30m\", not '5 minutes'"},
    {"duration as a bare number", "[plan]\nname = \"x\"\n[hosts.a]\nconnect_timeout = 5\n",
     "4:19: error: 'connect_timeout' in [hosts.a] must be a duration like \"90s\", \"5m\" or "
     "\"1h30m\" (a string), not an integer"},
    {"budget below a second", "[plan]\nname = \"x\"\ndowntime_budget = \"250ms\"\n[hosts.a]\n",
     "3:19: error: 'downtime_budget' in [plan] must be a whole number of seconds"},
    {"unset environment variable",
     "[plan]\nname = \"x\"\nssh_config = \"${env:CUTPILOT_NOPE}/ssh_config\"\n[hosts.a]\n",
     "3:14: error: 'ssh_config' in [plan]: environment variable 'CUTPILOT_NOPE' is not set"},
    {"unknown variable with a suggestion",
     "[plan]\nname = \"x\"\n[vars]\ndomain = \"example.com\"\n[hosts.a]\naddress = "
     "\"a.${domian}\"\n",
     "6:11: error: 'address' in [hosts.a]: unknown variable 'domian' (not in [vars]); did you "
     "mean 'domain'?"},
    {"lone dollar", "[plan]\nname = \"x\"\n[vars]\napp = \"shop\"\n[hosts.a]\nuser = \"$app\"\n",
     "6:8: error: 'user' in [hosts.a]: a lone '$' (write '${name}' for a variable or '$$' for a "
     "literal '$')"},
    {"variables in a cycle",
     "[plan]\nname = \"x\"\n[vars]\na = \"${b}\"\nb = \"${a}\"\n[hosts.h]\n",
     "5:5: error: 'b' in [vars]: variables refer to each other in a cycle: 'a' -> 'b' -> 'a'"},
    {"missing [plan]", "[hosts.a]\naddress = \"x\"\n",
     "1:1: error: the plan has no [plan] table (it needs at least [plan] name = \"...\")"},
    {"[plan] without a name", "[plan]\ndescription = \"x\"\n[hosts.a]\n",
     "1:1: error: [plan] has no 'name' (name = \"...\" names the plan)"},
    {"no hosts at all", "[plan]\nname = \"x\"\n",
     "1:1: error: the plan has no hosts (add a [hosts.NAME] table for each machine)"},
    {"empty [hosts]", "[plan]\nname = \"x\"\n\n[hosts]\n",
     "4:1: error: [hosts] is empty (add a [hosts.NAME] table for each machine)"},
    {"host that is not a table", "[plan]\nname = \"x\"\n[hosts]\nsource = \"old.example.com\"\n",
     "4:1: error: host 'source' must be a table ([hosts.source] with address = \"...\")"},
    {"host name with a space", "[plan]\nname = \"x\"\n[hosts.\"old box\"]\n",
     "3:9: error: host name 'old box' may use only letters, digits, '-', '_' and '.'"},
    {"jump to itself", "[plan]\nname = \"x\"\n[hosts.source]\njump = \"source\"\n",
     "4:8: error: host 'source' jumps through itself (jump = 'source')"},
    {"jumps in a cycle", "[plan]\nname = \"x\"\n[hosts.a]\njump = \"b\"\n[hosts.b]\njump = \"a\"\n",
     "4:8: error: hosts jump through each other in a cycle: 'a' -> 'b' -> 'a'"},
    {"unknown top-level table with nothing close", "[plan]\nname = \"x\"\n[hosts.a]\n[x]\n",
     "4:2: error: unknown key 'x' in the top level of the plan"},
    {"steps as a plain table", "steps = 3\n[plan]\nname = \"x\"\n[hosts.a]\n",
     "1:1: error: 'steps' must be an array of tables ([[steps]])"},
    {"bad UTF-8 in a literal string (toml11 would read out of bounds)",
     "[plan]\nname = 'caf\xe9'\n[hosts.a]\n", "2:12: error: the plan is not valid UTF-8 here"},
    {"nesting too deep",
     "[plan]\nname = \"x\"\n[hosts.a]\n[vars]\nv = [[[[[[[[[[[[[[[[[[[[[[[[["
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]\n",
     "5:68: error: the plan nests deeper than 64 levels (arrays, inline tables and parts of "
     "dotted keys)"},
};

// Names the case in test output instead of dumping its bytes.
void PrintTo(const BrokenPlan& broken, std::ostream* out) {
  *out << broken.what;
}

class BrokenPlanTest : public testing::TestWithParam<BrokenPlan> {};

TEST_P(BrokenPlanTest, ReportsExactlyOneErrorAtItsLineAndColumn) {
  const BrokenPlan& broken = GetParam();
  const LoadResult result = load_plan_text(broken.text, "plan.toml", test::default_env());
  EXPECT_FALSE(result.ok());
  std::string got;
  for (const Diagnostic& d : result.diagnostics)
    got += format_diagnostic(d) + "\n";
  EXPECT_EQ(got, "plan.toml:" + std::string(broken.expected) + "\n") << broken.what;
}

INSTANTIATE_TEST_SUITE_P(Plans, BrokenPlanTest, testing::ValuesIn(kBrokenPlans),
                         [](const testing::TestParamInfo<BrokenPlan>& info) {
                           std::string name;
                           for (const char* c = info.param.what; *c; ++c)
                             name.push_back(std::isalnum(static_cast<unsigned char>(*c)) ? *c
                                                                                         : '_');
                           return name;
                         });

TEST(BrokenPlans, AVeryLongLineIsRefusedBeforeParsing) {
  std::string text = "[plan]\nname = \"x\"\n[hosts.a]\n[vars]\nlist = [";
  while (text.size() < 3 * kMaxPlanLineBytes)
    text += "1, ";
  const LoadResult result = load_plan_text(text + "1]\n", "p.toml", test::default_env());
  ASSERT_EQ(result.diagnostics.size(), 1u);
  EXPECT_EQ(format_diagnostic(result.diagnostics[0]),
            "p.toml:5:16385: error: the line is longer than 16384 bytes (split it; a long string "
            "can be a \"\"\" string)");
}

TEST(BrokenPlans, ThreeErrorsInOnePlanAreAllReportedInFileOrder) {
  const LoadResult result = load_plan_text(R"([plan]
name = "x"
ssh_config = "${env:NOT_SET}/ssh_config"
[hosts.source]
port = 0
[hosts.target]
usr = "deploy"
)",
                                           "three.toml", test::default_env());
  ASSERT_EQ(result.diagnostics.size(), 3u);
  EXPECT_EQ(format_diagnostic(result.diagnostics[0]),
            "three.toml:3:14: error: 'ssh_config' in [plan]: environment variable 'NOT_SET' is "
            "not set");
  EXPECT_EQ(format_diagnostic(result.diagnostics[1]),
            "three.toml:5:8: error: 'port' in [hosts.source] must be an integer from 1 to 65535");
  EXPECT_EQ(format_diagnostic(result.diagnostics[2]),
            "three.toml:7:1: error: unknown key 'usr' in [hosts.target]; did you mean 'user'?");
}

TEST(BrokenPlans, ABrokenVariableIsReportedOnceNotAtEveryUse) {
  const LoadResult result = load_plan_text(R"([plan]
name = "${root}"
[vars]
root = "${env:NOT_SET}"
[hosts.a]
address = "${root}"
user = "${root}"
)",
                                           "p.toml", test::default_env());
  ASSERT_EQ(result.diagnostics.size(), 1u);
  EXPECT_EQ(format_diagnostic(result.diagnostics[0]),
            "p.toml:4:8: error: 'root' in [vars]: environment variable 'NOT_SET' is not set");
}

TEST(BrokenPlans, AVariableOfTheWrongTypeIsReportedOnceNotAtEveryUse) {
  const LoadResult result = load_plan_text(R"([plan]
name = "${list}"
[vars]
list = [1, 2]
[hosts.a]
)",
                                           "p.toml", test::default_env());
  ASSERT_EQ(result.diagnostics.size(), 1u);
  EXPECT_EQ(format_diagnostic(result.diagnostics[0]),
            "p.toml:4:8: error: 'list' in [vars] must be a string, an integer or a boolean");
  EXPECT_EQ(result.plan.vars.count("list"), 0u);
}

TEST(BrokenPlans, ControlBytesInKeysAreEscapedInMessages) {
  const LoadResult result = load_plan_text(
      "[plan]\nname = \"x\"\n\"evil\\u001b[2J\" = 1\n[hosts.a]\n", "p.toml", test::default_env());
  ASSERT_EQ(result.diagnostics.size(), 1u);
  EXPECT_EQ(result.diagnostics[0].message, "unknown key 'evil\\x1b[2J' in [plan]");
}

}  // namespace
}  // namespace cutpilot::plans
