// The cockpit's keys: the table, prompts before every command, the confirm text.
#include "tui/keys.h"

#include <curses.h>
#include <gtest/gtest.h>

#include <set>

#include "plans/load.h"
#include "tui/synthetic.h"

namespace cutpilot::tui {
namespace {

using plans::CommandKind;
using plans::StepState;

class KeysTest : public ::testing::Test {
 protected:
  KeysTest() : loaded_(plans::load_plan_text(demo_plan_text(), "demo.toml")), model_(loaded_.plan) {
    ui_.by = "ops@cockpit";
  }
  void SetUp() override { ASSERT_TRUE(loaded_.ok()); }
  void set(const char* id, StepState state) {
    model_.apply(plans::StepEvent{.step = id, .state = state}, Clock::now());
  }
  std::optional<plans::Command> press(int key) { return handle_key(ui_, model_, key); }
  std::optional<plans::Command> type(std::string_view text) {
    std::optional<plans::Command> out;
    for (char c : text)
      if (auto cmd = press(static_cast<unsigned char>(c))) out = cmd;
    return out;
  }
  plans::LoadResult loaded_;
  Model model_;
  UiState ui_;
};

TEST(KeyTable, EveryKeyHasOneActionAndEveryActionAKey) {
  std::set<int> seen;
  std::set<KeyAction> actions;
  for (const KeyBinding& binding : key_table()) {
    EXPECT_TRUE(actions.insert(binding.action).second) << binding.names;
    EXPECT_NE(std::string(binding.help), "");
    for (int key : binding.keys) {
      if (key != -1) {
        EXPECT_TRUE(seen.insert(key).second) << binding.names << " repeats a key";
      }
    }
  }
  EXPECT_EQ(actions.size(), static_cast<size_t>(KeyAction::kLeave) + 1);
  EXPECT_EQ(action_for_key('j'), KeyAction::kDown);
  EXPECT_EQ(action_for_key(KEY_DOWN), KeyAction::kDown);
  EXPECT_EQ(action_for_key('\t'), KeyAction::kNextPane);
  EXPECT_EQ(action_for_key('Z'), std::nullopt);
}

TEST_F(KeysTest, ApproveAsksFirstAndNoSendsNothing) {
  set("start-target", StepState::kAwaitingApproval);
  EXPECT_FALSE(press('a'));
  ASSERT_TRUE(ui_.prompt);
  EXPECT_NE(ui_.prompt->question.find("start-target"), std::string::npos);
  EXPECT_FALSE(press('n'));
  EXPECT_FALSE(ui_.prompt);
  EXPECT_EQ(ui_.message, "cancelled");
  press('a');
  const auto cmd = press('y');
  ASSERT_TRUE(cmd);
  EXPECT_EQ(cmd->kind, CommandKind::kApprove);
  EXPECT_EQ(cmd->step, "start-target");
  EXPECT_EQ(cmd->by, "ops@cockpit");
}

TEST_F(KeysTest, AStepWithConfirmWantsItsTextTyped) {
  set("stop-app", StepState::kAwaitingApproval);
  press('a');
  ASSERT_TRUE(ui_.prompt);
  EXPECT_EQ(ui_.prompt->kind, Prompt::Kind::kTypeConfirm);
  EXPECT_FALSE(type("stop shpo"));
  EXPECT_FALSE(press('\r'));  // wrong text: nothing sent
  EXPECT_NE(ui_.message.find("does not match"), std::string::npos);
  press('a');
  type("stop shpx");
  press(KEY_BACKSPACE);
  press(KEY_BACKSPACE);
  type("op");
  EXPECT_EQ(ui_.prompt->typed, "stop shop");
  const auto cmd = press('\r');
  ASSERT_TRUE(cmd);
  EXPECT_EQ(cmd->step, "stop-app");
  EXPECT_EQ(cmd->confirm, "stop shop");
}

TEST_F(KeysTest, EscapeCancelsTheConfirmText) {
  set("stop-app", StepState::kAwaitingApproval);
  press('a');
  type("stop shop");
  EXPECT_FALSE(press(27));
  EXPECT_FALSE(ui_.prompt);
}

TEST_F(KeysTest, NothingToApproveSaysSo) {
  EXPECT_FALSE(press('a'));
  EXPECT_FALSE(ui_.prompt);
  EXPECT_EQ(ui_.message, "no step is awaiting approval");
}

TEST_F(KeysTest, SkipRetryAndAbortAskBeforeActing) {
  set("presync", StepState::kFailed);
  ui_.step = 0;
  press('r');
  ASSERT_TRUE(ui_.prompt);
  auto cmd = press('y');
  ASSERT_TRUE(cmd);
  EXPECT_EQ(cmd->kind, CommandKind::kRetry);
  press('s');
  cmd = press('Y');
  ASSERT_TRUE(cmd);
  EXPECT_EQ(cmd->kind, CommandKind::kSkip);
  EXPECT_EQ(cmd->step, "presync");
  press('x');
  EXPECT_FALSE(press('q'));  // any other key is no, even q
  EXPECT_FALSE(ui_.leave);
  press('x');
  cmd = press('y');
  ASSERT_TRUE(cmd);
  EXPECT_EQ(cmd->kind, CommandKind::kAbort);
  EXPECT_EQ(cmd->step, "");
}

TEST_F(KeysTest, RetryOnlyAFailedStep) {
  set("presync", StepState::kRunning);
  press('r');
  EXPECT_FALSE(ui_.prompt);
  EXPECT_NE(ui_.message.find("has not failed"), std::string::npos);
}

TEST_F(KeysTest, AfterTheEndCommandsAreRefusedAndQLeaves) {
  model_.apply(plans::RunEvent{.state = "succeeded"}, Clock::now());
  press('x');
  EXPECT_FALSE(ui_.prompt);
  EXPECT_EQ(ui_.message, "the run has ended");
  press('q');
  EXPECT_TRUE(ui_.leave);
}

TEST_F(KeysTest, QInsideTheDowntimeWindowAsksFirst) {
  model_.apply(plans::DowntimeEvent{.state = "started", .seconds = 3}, Clock::now());
  EXPECT_FALSE(press('q'));
  ASSERT_TRUE(ui_.prompt);
  EXPECT_NE(ui_.prompt->question.find("downtime window is open"), std::string::npos);
  EXPECT_FALSE(press('n'));
  EXPECT_FALSE(ui_.leave);
  EXPECT_FALSE(ui_.prompt);
  press('q');
  EXPECT_FALSE(press('y'));  // yes leaves; it sends no command
  EXPECT_TRUE(ui_.leave);
}

TEST_F(KeysTest, QOutsideTheDowntimeWindowLeavesAtOnce) {
  model_.apply(plans::DowntimeEvent{.state = "started", .seconds = 3}, Clock::now());
  model_.apply(plans::DowntimeEvent{.state = "ended", .seconds = 9}, Clock::now());
  press('q');
  EXPECT_FALSE(ui_.prompt);
  EXPECT_TRUE(ui_.leave);
}

TEST_F(KeysTest, MovingTheSelectionStopsFollowingTheRun) {
  set("copy-db", StepState::kRunning);
  follow_run(ui_, model_);
  EXPECT_EQ(ui_.step, 2u);
  press('k');
  EXPECT_EQ(ui_.step, 1u);
  EXPECT_FALSE(ui_.step_follows);
  set("start-target", StepState::kRunning);
  follow_run(ui_, model_);
  EXPECT_EQ(ui_.step, 1u);
  // The log now shows the selected step's lines.
  EXPECT_EQ(ui_.log_query(model_).step, "stop-app");
  press('f');  // off
  press('f');  // on again: back to the run
  EXPECT_EQ(ui_.step, 3u);
  press(KEY_UP);
  press(KEY_UP);
  press(KEY_UP);
  press(KEY_UP);
  press(KEY_UP);
  EXPECT_EQ(ui_.step, 0u);  // stops at the first
}

TEST_F(KeysTest, TabCyclesPanesAndTheHostSelectionDrivesTheLog) {
  press('\t');
  EXPECT_EQ(ui_.focus, Pane::kHosts);
  press('j');
  EXPECT_EQ(ui_.host, 1u);
  EXPECT_EQ(ui_.log_query(model_).host, "target");
  press(KEY_BTAB);
  EXPECT_EQ(ui_.focus, Pane::kSteps);
  press(KEY_BTAB);
  EXPECT_EQ(ui_.focus, Pane::kLog);
  press('L');
  EXPECT_EQ(ui_.log_query(model_).host, "");
}

TEST_F(KeysTest, FilterPromptSetsAndClearsTheFilter) {
  press('/');
  ASSERT_TRUE(ui_.prompt);
  type("error");
  press('\n');
  EXPECT_EQ(ui_.filter, "error");
  EXPECT_EQ(ui_.log_query(model_).text, "error");
  press('/');
  for (int i = 0; i < 5; ++i)
    press(127);
  press('\n');
  EXPECT_EQ(ui_.filter, "");
}

TEST_F(KeysTest, ScrollingTheLogPausesItAndTheEndFollowsAgain) {
  for (int i = 0; i < 50; ++i)
    model_.apply(plans::LogEvent{.line = "l" + std::to_string(i)}, Clock::now());
  ui_.focus = Pane::kLog;
  press('k');
  EXPECT_FALSE(ui_.follow);
  EXPECT_EQ(ui_.log_end, 49u);
  press('G');
  EXPECT_TRUE(ui_.follow);
  press('g');
  EXPECT_EQ(ui_.log_end, 1u);
}

TEST_F(KeysTest, HelpOpensAndAnyKeyClosesIt) {
  press('?');
  EXPECT_TRUE(ui_.help);
  model_.take_dirty();
  press('a');  // closes the table only: no approval prompt
  EXPECT_FALSE(ui_.help);
  EXPECT_FALSE(ui_.prompt);
  EXPECT_EQ(model_.take_dirty(), part::kAll);
}

}  // namespace
}  // namespace cutpilot::tui
