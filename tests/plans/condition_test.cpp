// `when` conditions: what parses, what does not, and how each evaluates.
#include <gtest/gtest.h>

#include <map>

#include "plans/step.h"

namespace cutpilot::plans {
namespace {

Condition parsed(std::string_view text) {
  std::string error;
  std::optional<Condition> condition = parse_condition(text, error);
  EXPECT_TRUE(condition.has_value()) << text << ": " << error;
  return condition.value_or(Condition{});
}

std::string refused(std::string_view text) {
  std::string error;
  EXPECT_FALSE(parse_condition(text, error).has_value()) << text;
  return error;
}

// Outcomes of earlier steps, as an executor would give them.
OutcomeLookup outcomes(std::map<std::string, StepOutcome, std::less<>> known) {
  return [known = std::move(known)](std::string_view step) -> std::optional<StepOutcome> {
    const auto found = known.find(step);
    if (found == known.end()) return std::nullopt;
    return found->second;
  };
}

TEST(Condition, StateTests) {
  const Condition c = parsed("copy.succeeded");
  EXPECT_EQ(c.step, "copy");
  EXPECT_EQ(c.state, std::optional<std::string>("succeeded"));
  EXPECT_FALSE(c.negated);
  const Condition n = parsed("  not   stop-app.failed ");
  EXPECT_TRUE(n.negated);
  EXPECT_EQ(n.step, "stop-app");
  EXPECT_EQ(n.state, std::optional<std::string>("failed"));
  EXPECT_EQ(parsed("x.skipped").state, std::optional<std::string>("skipped"));
}

TEST(Condition, ResultComparisons) {
  const Condition c = parsed("estimate.result.bytes <= 52428800");
  EXPECT_EQ(c.step, "estimate");
  EXPECT_EQ(c.field, std::vector<std::string>{"bytes"});
  EXPECT_EQ(c.op, CompareOp::kLessEqual);
  EXPECT_EQ(c.number, 52428800);
  EXPECT_EQ(parsed("a.result.x.y != -1.5").field, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(parsed("a.result.x>=2").op, CompareOp::kGreaterEqual);
  EXPECT_EQ(parsed("a.result.x<2").op, CompareOp::kLess);
  EXPECT_EQ(parsed("a.result.x == 0").op, CompareOp::kEqual);
}

TEST(Condition, MalformedTextIsRefusedWithAReason) {
  EXPECT_NE(refused("").find("is not a condition"), std::string::npos);
  EXPECT_NE(refused("copy").find("is not a condition"), std::string::npos);
  EXPECT_NE(refused("copy.done").find("not a state"), std::string::npos);
  EXPECT_NE(refused("copy.bytes > 3").find("not a result field"), std::string::npos);
  EXPECT_NE(refused("copy.result > 3").find("not a result field"), std::string::npos);
  EXPECT_NE(refused("copy.result.bytes > lots").find("not a number"), std::string::npos);
  EXPECT_NE(refused("copy.result.bytes > 0x10").find("not a number"), std::string::npos);
  EXPECT_NE(refused("copy.result.bytes > nan").find("not a number"), std::string::npos);
  EXPECT_NE(refused("copy.result..bytes > 1").find("malformed field"), std::string::npos);
  EXPECT_NE(refused("co py.succeeded").find("is not a condition"), std::string::npos);
}

TEST(Condition, StateTestsCompareTheFinalState) {
  const auto lookup = outcomes({{"a", {"succeeded", {}}}, {"b", {"failed", {}}}});
  EXPECT_TRUE(evaluate(parsed("a.succeeded"), lookup));
  EXPECT_FALSE(evaluate(parsed("a.failed"), lookup));
  EXPECT_TRUE(evaluate(parsed("b.failed"), lookup));
  EXPECT_FALSE(evaluate(parsed("not a.succeeded"), lookup));
  // A step without an outcome has no state: the test is false, its negation true.
  EXPECT_FALSE(evaluate(parsed("c.succeeded"), lookup));
  EXPECT_TRUE(evaluate(parsed("not c.succeeded"), lookup));
}

TEST(Condition, ResultTestsHoldOnlyWhenEveryHostsNumberDoes) {
  const auto lookup = outcomes({
      {"one", {"succeeded", {R"({"bytes": 100, "nested": {"n": 3}, "good": true})"}}},
      {"two", {"succeeded", {R"({"bytes": 100})", R"({"bytes": 5000})"}}},
      {"odd", {"succeeded", {R"({"bytes": "many"})", "not json"}}},
      {"none", {"failed", {}}},
  });
  EXPECT_TRUE(evaluate(parsed("one.result.bytes < 1000"), lookup));
  EXPECT_FALSE(evaluate(parsed("one.result.bytes > 1000"), lookup));
  EXPECT_TRUE(evaluate(parsed("one.result.bytes == 100"), lookup));
  EXPECT_TRUE(evaluate(parsed("one.result.nested.n >= 3"), lookup));
  EXPECT_TRUE(evaluate(parsed("one.result.good == 1"), lookup));
  EXPECT_FALSE(evaluate(parsed("two.result.bytes < 1000"), lookup));  // one host moved more
  EXPECT_TRUE(evaluate(parsed("two.result.bytes > 10"), lookup));
  EXPECT_FALSE(evaluate(parsed("odd.result.bytes > 0"), lookup));    // not a number
  EXPECT_FALSE(evaluate(parsed("one.result.missing > 0"), lookup));  // no such field
  EXPECT_FALSE(evaluate(parsed("none.result.bytes > 0"), lookup));   // no results
  EXPECT_TRUE(evaluate(parsed("not none.result.bytes > 0"), lookup));
  EXPECT_FALSE(evaluate(parsed("gone.result.bytes > 0"), lookup));  // no outcome
}

}  // namespace
}  // namespace cutpilot::plans
