// Preflight: an unset password_env is an error for every step not yet finished, with a
// did-you-mean over the environment's names, and never a value in the message.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "plans/load.h"
#include "plans/preflight.h"
#include "tests/plans/env_fake.h"

namespace cutpilot::plans::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Two db steps: copy (from SRC_PW, to DST_PW) and count (connections, with DST_PW), the
// copy with a rollback that reads ROLLBACK_PW.
constexpr const char* kPlan = R"([plan]
name = "pre"
[hosts.source]
[hosts.target]
[[steps]]
id = "copy"
on = "target"
db = { engine = "postgres", from = { host = "source", database = "shop", password_env = "SRC_PW" }, to = { database = "shop", password_env = "DST_PW" } }
rollback = { db = { engine = "postgres", action = "connections", db = { database = "shop", password_env = "ROLLBACK_PW" } } }
[[steps]]
id = "count"
on = "target"
needs = ["copy"]
db = { engine = "postgres", action = "connections", db = { database = "shop", password_env = "DST_PW" } }
)";

Plan load(const EnvLookup& env) {
  LoadResult loaded = load_plan_text(kPlan, "pre.toml", env);
  EXPECT_TRUE(loaded.ok());
  return std::move(loaded.plan);
}

std::string joined(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const auto& d : diagnostics)
    out += format_diagnostic(d) + "\n";
  return out;
}

TEST(MissingSecrets, NoneWhenEverySecretIsSet) {
  const auto env = fake_env({{"SRC_PW", "s3cret"}, {"DST_PW", "other"}, {"ROLLBACK_PW", "third"}});
  EXPECT_TRUE(missing_secrets(load(env), {}, env, {"SRC_PW", "DST_PW", "ROLLBACK_PW"}).empty());
}

TEST(MissingSecrets, AnUnsetVariableIsAnErrorNamingStepAndLineWithADidYouMean) {
  const auto env = fake_env({{"SRC_PWD", "s3cret"}, {"DST_PW", "other"}, {"ROLLBACK_PW", "x"}});
  const auto found =
      missing_secrets(load(env), {}, env, {"HOME", "SRC_PWD", "DST_PW", "ROLLBACK_PW"});
  ASSERT_EQ(found.size(), 1u) << joined(found);
  EXPECT_EQ(found[0].severity, Severity::kError);
  EXPECT_EQ(found[0].pos.line, 8u);
  EXPECT_EQ(format_diagnostic(found[0]).rfind("pre.toml:8:", 0), 0u) << joined(found);
  EXPECT_THAT(found[0].message, HasSubstr("step 'copy'"));
  EXPECT_THAT(found[0].message, HasSubstr("'SRC_PW'"));
  EXPECT_THAT(found[0].message, HasSubstr("did you mean 'SRC_PWD'?"));
  EXPECT_THAT(found[0].message, Not(HasSubstr("s3cret")));
}

TEST(MissingSecrets, NoSuggestionWhenNothingIsClose) {
  const auto env = fake_env({{"DST_PW", "x"}, {"ROLLBACK_PW", "x"}});
  const auto found = missing_secrets(load(env), {}, env, {"HOME", "DST_PW", "ROLLBACK_PW"});
  ASSERT_EQ(found.size(), 1u) << joined(found);
  EXPECT_THAT(found[0].message, Not(HasSubstr("did you mean")));
}

TEST(MissingSecrets, EveryUnfinishedStepIsCheckedAndFinishedOnesAreExempt) {
  const auto env = fake_env({});
  const Plan plan = load(env);
  // Nothing finished: copy's two sides, its rollback, count.
  EXPECT_EQ(missing_secrets(plan, {}, env, {}).size(), 4u)
      << joined(missing_secrets(plan, {}, env, {}));
  // copy finished: only count is an error; copy's rollback could still run on abort.
  const auto found = missing_secrets(plan, {"copy"}, env, {});
  ASSERT_EQ(found.size(), 2u) << joined(found);
  EXPECT_EQ(found[0].severity, Severity::kWarning);
  EXPECT_THAT(found[0].message, HasSubstr("'ROLLBACK_PW'"));
  EXPECT_EQ(found[1].severity, Severity::kError);
  EXPECT_THAT(found[1].message, HasSubstr("step 'count'"));
  EXPECT_FALSE(has_errors(missing_secrets(plan, {"copy", "count"}, env, {})));
}

TEST(MissingSecrets, ALargeEnvironmentStillGetsItsSuggestion) {
  const auto env = fake_env({{"DST_PW", "x"}, {"ROLLBACK_PW", "x"}});
  std::vector<std::string> names;
  for (int i = 0; i < 1000; ++i)
    names.push_back("VARIABLE_NUMBER_" + std::to_string(i));
  names.push_back("SRC_PWD");
  const auto found = missing_secrets(load(env), {}, env, names);
  ASSERT_EQ(found.size(), 1u) << joined(found);
  EXPECT_THAT(found[0].message, HasSubstr("did you mean 'SRC_PWD'?"));
}

TEST(EnvironmentNames, ListsThisProcesssVariables) {
  setenv("CUTPILOT_PREFLIGHT_TEST", "1", 1);
  const auto names = environment_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "CUTPILOT_PREFLIGHT_TEST"), names.end());
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
}

}  // namespace
}  // namespace cutpilot::plans::test
