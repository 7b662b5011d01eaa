// Runs without agents, for the demo binary, the tmux tests and the bench: a scripted run
// that plays a plan's steps into a RunLink (and answers the operator's commands), and a
// generator of big synthetic plans and event streams.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "plans/plan.h"
#include "run/run_link.h"

namespace cutpilot::tui {

// How a scripted run plays.
struct ScriptOptions {
  double speed = 1.0;                  // 2: everything takes half as long
  std::vector<std::string> fail_once;  // steps whose first attempt fails (for retry)
};

// A pretend run of a plan on its own thread: hosts connect, each step in order waits for
// approval when gated, then shows progress, logs and health as its action would, and the
// downtime clock starts and ends where the plan says. Approve, skip, retry and abort work.
class ScriptedRun {
 public:
  // A run of plan publishing on link; both must outlive it. Starts at once.
  ScriptedRun(const plans::Plan& plan, plans::RunLink& link, ScriptOptions options = {});
  // Stops the run's thread (a run not yet ended just stops publishing).
  ~ScriptedRun();
  ScriptedRun(const ScriptedRun&) = delete;
  ScriptedRun& operator=(const ScriptedRun&) = delete;

  // The commands the run received, in order (for tests: who approved, with what text).
  std::vector<plans::Command> received() const;

 private:
  struct Script;
  void run();

  const plans::Plan& plan_;
  plans::RunLink& link_;
  ScriptOptions options_;
  int stop_fd_ = -1;
  mutable std::mutex mutex_;
  std::vector<plans::Command> received_;
  std::thread thread_;
};

// The plan the demo plays when given none: a prepare sync, a gated cutover with a confirm
// text and a point of no return, a database copy, health checks, a downtime window.
const char* demo_plan_text();

// A plan of `steps` sync steps, each on all of `hosts` hosts: steps × hosts jobs.
plans::Plan synthetic_plan(size_t hosts, size_t steps);

// count events for the jobs of a synthetic_plan, deterministic for seed: mostly progress
// (never backwards within a job), some log lines, some health changes, host states.
std::vector<plans::Event> synthetic_events(const plans::Plan& plan, size_t count, uint32_t seed);

}  // namespace cutpilot::tui
