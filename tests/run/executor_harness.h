// A test bench for the executor: a fake JobPort, a journal in a temporary directory, the
// events in a vector and an explicit clock.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "plans/load.h"
#include "run/executor.h"
#include "tests/plans/env_fake.h"

namespace cutpilot::plans::test {

// A JobPort that records every start, cancel and acknowledge and knows every host's key.
class FakePort : public JobPort {
 public:
  // One start() call.
  struct Start {
    std::string host;
    std::string id;
    JobSpec job;
  };

  // JobPort: records the call; every host has a verified key.
  void start(const std::string& host, const std::string& job_id, const JobSpec& job) override {
    starts.push_back(Start{host, job_id, job});
  }
  void attach(const std::string& host, const std::string& job_id) override {
    attaches.emplace_back(host, job_id);
  }
  void cancel(const std::string& job_id) override { cancels.push_back(job_id); }
  void acknowledge(const std::string& job_id) override { acks.push_back(job_id); }
  std::optional<PeerAccess> peer_access(std::string_view host) override {
    return PeerAccess{std::string(host) + ".lan", 22, "",
                      "ssh-ed25519 AAAAC3host" + std::string(host)};
  }

  // The ids of the started jobs, in start order.
  std::vector<std::string> ids() const {
    std::vector<std::string> out;
    for (const auto& s : starts)
      out.push_back(s.id);
    return out;
  }
  // How many times the job called id was started.
  size_t count(std::string_view id) const {
    return std::count_if(starts.begin(), starts.end(), [&](const Start& s) { return s.id == id; });
  }
  // The start of the job called id (the last one), or nullptr.
  const Start* find(std::string_view id) const {
    for (auto it = starts.rbegin(); it != starts.rend(); ++it)
      if (it->id == id) return &*it;
    return nullptr;
  }

  std::vector<Start> starts;                                  // every start(), in order
  std::vector<std::string> cancels;                           // every cancel()
  std::vector<std::string> acks;                              // every acknowledge()
  std::vector<std::pair<std::string, std::string>> attaches;  // every attach(): host, job id
};

// A fresh directory under TMPDIR, removed with its contents at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "cutpilot-exec-XXXXXX").string();
    if (mkdtemp(pattern.data())) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The whole text of a file ("" when it cannot be read).
inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A run of one plan: executor, fake port, journal in a temp dir, recorded events, a clock.
class Bench {
 public:
  // Loads plan_text (the test fails on load errors) and builds the executor; call begin().
  explicit Bench(std::string_view plan_text, ExecutorOptions options = {}) {
    options.run_id = options.run_id.empty() ? "r1" : options.run_id;
    options.operator_name = options.operator_name.empty() ? "op@cockpit" : options.operator_name;
    options_ = std::move(options);
    load(plan_text);
    open();
  }

  // Begins the run and ticks once; the test fails when begin() refuses.
  void begin() {
    std::string error;
    ASSERT_TRUE(exec->begin(now, error)) << error;
    exec->tick(now);
  }
  // Feeds a job's end (state "succeeded", "failed", "cancelled"...) and ticks.
  void finish(const std::string& id, const std::string& state = "succeeded",
              const std::string& result = "") {
    JobUpdate update;
    update.kind = JobUpdate::Kind::kFinished;
    update.state = state;
    update.exit_code = state == "succeeded" ? 0 : 1;
    update.result = result;
    exec->on_job(id, update, now);
    exec->tick(now);
  }
  // Moves the clock on by d and ticks.
  void advance(std::chrono::milliseconds d) {
    now += d;
    exec->tick(now);
  }
  // Sends an operator command as alice@laptop; "" when accepted.
  std::string command(CommandKind kind, const std::string& step = "",
                      const std::string& confirm = "") {
    return exec->command(Command{kind, step, "alice@laptop", confirm}, now);
  }

  // Simulates a cockpit that died: drops the executor, the journal (the files stay) and
  // the events seen so far.
  void crash() {
    exec.reset();
    journal.reset();
    events.clear();
  }
  // Removes the journal's last n lines, as if the cockpit died before writing them.
  void drop_journal_lines(size_t n) {
    const std::string path = dir.path() + "/" + kJournalFile;
    std::string text = read_text(path);
    for (size_t i = 0; i < n && !text.empty(); ++i)
      text.erase(text.rfind('\n', text.size() - 2) + 1);
    std::ofstream(path, std::ios::trunc) << text;
  }
  // After crash(): loads plan_text, replays the journal and resumes; "" or resume()'s error.
  std::string resume(std::string_view plan_text, ExecutorOptions options = {}) {
    options.run_id = options_.run_id;
    options.operator_name = options_.operator_name;
    options_ = std::move(options);
    load(plan_text);
    open();
    std::string error;
    const auto state = replay_journal(dir.path(), error);
    if (!state) return "replay: " + error;
    replayed = *state;
    if (!exec->resume(*state, now, error)) return error;
    exec->tick(now);
    return "";
  }

  // Each state the step was announced in, in order.
  std::vector<std::string> states(const std::string& step) const {
    std::vector<std::string> out;
    for (const auto& e : events)
      if (const auto* s = std::get_if<StepEvent>(&e); s && s->step == step)
        out.push_back(state_name(s->state));
    return out;
  }
  // The step's latest announced state ("" when never announced).
  std::string state(const std::string& step) const {
    const auto all = states(step);
    return all.empty() ? "" : all.back();
  }
  // Every log line the run sent, joined by newlines.
  std::string logs() const {
    std::string out;
    for (const auto& e : events)
      if (const auto* l = std::get_if<LogEvent>(&e)) out += l->line + "\n";
    return out;
  }
  // The events of type T, in order.
  template <typename T>
  std::vector<T> all_of() const {
    std::vector<T> out;
    for (const auto& e : events)
      if (const auto* t = std::get_if<T>(&e)) out.push_back(*t);
    return out;
  }
  // The journal's records whose "r" is kind, in order.
  std::vector<nlohmann::json> records(const std::string& kind) const {
    std::vector<nlohmann::json> out;
    std::istringstream in(read_text(dir.path() + "/" + kJournalFile));
    for (std::string line; std::getline(in, line);) {
      const auto record = nlohmann::json::parse(line, nullptr, false);
      if (record.is_object() && record.value("r", "") == kind) out.push_back(record);
    }
    return out;
  }
  // The audit log's text.
  std::string audit() const { return read_text(dir.path() + "/" + kAuditFile); }

  TempDir dir;                       // the run's state directory
  Plan plan;                         // the loaded plan (the executor refers to it)
  FakePort port;                     // the current executor's port
  std::unique_ptr<Journal> journal;  // the current executor's journal
  std::vector<Event> events;         // what the run sent (since the last crash())
  std::unique_ptr<Executor> exec;    // the executor under test
  RunClock::time_point now = RunClock::time_point{} + std::chrono::hours(1);
  JournalState replayed;  // what the last resume() replayed

 private:
  // Loads plan_text into plan.
  void load(std::string_view plan_text) {
    LoadResult loaded = load_plan_text(plan_text, "test.toml", default_env());
    std::string errors;
    for (const auto& d : loaded.diagnostics)
      errors += format_diagnostic(d) + "\n";
    EXPECT_TRUE(loaded.ok()) << errors;
    plan = std::move(loaded.plan);
  }
  // Opens the journal and builds a fresh executor with a fresh port.
  void open() {
    port = FakePort{};
    journal = std::make_unique<Journal>();
    std::string error;
    EXPECT_TRUE(journal->open(dir.path(), error)) << error;
    exec = std::make_unique<Executor>(
        plan, options_, port, *journal, [this](const Event& e) { events.push_back(e); },
        default_env());
  }

  ExecutorOptions options_;  // the options each executor is built with
};

}  // namespace cutpilot::plans::test
