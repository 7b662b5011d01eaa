#include "plans/expand.h"

#include <gtest/gtest.h>

#include "tests/plans/env_fake.h"

namespace cutpilot::plans {
namespace {

Expander make(Vars vars = {{"app", "/srv/shop"}, {"name", "shop"}}) {
  return Expander(std::move(vars), test::fake_env({{"HOME", "/home/op"}, {"LAB", "/tmp/lab"}}));
}

TEST(Expand, VariablesEnvironmentAndDollars) {
  Expander expander = make();
  EXPECT_EQ(expander.expand("${app}/uploads/").text, "/srv/shop/uploads/");
  EXPECT_EQ(expander.expand("${env:LAB}/ssh_config").text, "/tmp/lab/ssh_config");
  EXPECT_EQ(expander.expand("${name}-${name}").text, "shop-shop");
  EXPECT_EQ(expander.expand("price: $$5, pid $$$$").text, "price: $5, pid $$");
  EXPECT_EQ(expander.expand("no variables").text, "no variables");
  EXPECT_EQ(expander.expand("").text, "");
  // Expansion is one pass: a value that contains ${...} is not expanded again.
  Expander literal = make({{"a", "${b}"}});
  EXPECT_EQ(literal.expand("${a}").text, "${b}");
}

TEST(Expand, AnEnvironmentDefaultStandsInWhenTheVariableIsUnsetOrEmpty) {
  Expander expander(Vars{}, test::fake_env({{"LAB", "/tmp/lab"}, {"EMPTY", ""}}));
  EXPECT_EQ(expander.expand("${env:LAB:-/var/lib}/x").text, "/tmp/lab/x");
  EXPECT_EQ(expander.expand("${env:NOPE:-/var/lib/docker}/x").text, "/var/lib/docker/x");
  EXPECT_EQ(expander.expand("${env:EMPTY:-22}").text, "22");
  EXPECT_EQ(expander.expand("[${env:NOPE:-}]").text, "[]");
  EXPECT_EQ(expander.expand("${env::-x}").error,
            "an empty '${env:}' (name the environment variable)");
  // Only ':-' is a default; a lone ':' is part of the name, which is then not set.
  EXPECT_EQ(expander.expand("${env:NOPE:x}").error, "environment variable 'NOPE:x' is not set");
}

TEST(Expand, ErrorsNameTheVariable) {
  Expander expander = make();
  EXPECT_EQ(expander.expand("${env:NOPE}").error, "environment variable 'NOPE' is not set");
  EXPECT_EQ(expander.expand("${ap}").error,
            "unknown variable 'ap' (not in [vars]); did you mean 'app'?");
  EXPECT_EQ(expander.expand("$app").error,
            "a lone '$' (write '${name}' for a variable or '$$' for a literal '$')");
  EXPECT_EQ(expander.expand("cost 5$").error,
            "a lone '$' (write '${name}' for a variable or '$$' for a literal '$')");
  EXPECT_EQ(expander.expand("${app").error,
            "'${' without a closing '}' (write '$$' for a literal '$')");
  EXPECT_EQ(expander.expand("${}").error, "an empty '${}' (write '$$' for a literal '$')");
  EXPECT_EQ(expander.expand("${env:}").error, "an empty '${env:}' (name the environment variable)");
  const Expansion failed = expander.expand("${app}/${nope}");
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(failed.text, "");  // never a half-expanded string
  EXPECT_FALSE(failed.cascade);
}

TEST(Expand, PathsExpandTildeFromHome) {
  Expander expander = make();
  EXPECT_EQ(expander.expand_path("~/.ssh/config").text, "/home/op/.ssh/config");
  EXPECT_EQ(expander.expand_path("~").text, "/home/op");
  EXPECT_EQ(expander.expand_path("/etc/ssh/~/x").text, "/etc/ssh/~/x");
  EXPECT_EQ(expander.expand_path("~other/x").text, "~other/x");
  Expander homeless({}, test::fake_env({}));
  EXPECT_EQ(homeless.expand_path("~/x").error,
            "cannot expand '~': environment variable 'HOME' is not set");
}

TEST(Expand, TotalOutputIsBounded) {
  Expander expander = make({{"big", std::string(kMaxExpandedBytes / 2 + 1, 'x')}});
  EXPECT_FALSE(expander.expand("${big}${big}").ok());
  size_t produced = 0;
  bool refused = false;
  for (int i = 0; i < 40 && !refused; ++i) {
    const Expansion one = expander.expand("${big}");
    refused = !one.ok();
    produced += one.text.size();
  }
  EXPECT_TRUE(refused);
  EXPECT_LE(produced, kMaxTotalExpandedBytes);
}

TEST(ResolveVars, VariablesMayUseEachOtherAndTheEnvironment) {
  const ResolvedVars resolved = resolve_vars(
      {{"root", "/srv/${app}"}, {"app", "shop"}, {"up", "${root}/uploads"}, {"lab", "${env:LAB}"}},
      test::fake_env({{"LAB", "/tmp/lab"}}));
  EXPECT_TRUE(resolved.errors.empty());
  EXPECT_EQ(resolved.vars.at("up"), "/srv/shop/uploads");
  EXPECT_EQ(resolved.vars.at("lab"), "/tmp/lab");
}

TEST(ResolveVars, CyclesAndMissingNamesAreReportedOnceAtTheirCause) {
  const ResolvedVars resolved = resolve_vars(
      {{"a", "${b}"}, {"b", "${c}"}, {"c", "${a}"}, {"d", "${zz}"}, {"e", "${d}"}, {"ok", "fine"}},
      test::fake_env({}));
  ASSERT_EQ(resolved.errors.size(), 2u);
  EXPECT_EQ(resolved.errors[0].name, "c");
  EXPECT_EQ(resolved.errors[0].message,
            "variables refer to each other in a cycle: 'a' -> 'b' -> 'c' -> 'a'");
  EXPECT_EQ(resolved.errors[1].name, "d");
  EXPECT_EQ(resolved.errors[1].message, "unknown variable 'zz' (not in [vars])");
  EXPECT_EQ(resolved.broken, (std::set<std::string, std::less<>>{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(resolved.vars, (Vars{{"ok", "fine"}}));
  // Using a broken variable later is a cascade, not a new error.
  Expander expander(resolved.vars, test::fake_env({}), resolved.broken);
  EXPECT_TRUE(expander.expand("${e}").cascade);
}

TEST(ResolveVars, DoublingChainsCannotExhaustMemory) {
  Vars raw{{"v0", std::string(1000, 'x')}};
  for (int i = 1; i <= 40; ++i)
    raw["v" + std::to_string(i)] =
        "${v" + std::to_string(i - 1) + "}${v" + std::to_string(i - 1) + "}";
  const ResolvedVars resolved = resolve_vars(raw, test::fake_env({}));
  EXPECT_FALSE(resolved.errors.empty());
  size_t total = 0;
  for (const auto& [name, value] : resolved.vars)
    total += value.size();
  EXPECT_LE(total, kMaxTotalExpandedBytes);
}

}  // namespace
}  // namespace cutpilot::plans
