// The journal on its own: replaying approvals (who and how), revocations, a downtime ended by
// rollback, unknown records, and damage: a torn last line is ended before the next append,
// and every unreadable line is reported with its number and, where legible, its step.
#include <gtest/gtest.h>

#include <fstream>

#include "run/journal.h"
#include "tests/run/executor_harness.h"

namespace cutpilot::plans::test {
namespace {

// A state directory holding a journal with the given text.
struct JournalDir {
  explicit JournalDir(const std::string& text) { std::ofstream(path(), std::ios::trunc) << text; }
  std::string path() const { return dir.path() + "/" + kJournalFile; }
  JournalState replay() const {
    std::string error;
    auto state = replay_journal(dir.path(), error);
    EXPECT_TRUE(state) << error;
    return state ? *state : JournalState{};
  }
  TempDir dir;
};

constexpr const char* kStart = R"({"r":"run","run":"r1","plan":"p.toml","sha256":"ab","t":100})"
                               "\n";

TEST(JournalReplay, ApprovalsKeepWhoAndHowAndARevokeTakesThemBack) {
  JournalDir j(std::string(kStart) +
               R"({"r":"approve","step":"a","by":"ann","how":"gate","t":101})"
               "\n"
               R"({"r":"approve","step":"b","by":"bob","how":"ahead","t":102})"
               "\n"
               R"J({"r":"approve","step":"c","by":"cy (--approve-all)","t":103})J"
               "\n"
               R"({"r":"revoke","step":"b","by":"ann","t":104})"
               "\n"
               R"J({"r":"approve","step":"d","by":"dee (--approve)","how":"--approve","t":105})J"
               "\n");
  const JournalState state = j.replay();
  EXPECT_TRUE(state.steps.at("a").approved);
  EXPECT_EQ(state.steps.at("a").approved_by, "ann");
  EXPECT_EQ(state.steps.at("a").approved_how, "gate");
  EXPECT_FALSE(state.steps.at("b").approved);
  EXPECT_EQ(state.steps.at("b").approved_by, "");
  EXPECT_EQ(state.steps.at("c").approved_by, "cy") << "an older record's suffix is its how";
  EXPECT_EQ(state.steps.at("c").approved_how, "--approve-all");
  EXPECT_EQ(state.steps.at("d").approved_by, "dee");
  EXPECT_EQ(state.steps.at("d").approved_how, "--approve");
}

TEST(JournalReplay, ADowntimeEndedByRollbackSaysSo) {
  JournalDir j(std::string(kStart) +
               R"({"r":"downtime","state":"started","predicted_s":30,"t":110})"
               "\n"
               R"({"r":"downtime","state":"ended","seconds":62,"how":"rollback","t":172})"
               "\n");
  const JournalState state = j.replay();
  EXPECT_EQ(state.downtime_started_unix, 110);
  EXPECT_EQ(state.downtime_ended_unix, 172);
  EXPECT_EQ(state.downtime_seconds, 62);
  EXPECT_EQ(state.downtime_ended_how, "rollback");
  EXPECT_EQ(state.predicted_s, 30);
  EXPECT_EQ(state.last_unix, 172);
}

TEST(JournalReplay, UnknownRecordsAndOddFieldTypesDoNotStopTheReplay) {
  JournalDir j(std::string(kStart) +
               R"({"r":"unknown","step":"a","whatever":[1,2],"t":101})"
               "\n"
               R"({"r":"step","step":"a","state":"running","attempt":1,"t":"late"})"
               "\n"
               R"({"r":"step","step":"a","state":"succeeded","attempt":1,"t":105})"
               "\n");
  const JournalState state = j.replay();
  EXPECT_EQ(state.steps.at("a").state, "succeeded");
  EXPECT_EQ(state.steps.at("a").ended_unix, 105);
  EXPECT_TRUE(state.damaged.empty());
}

TEST(JournalReplay, StepTimesAndJobOutcomesOfTheLastAttempt) {
  JournalDir j(
      std::string(kStart) +
      R"({"r":"step","step":"a","state":"running","attempt":1,"t":101})"
      "\n"
      R"({"r":"job","step":"a","host":"h","job":"r1/a/h/1","t":101})"
      "\n"
      R"({"r":"done","job":"r1/a/h/1","step":"a","host":"h","state":"failed","exit":2,"error":"no","result":null,"t":102})"
      "\n"
      R"({"r":"step","step":"a","state":"failed","attempt":1,"t":102})"
      "\n"
      R"({"r":"step","step":"a","state":"running","attempt":2,"t":110})"
      "\n"
      R"({"r":"job","step":"a","host":"h","job":"r1/a/h/2","t":110})"
      "\n"
      R"({"r":"done","job":"r1/a/h/2","step":"a","host":"h","state":"succeeded","exit":0,"error":"","result":{"bytes":5},"t":120})"
      "\n"
      R"({"r":"step","step":"a","state":"succeeded","attempt":2,"t":120})"
      "\n");
  const JournalState state = j.replay();
  const JournalStep& a = state.steps.at("a");
  EXPECT_EQ(a.attempt, 2u);
  EXPECT_EQ(a.started_unix, 110);
  EXPECT_EQ(a.ended_unix, 120);
  ASSERT_EQ(a.done.size(), 1u);
  EXPECT_EQ(a.done[0]["state"], "succeeded");
  EXPECT_EQ(a.results[0]["bytes"], 5);
  EXPECT_EQ(a.last_line, 9u);
}

TEST(JournalDamage, GarbageLinesAreReportedWithNumbersAndTheirSteps) {
  JournalDir j(std::string(kStart) +
               R"({"r":"step","step":"a","state":"running","attempt":1,"t":101})"
               "\n"
               R"({"r":"job","step":"a","host":"h","job":"r1/a/h/1","t":101})"
               "\n"
               "\x01\x02 not json at all\n"
               R"({"r":"done","job":"r1/a/h/1","sta)"
               "\n"
               R"({"r":"step","step":"b","state":"succeeded","attempt":1,"t":130})"
               "\n"
               R"({"r":"step","step":"c","state":"succ)");
  const JournalState state = j.replay();
  ASSERT_EQ(state.damaged.size(), 3u);
  EXPECT_EQ(state.torn, 3u);
  EXPECT_EQ(state.damaged[0].line, 4u);
  EXPECT_EQ(state.damaged[0].step, "") << "garbage names no step";
  EXPECT_EQ(state.damaged[1].line, 5u);
  EXPECT_EQ(state.damaged[1].step, "a") << "the job it names belongs to a";
  EXPECT_EQ(state.damaged[2].line, 7u);
  EXPECT_EQ(state.damaged[2].step, "c");
  EXPECT_TRUE(state.unterminated);
  EXPECT_EQ(state.damage_from(), 4u);
  EXPECT_TRUE(state.steps.at("a").damaged);
  EXPECT_FALSE(state.steps.at("b").damaged);
  EXPECT_TRUE(state.steps.at("c").damaged);
  EXPECT_TRUE(state.in_doubt("b")) << "the unattributed garbage may have been about b";
}

TEST(JournalDamage, AnAttributedLineLeavesOtherStepsTrusted) {
  JournalDir j(std::string(kStart) +
               R"({"r":"step","step":"b","state":"succeeded","attempt":1,"t":130})"
               "\n"
               R"({"r":"step","step":"c","state":"succ)");
  const JournalState state = j.replay();
  EXPECT_TRUE(state.in_doubt("c"));
  EXPECT_FALSE(state.in_doubt("b"));
  EXPECT_EQ(state.damage_from(), 3u);
}

TEST(JournalDamage, OpeningEndsATornLastLineSoTheNextRecordSurvives) {
  JournalDir j(std::string(kStart) + R"({"r":"step","step":"c","state":"succ)");
  Journal journal;
  std::string error;
  ASSERT_TRUE(journal.open(j.dir.path(), error)) << error;
  EXPECT_TRUE(journal.ended_torn_line());
  ASSERT_TRUE(journal.append({{"r", "resume"}, {"sha256", "cd"}}));
  const JournalState state = j.replay();
  EXPECT_EQ(state.plan_sha256, "cd") << "the resume record was glued onto the fragment";
  ASSERT_EQ(state.damaged.size(), 1u);
  EXPECT_EQ(state.damaged[0].line, 2u);
  EXPECT_FALSE(state.unterminated);
}

TEST(JournalDamage, AnIntactJournalIsLeftAsItIs) {
  JournalDir j(kStart);
  Journal journal;
  std::string error;
  ASSERT_TRUE(journal.open(j.dir.path(), error)) << error;
  EXPECT_FALSE(journal.ended_torn_line());
  EXPECT_EQ(read_text(j.path()), kStart);
  EXPECT_TRUE(j.replay().damaged.empty());
  EXPECT_EQ(j.replay().damage_from(), 0u);
}

}  // namespace
}  // namespace cutpilot::plans::test
