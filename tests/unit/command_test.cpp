// The job runner's command runner: lines, piping one command into another (counted,
// with backpressure), stdin text, and a consumer that stops reading early.
#include "agents/command.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>

namespace cutpilot::agent {
namespace {

// A job context logging into a temp file, with the signals the runner blocks blocked.
class Commands : public ::testing::Test {
 protected:
  void SetUp() override {
    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGTERM, SIGINT, SIGCHLD})
      sigaddset(&signals, s);
    sigprocmask(SIG_BLOCK, &signals, &saved_);
    signal(SIGPIPE, SIG_IGN);
    char path[] = "/tmp/cutpilot-command-XXXXXX";
    log_fd_ = mkstemp(path);
    ASSERT_GE(log_fd_, 0);
    unlink(path);
  }
  void TearDown() override {
    close(log_fd_);
    sigprocmask(SIG_SETMASK, &saved_, nullptr);
  }
  // Runs commands; stdout lines per command index, and bytes piped per producer.
  RunResult run(const std::vector<Command>& commands) {
    JobContext job("test", "/tmp", log_fd_, 1);
    lines_.assign(commands.size(), {});
    piped_.assign(commands.size(), 0);
    return run_commands(
        commands,
        [&](size_t i, proto::Stream stream, std::string line) {
          if (stream == proto::Stream::kStdout) lines_[i].push_back(line);
        },
        {.timeout = std::chrono::seconds(50),
         .piped = [&](size_t i, uint64_t n) { piped_[i] += n; }},
        job);
  }
  sigset_t saved_{};
  int log_fd_ = -1;
  std::vector<std::vector<std::string>> lines_;
  std::vector<uint64_t> piped_;
};

TEST_F(Commands, PipesOneCommandIntoAnotherAndCountsTheBytes) {
  // 20 MB through a 1 MiB buffer: the producer is held back while the consumer catches up.
  const auto run = this->run(
      {{.argv = {"head", "-c", "20000000", "/dev/zero"}}, {.argv = {"wc", "-c"}, .stdin_from = 0}});
  ASSERT_EQ(run.commands.size(), 2u);
  EXPECT_EQ(run.commands[0].exit_code, 0);
  EXPECT_EQ(run.commands[1].exit_code, 0);
  EXPECT_TRUE(lines_[0].empty()) << "a producer's stdout is piped, never read as lines";
  ASSERT_EQ(lines_[1].size(), 1u);
  EXPECT_EQ(std::atoll(lines_[1][0].c_str()), 20000000);
  EXPECT_EQ(piped_[0], 20000000u);
}

TEST_F(Commands, StdinTextComesFirstThenThePipe) {
  const auto run = this->run({{.argv = {"printf", "a\\nb\\n"}},
                              {.argv = {"sh", "-c", "read -r secret; echo first:$secret; cat"},
                               .stdin_from = 0,
                               .stdin_text = "s3cret\n"}});
  EXPECT_EQ(run.commands[1].exit_code, 0);
  EXPECT_EQ(lines_[1], (std::vector<std::string>{"first:s3cret", "a", "b"}));
}

TEST_F(Commands, ConsumerThatStopsReadingEndsTheProducer) {
  const auto started = std::chrono::steady_clock::now();
  const auto run = this->run({{.argv = {"yes"}}, {.argv = {"head", "-c", "10"}, .stdin_from = 0}});
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  EXPECT_EQ(run.commands[1].exit_code, 0);
  EXPECT_EQ(run.commands[0].exit_code, 128 + SIGPIPE) << "yes should die of a broken pipe";
  EXPECT_EQ(run.stop, StopReason::kNone);
}

TEST_F(Commands, ProducerFailureIsSeenWhileTheConsumerSucceeds) {
  const auto run = this->run(
      {{.argv = {"sh", "-c", "echo partial; exit 3"}}, {.argv = {"cat"}, .stdin_from = 0}});
  EXPECT_EQ(run.commands[0].exit_code, 3);
  EXPECT_EQ(run.commands[1].exit_code, 0);
  EXPECT_EQ(lines_[1], (std::vector<std::string>{"partial"}));
}

TEST_F(Commands, FinishedCommandStartsAnotherWhileTheRestStillRun) {
  // The first command's end (with its output read) starts a third while the second runs:
  // the third's line arrives before the second ends, with the next index.
  JobContext job("test", "/tmp", log_fd_, 1);
  std::vector<std::pair<size_t, int>> told;
  std::vector<std::string> order;
  const auto run = run_commands(
      {{.argv = {"sh", "-c", "echo first; exit 0"}},
       {.argv = {"sh", "-c", "sleep 0.5; echo second"}}},
      [&](size_t i, proto::Stream stream, std::string line) {
        if (stream == proto::Stream::kStdout) order.push_back(std::to_string(i) + ":" + line);
      },
      {.timeout = std::chrono::seconds(20),
       .finished = [&](size_t i, int code) -> std::vector<Command> {
         told.emplace_back(i, code);
         if (i != 0) return {};
         return {{.argv = {"echo", "third"}}, {.argv = {"/no/such/program"}}};
       }},
      job);
  ASSERT_EQ(run.commands.size(), 4u);
  EXPECT_EQ(order, (std::vector<std::string>{"0:first", "2:third", "1:second"}));
  EXPECT_EQ(run.commands[2].exit_code, 0);
  EXPECT_NE(run.commands[3].start_error.find("cannot run /no/such/program"), std::string::npos)
      << run.commands[3].start_error;
  // Told once per command that ran, never for one that could not start.
  EXPECT_EQ(told, (std::vector<std::pair<size_t, int>>{{0, 0}, {2, 0}, {1, 0}}));
}

TEST_F(Commands, CleanEndOfThePipeIsFollowedByStdinAfter) {
  // The text is asked for once the producer exited 0, and reaches the consumer after the pipe.
  int asked = 0;
  Command consumer{.argv = {"cat"}, .stdin_from = 0};
  consumer.stdin_after = [&] {
    ++asked;
    return std::string("after\n");
  };
  const auto run = this->run({{.argv = {"printf", "one\\ntwo\\n"}}, consumer});
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(run.commands[1].exit_code, 0);
  EXPECT_EQ(lines_[1], (std::vector<std::string>{"one", "two", "after"}));
}

TEST_F(Commands, FailedProducerStopsAConsumerThatMustNotSeeACutStream) {
  // A restore reading a dump that died half-way is stopped, not given EOF (it would commit).
  Command consumer{.argv = {"sh", "-c", "cat; echo committed"}, .stdin_from = 0};
  consumer.stop_if_producer_fails = true;
  consumer.stdin_after = [] { return std::string("after\n"); };
  const auto run = this->run({{.argv = {"sh", "-c", "echo partial; sleep 0.2; exit 3"}}, consumer});
  EXPECT_EQ(run.commands[0].exit_code, 3);
  EXPECT_EQ(run.commands[1].exit_code, 128 + SIGTERM);
  for (const auto& line : lines_[1])
    EXPECT_TRUE(line != "committed" && line != "after") << line;
}

TEST_F(Commands, ThrottledOutputArrivesWholeAndInOrderInFewBatches) {
  // 100 lines over about a second, read at most every 200 ms: every line, in order, in a
  // handful of wake-ups instead of one per line.
  JobContext job("test", "/tmp", log_fd_, 1);
  std::vector<std::string> got;
  std::vector<std::chrono::steady_clock::time_point> at;
  const auto run = run_commands(
      {{.argv = {"sh", "-c", "i=1; while [ $i -le 100 ]; do echo $i; sleep 0.01; i=$((i+1)); done"},
        .read_every = std::chrono::milliseconds(200)}},
      [&](size_t, proto::Stream stream, std::string line) {
        if (stream != proto::Stream::kStdout) return;
        got.push_back(line);
        at.push_back(std::chrono::steady_clock::now());
      },
      {.timeout = std::chrono::seconds(50)}, job);
  EXPECT_EQ(run.commands[0].exit_code, 0);
  ASSERT_EQ(got.size(), 100u);
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_EQ(got[i], std::to_string(i + 1));
  int batches = 1;
  for (size_t i = 1; i < at.size(); ++i)
    if (at[i] - at[i - 1] > std::chrono::milliseconds(50)) ++batches;
  // At most one wake-up per 200 ms however long a loaded machine makes the producer take
  // (about 1 s idle: some 6 batches), plus the first read and the end.
  const auto span = at.back() - at.front();
  const auto allowed = static_cast<int>(span / std::chrono::milliseconds(200)) + 3;
  EXPECT_LE(batches, allowed) << "lines were read as they came, not in batches";
}

}  // namespace
}  // namespace cutpilot::agent
