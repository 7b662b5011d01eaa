// A greeted `cutpilot-agent serve` process driven over its stdin/stdout, and helpers that read
// the job events it sends: for the tests of the agent's job kinds against the real binary.
#pragma once

#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/child.h"
#include "transport/codec.h"
#include "transport/handshake.h"

namespace cutpilot::test {

// A fresh $HOME per test (spools, keys, backups), removed once the jobs it left have ended.
class AgentHomeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/cutpilot-jobs-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    home_ = pattern;
    setenv("HOME", home_.c_str(), 1);
  }
  void TearDown() override {
    // Jobs outlive their agents on purpose, and a runner writes `state` after JobFinished:
    // give the ones a test left behind time to end.
    for (int i = 0; i < 100 && running_jobs() > 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::filesystem::remove_all(home_);
  }
  // Where the agent keeps its job spools.
  std::string jobs_dir() const { return home_ + "/.cache/cutpilot/jobs"; }
  // Jobs whose runner still runs (it holds its spool directory's lock).
  int running_jobs() const {
    int n = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(jobs_dir(), ec)) {
      const int fd = open(e.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) continue;
      if (flock(fd, LOCK_SH | LOCK_NB) != 0) ++n;
      close(fd);
    }
    return n;
  }
  std::string home_;
};

// One `cutpilot-agent serve` process, greeted.
class Agent {
 public:
  // Starts the agent binary at path (serve mode) and completes the handshake.
  explicit Agent(const std::string& path)
      : child_(std::make_unique<Child>(std::vector<std::string>{path, "serve"})) {
    using namespace std::chrono_literals;
    proto::HandshakeScanner scanner(proto::kProtocolVersion, "test");
    auto status = proto::HandshakeScanner::Status::kNeedMore;
    for (int i = 0; i < 50 && status == proto::HandshakeScanner::Status::kNeedMore; ++i)
      status = scanner.feed(child_->read_some(200ms));
    EXPECT_EQ(status, proto::HandshakeScanner::Status::kReady) << scanner.error();
    decoder_.feed(scanner.leftover());
    send(proto::Hello{proto::kProtocolVersion, "test"});
    const auto ready = next();
    EXPECT_TRUE(ready && std::holds_alternative<proto::Ready>(*ready));
  }
  // Sends one message.
  void send(const proto::Message& m) { EXPECT_TRUE(child_->write(proto::encode_frame(m))); }
  // The next message within timeout, or nullopt.
  std::optional<proto::Message> next(
      std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    proto::Message m;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      const auto status = decoder_.next(m);
      if (status == proto::FrameDecoder::Status::kMessage) return m;
      if (status == proto::FrameDecoder::Status::kError) {
        ADD_FAILURE() << "agent sent a bad frame: " << decoder_.error();
        return std::nullopt;
      }
      decoder_.feed(child_->read_some(std::chrono::milliseconds(50)));
    }
    return std::nullopt;
  }
  // Events until JobFinished (included), bounded by timeout; fails the test when it is missing.
  std::vector<proto::Message> until_finished(
      std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
    std::vector<proto::Message> events;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = next(std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now()));
      if (!m) break;
      events.push_back(*m);
      if (std::holds_alternative<proto::JobFinished>(*m) ||
          std::holds_alternative<proto::Error>(*m))
        return events;
    }
    ADD_FAILURE() << "no job-finished within " << timeout.count() << " ms";
    return events;
  }
  // Kills the serve process as a dropped SSH session would (SIGKILL).
  void kill() { child_.reset(); }

 private:
  std::unique_ptr<Child> child_;
  proto::FrameDecoder decoder_;
};

// The seq of a job event (0 for other messages).
inline uint64_t seq_of(const proto::Message& m) {
  if (auto* e = std::get_if<proto::JobStarted>(&m)) return e->seq;
  if (auto* e = std::get_if<proto::LogLine>(&m)) return e->seq;
  if (auto* e = std::get_if<proto::JobFinished>(&m)) return e->seq;
  if (auto* e = std::get_if<proto::Progress>(&m)) return e->seq;
  return 0;
}

// The log lines of one stream, in order.
inline std::vector<std::string> lines_of(const std::vector<proto::Message>& events,
                                         proto::Stream stream) {
  std::vector<std::string> lines;
  for (const auto& m : events)
    if (auto* l = std::get_if<proto::LogLine>(&m); l && l->stream == stream)
      lines.push_back(l->line);
  return lines;
}

// The JobFinished that ends events, or nullptr.
inline const proto::JobFinished* finished_of(const std::vector<proto::Message>& events) {
  return events.empty() ? nullptr : std::get_if<proto::JobFinished>(&events.back());
}

}  // namespace cutpilot::test
