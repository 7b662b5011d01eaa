// The headless line output against a golden file: what an operator reads in a terminal or a
// log file. CUTPILOT_UPDATE_GOLDEN=1 rewrites the file (then read the diff before committing).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/run_output.h"

namespace cutpilot::cli {
namespace {

const std::string kGolden = std::string(CUTPILOT_SOURCE_DIR) + "/tests/cli/golden/headless.txt";

// The events of a short night: a db copy, a sync, a verify, tools' stderr, a failure.
std::vector<plans::Event> night() {
  using namespace plans;
  auto stderr_line = [](std::string step, std::string host, std::string line) {
    const bool notice = stderr_is_notice(line);
    return LogEvent{.step = std::move(step),
                    .host = std::move(host),
                    .stream = "stderr",
                    .line = std::move(line),
                    .notice = notice};
  };
  return {
      HostEvent{.host = "target", .state = "ready", .facts = "agent 0.6.0, load 0.10"},
      DowntimeEvent{.state = "started", .seconds = 0, .predicted_s = 95, .budget_s = 300},
      StepEvent{.step = "copy-db", .state = StepState::kRunning},
      ProgressEvent{.step = "copy-db",
                    .host = "target",
                    .bytes = 256ull << 20,
                    .total = 512ull << 20,
                    .rate = 50 << 20,
                    .eta_s = 5,
                    .files = 2,
                    .files_total = 4,
                    .unit = "tables",
                    .item = "public.orders"},
      stderr_line("copy-db", "target", "pg_dump: dumping contents of table \"public.orders\""),
      stderr_line("copy-db", "target",
                  "pg_dump: error: query failed: server closed the connection"),
      ProgressEvent{.step = "final-sync",
                    .host = "target",
                    .bytes = 3ull << 30,
                    .total = 4ull << 30,
                    .rate = 100 << 20,
                    .files = 1200,
                    .files_total = 3012,
                    .unit = "entries"},
      LogEvent{.step = "presync",
               .stream = "agent",
               .line = "round 1 moved 18.8 MiB (not below 1 MiB): another round"},
      LogEvent{.step = "verify",
               .host = "target",
               .stream = "stdout",
               .line = "only on the target: uploads/old.png"},
      stderr_line("nginx", "source",
                  "nginx: the configuration file /etc/nginx/nginx.conf syntax is ok"),
      stderr_line("nginx", "source", "nginx: [emerg] unknown directive \"servr\""),
      StepEvent{.step = "verify",
                .state = StepState::kFailed,
                .detail = "failed on target: 1 difference between source and target"},
      HealthEvent{.step = "web", .host = "target", .target = "app", .status = "healthy"},
      DowntimeEvent{.state = "ended", .seconds = 87, .predicted_s = 95, .budget_s = 300},
      RunEvent{.state = "succeeded", .seconds = 412},
  };
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(HeadlessOutput, MatchesTheGoldenFile) {
  std::string text;
  for (const auto& event : night())
    text += event_to_line(event) + "\n";
  if (std::getenv("CUTPILOT_UPDATE_GOLDEN")) std::ofstream(kGolden) << text;
  EXPECT_EQ(text, read_text(kGolden)) << "rewrite with CUTPILOT_UPDATE_GOLDEN=1 if meant";
}

TEST(HeadlessOutput, StderrIsMarkedOnlyWhenItIsTrouble) {
  std::vector<std::string> lines;
  for (const auto& event : night())
    lines.push_back(event_to_line(event));
  for (const auto& line : lines) {
    const bool notice = line.find("pg_dump: dumping") != std::string::npos ||
                        line.find("syntax is ok") != std::string::npos;
    const bool trouble = line.find("pg_dump: error") != std::string::npos ||
                         line.find("[emerg]") != std::string::npos;
    if (notice || trouble) {
      EXPECT_EQ(line.find("! ") != std::string::npos, trouble) << line;
    }
    EXPECT_EQ(line.find(" files"), std::string::npos)
        << "tables and entries are not files: " << line;
  }
}

}  // namespace
}  // namespace cutpilot::cli
