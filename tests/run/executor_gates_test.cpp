// The executor's gates: approvals at the gate and ahead, revocation, confirm texts typed on
// every path.
#include "run/executor.h"

#include <gtest/gtest.h>

#include "tests/run/executor_harness.h"
#include "tests/run/executor_steps.h"

namespace cutpilot::plans::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

TEST(ExecutorGates, GatedStepWaitsUntilApproved) {
  Bench b(gated_plan());
  b.begin();
  b.finish("r1/a/source/1");
  EXPECT_EQ(b.state("g"), "awaiting-approval");
  b.advance(1h);
  EXPECT_EQ(b.port.count("r1/g/target/1"), 0u);
  EXPECT_THAT(b.command(CommandKind::kApprove, "a"), HasSubstr("has no gate"));
  EXPECT_EQ(b.command(CommandKind::kApprove, "g"), "");
  EXPECT_EQ(b.port.count("r1/g/target/1"), 1u);
  EXPECT_THAT(b.command(CommandKind::kApprove, "g"), HasSubstr("already approved"));

  const auto approvals = b.records("approve");
  ASSERT_EQ(approvals.size(), 1u);
  EXPECT_EQ(approvals[0].value("step", ""), "g");
  EXPECT_EQ(approvals[0].value("by", ""), "alice@laptop");
  EXPECT_THAT(b.audit(),
              HasSubstr("approve step=g by=alice@laptop plan=sha256:" + b.plan.sha256 + " run=r1"));
}

TEST(ExecutorGates, ConfirmTextMustBeTypedExactly) {
  Bench b(gated_plan());
  b.begin();
  EXPECT_EQ(b.state("h"), "awaiting-approval");
  EXPECT_THAT(b.command(CommandKind::kApprove, "h"), HasSubstr("DROP shop"));
  EXPECT_THAT(b.command(CommandKind::kApprove, "h", "drop shop"), HasSubstr("typed exactly"));
  EXPECT_EQ(b.port.count("r1/h/target/1"), 0u);
  EXPECT_TRUE(b.records("approve").empty());
  EXPECT_EQ(b.command(CommandKind::kApprove, "h", "DROP shop"), "");
  EXPECT_EQ(b.port.count("r1/h/target/1"), 1u);
}

TEST(ExecutorGates, ApproveUpFrontSkipsTheWaitForThatStepOnly) {
  ExecutorOptions options;
  options.approve = {"g"};
  Bench b(gated_plan(), options);
  b.begin();
  b.finish("r1/a/source/1");
  EXPECT_EQ(b.port.count("r1/g/target/1"), 1u);
  EXPECT_EQ(b.state("h"), "awaiting-approval");
  EXPECT_THAT(b.audit(),
              HasSubstr("approve step=g by=op@cockpit (--approve) plan=sha256:" + b.plan.sha256));
}

TEST(ExecutorGates, ApproveAllCountsAsEveryConfirmation) {
  ExecutorOptions options;
  options.approve_all = true;
  Bench b(gated_plan(), options);
  b.begin();
  EXPECT_EQ(b.port.count("r1/h/target/1"), 1u);
  b.finish("r1/a/source/1");
  EXPECT_EQ(b.port.count("r1/g/target/1"), 1u);
  EXPECT_EQ(b.records("approve").size(), 2u);
  EXPECT_THAT(b.audit(), HasSubstr("approve step=h by=op@cockpit (--approve-all)"));
}

TEST(ExecutorGates, ApprovingAStepThatIsNotWaitingIsRefusedUnlessAhead) {
  Bench b(gated_plan());
  b.begin();
  ASSERT_EQ(b.state("g"), "pending") << "a still runs";
  EXPECT_THAT(b.command(CommandKind::kApprove, "g"),
              HasSubstr("g is not waiting for approval: it is pending"));
  EXPECT_TRUE(b.records("approve").empty()) << "a refused approval arms nothing";
  Command ahead{CommandKind::kApprove, "g", "alice@laptop"};
  ahead.ahead = true;
  EXPECT_EQ(b.exec->command(ahead, b.now), "");
  const auto status = b.exec->status(b.now);
  EXPECT_EQ(status["pre_approved"], nlohmann::json::array({"g"}));
  EXPECT_THAT(b.audit(), HasSubstr("approve step=g by=alice@laptop (ahead)"));
  EXPECT_EQ(b.command(CommandKind::kRevoke, "g"), "");
  EXPECT_THAT(b.audit(), HasSubstr("revoke step=g by=alice@laptop"));
  EXPECT_EQ(b.exec->status(b.now)["pre_approved"], nlohmann::json::array());
  b.finish("r1/a/source/1");
  EXPECT_EQ(b.state("g"), "awaiting-approval") << "a revoked approval waits at the gate";
  EXPECT_EQ(b.port.count("r1/g/target/1"), 0u);
  EXPECT_THAT(b.command(CommandKind::kRevoke, "g"), HasSubstr("no approval to take back"));
}

TEST(ExecutorGates, AnAheadApprovalLetsTheStepRunWithoutStopping) {
  Bench b(gated_plan());
  b.begin();
  Command ahead{CommandKind::kApprove, "g", "alice@laptop"};
  ahead.ahead = true;
  ASSERT_EQ(b.exec->command(ahead, b.now), "");
  b.finish("r1/a/source/1");
  EXPECT_EQ(b.port.count("r1/g/target/1"), 1u);
  EXPECT_THAT(b.command(CommandKind::kRevoke, "g"), HasSubstr("already started"));
}

TEST(ExecutorGates, AnUpFrontApprovalOfAConfirmStepNeedsItsText) {
  ExecutorOptions options;
  options.approve = {"h"};
  Bench b(gated_plan(), options);
  std::string error;
  EXPECT_FALSE(b.exec->begin(b.now, error));
  EXPECT_THAT(error, HasSubstr("--approve 'h=DROP shop'"));
  EXPECT_TRUE(b.port.starts.empty());

  ExecutorOptions typed;
  typed.approve = {"h"};
  typed.approve_confirm = {{"h", "DROP shop"}};
  Bench c(gated_plan(), typed);
  c.begin();
  EXPECT_EQ(c.port.count("r1/h/target/1"), 1u);

  ExecutorOptions wrong;
  wrong.approve = {"h"};
  wrong.approve_confirm = {{"h", "drop shop"}};
  Bench d(gated_plan(), wrong);
  EXPECT_FALSE(d.exec->begin(d.now, error));
}

TEST(ExecutorGates, AnUpFrontApprovalOfAStepWithoutAGateIsRefused) {
  ExecutorOptions options;
  options.approve = {"a"};
  Bench b(gated_plan(), options);
  std::string error;
  EXPECT_FALSE(b.exec->begin(b.now, error));
  EXPECT_THAT(error, HasSubstr("a has no gate"));
}

}  // namespace
}  // namespace cutpilot::plans::test
