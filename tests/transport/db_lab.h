// What the database tests share: the password to grep for, lab env files, shell runs, a
// tree's bytes, and a copy run while an application writes.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "agents/db_engines.h"
#include "bench/lab_link.h"
#include "tests/support/child.h"
#include "tests/support/lab.h"
#include "tests/support/peer_lab.h"

namespace cutpilot::transport::db_lab {

using namespace std::chrono_literals;
using Json = nlohmann::json;
namespace fs = std::filesystem;

// A password distinctive enough to grep every output for.
inline constexpr char kSecret[] = "Sup3r-S3cret-pw-7781";

// KEY=VALUE lines of a lab env file (the bench reads them the same way).
using bench::env_file;

// Runs a shell command; its stdout (stderr goes to the test's output).
inline std::string sh(const std::string& command) {
  return test::capture(command);
}

// Every file below dir, concatenated (to grep a spool for a secret).
inline std::string all_files(const std::string& dir) {
  std::string out;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file()) {
      std::ifstream in(e.path(), std::ios::binary);
      out += std::string(std::istreambuf_iterator<char>(in), {});
    }
  return out;
}

// Copies (run_copy) while a live application writes to the source: a shell loop running
// insert until the file stop exists. The copy must succeed with the source's count of table
// (counted in the dump's snapshot) equal to the copy's (copied_rows), and rows must have been
// written while it ran (source_rows counts the source's table).
inline void expect_counts_agree_while_writing(
    const std::string& insert, const std::string& stop,
    const std::function<uint64_t()>& source_rows,
    const std::function<std::pair<proto::JobFinished, std::string>()>& run_copy,
    const std::string& table, const std::function<std::string()>& copied_rows) {
  std::thread app([&] { sh("while [ ! -e " + stop + " ]; do " + insert + "; done"); });
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  bool writing = false;
  while (!(writing = source_rows() >= 5) && std::chrono::steady_clock::now() < deadline) {
  }
  const auto [done, log] = run_copy();
  const uint64_t after = source_rows();
  std::ofstream(stop) << "";
  app.join();
  ASSERT_TRUE(writing) << "the writer wrote nothing";
  ASSERT_EQ(done.state, proto::JobState::kSucceeded) << done.error << "\n" << log;
  const uint64_t copied = Json::parse(done.result)["rows"][table];
  EXPECT_EQ(copied_rows(), std::to_string(copied) + "\n");
  EXPECT_GT(after, copied) << "no row was written while the copy ran: the test proves nothing";
}

}  // namespace cutpilot::transport::db_lab
