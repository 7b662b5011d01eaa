// The cockpit's model of a run: everything the screen shows, built from plans::Event.
// It owns no terminal and no file descriptor; the view reads it, and asks which parts
// changed so that it redraws only those.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "plans/plan.h"
#include "run/run_events.h"

namespace cutpilot::tui {

// The cockpit's clock: elapsed times and the frame rate; never the wall clock.
using Clock = std::chrono::steady_clock;

// Parts of the screen, as bits: what changed since the view last drew.
namespace part {
inline constexpr uint32_t kTop = 1u << 0;     // plan, phase, run state, downtime, approvals
inline constexpr uint32_t kBanner = 1u << 1;  // the point-of-no-return warning
inline constexpr uint32_t kSteps = 1u << 2;   // the step list and the selected step's detail
inline constexpr uint32_t kHosts = 1u << 3;
inline constexpr uint32_t kJobs = 1u << 4;
inline constexpr uint32_t kLog = 1u << 5;
inline constexpr uint32_t kStatus = 1u << 6;     // the bottom line: prompt, message, hints
inline constexpr uint32_t kAll = (1u << 7) - 1;  // every pane
inline constexpr uint32_t kLayout = 1u << 7;     // window sizes: a resize, the banner came or went
}  // namespace part

// One step of the plan as the screen shows it.
struct StepView {
  const plans::Step* step = nullptr;  // nullptr for a step the run named but the plan lacks
  std::string id;
  std::string phase;
  std::string hosts;  // "source, target"
  plans::StepState state = plans::StepState::kPending;
  std::string detail;         // why it is in that state, when the run said
  bool pre_approved = false;  // approved ahead: it will not stop at its gate
  std::optional<Clock::time_point> running_since;
  double elapsed_before = 0;           // seconds run in earlier attempts
  std::deque<std::string> last_lines;  // its newest log lines, at most kLastLines

  // How many of a step's newest log lines it keeps for the detail pane.
  static constexpr size_t kLastLines = 3;
  // Seconds the step has run, ticking while it runs.
  double elapsed(Clock::time_point now) const;
};

// A health target on a host (a container, a URL, a port) and its last status.
struct HealthTarget {
  std::string target;
  std::string status;
};

// One host of the plan.
struct HostView {
  std::string name;
  std::string address;
  std::string state;  // connecting, ready, lost, failed; "" until the run says
  std::string error;
  std::string facts;  // agent, load, free disk: one line, from set_host_facts
  std::vector<HealthTarget> health;
  uint32_t healthy = 0;  // how many of health are good
};

// Where a job is: still running, or finished with its step.
enum class JobState { kRunning, kDone, kFailed };

// One job (a step on one host) that reported progress.
struct JobView {
  std::string step;
  std::string host;
  JobState state = JobState::kRunning;
  uint64_t bytes = 0;  // never lower than what the screen showed before, within one attempt
  std::optional<uint64_t> total;
  double rate = 0;
  std::optional<double> eta_s;
  std::optional<uint64_t> files;
  std::optional<uint64_t> files_total;
  std::string unit = "files";  // what files counts
  std::string item;
  uint64_t order = 0;  // first report: running jobs are listed in this order

  // Done as a fraction of total (0..1), when the total is known; else of files_total.
  std::optional<double> fraction() const;
};

// One line of the log: a job's output or something the run said.
struct LogLine {
  uint64_t seq = 0;  // 1, 2, ... in arrival order; survives the buffer dropping old lines
  std::string step;
  std::string host;
  std::string stream;
  std::string line;
  bool notice = false;  // a stderr line that is information, not trouble
  double at = 0;        // the unix time it arrived (0: not known)
};

// Which log lines to show: those of a step or of a host, containing some text.
struct LogQuery {
  std::string step;  // empty: any
  std::string host;  // empty: any
  std::string text;  // empty: any; else a case-sensitive substring of the line

  // Whether line is one the query asks for.
  bool matches(const LogLine& line) const;
};

// The newest lines of the run, at most a fixed number (the scrollback).
class LogBuffer {
 public:
  // A buffer that keeps the newest capacity lines.
  explicit LogBuffer(size_t capacity);

  // Adds a line, dropping the oldest one when full.
  void push(LogLine line);
  // How many lines it holds.
  size_t size() const { return lines_.size(); }
  // The seq of the newest line (0 when none arrived yet).
  uint64_t last_seq() const { return next_seq_ - 1; }
  // Up to count lines matching query with seq <= end_seq, oldest first.
  std::vector<const LogLine*> page(const LogQuery& query, uint64_t end_seq, size_t count) const;
  // The seq of the matching line delta matching lines away from seq (negative: older),
  // stopping at the oldest or newest match; seq itself when nothing matches.
  uint64_t move(const LogQuery& query, uint64_t seq, long delta) const;

 private:
  size_t capacity_;
  uint64_t next_seq_ = 1;
  std::deque<LogLine> lines_;
};

// The downtime window: before it (maybe predicted), running, or over.
struct DowntimeView {
  enum class State { kNone, kPredicted, kStarted, kEnded };
  State state = State::kNone;
  double seconds = 0;  // as of `at`
  Clock::time_point at{};
  std::optional<double> predicted_s;
  bool at_least = false;                       // predicted_s is a floor (a step has no source)
  std::optional<double> predicted_at_start_s;  // once ended: what its start promised
  std::optional<double> budget_s;

  // How the clock stands against the budget: within it, near it (80 % and more), over it.
  enum class Budget { kWithin, kNear, kOver };

  // Seconds of downtime so far, ticking while it runs.
  double elapsed(Clock::time_point now) const;
  // Where elapsed stands against the budget (within when there is no budget).
  Budget budget_level(Clock::time_point now) const;
};

// Tunables of the model.
struct ModelOptions {
  size_t log_lines = 10000;        // scrollback
  size_t finished_jobs_kept = 32;  // finished jobs stay listed (at 100 %) until this many
  double seconds_before = 0;       // how long the run had gone before this cockpit (a resume)
};

// The state of a run as the cockpit shows it.
class Model {
 public:
  // A model of plan's run; plan must outlive it.
  explicit Model(const plans::Plan& plan, ModelOptions options = {});

  // Takes in one event that arrived at now.
  void apply(const plans::Event& event, Clock::time_point now);
  // Sets a host's facts line (agent version, load, free disk) from outside the event stream.
  void set_host_facts(std::string_view host, std::string facts);
  // Marks the ticking parts (clocks) dirty when their shown second changed; returns how
  // long until the next tick is due, or nullopt when nothing ticks.
  std::optional<Clock::duration> tick(Clock::time_point now);

  // What changed since the last call, as part:: bits; clears them.
  uint32_t take_dirty();
  // Marks parts as changed (the view's own changes: selection, resize).
  void touch(uint32_t parts) { dirty_ |= parts; }

  // The plan being run.
  const plans::Plan& plan() const { return plan_; }
  // Steps in display order: grouped by phase, each phase in plan order.
  const std::vector<StepView>& steps() const { return steps_; }
  // The index in steps() of the step called id, or nullopt.
  std::optional<size_t> step_index(std::string_view id) const;
  // Hosts in plan order, then any the run named that the plan lacks.
  const std::vector<HostView>& hosts() const { return hosts_; }
  // The index in hosts() of the host called name, or nullopt.
  std::optional<size_t> host_index(std::string_view name) const;
  // Jobs that reported progress: running ones first (in first-report order), then finished.
  std::vector<const JobView*> jobs() const;
  // How many jobs are still running: a running step's hosts count whether or not they
  // reported progress yet (an exec step never does).
  size_t running_jobs() const;
  // The run's log.
  const LogBuffer& log() const { return log_; }
  // The downtime clock.
  const DowntimeView& downtime() const { return downtime_; }
  // The phase the run is in: the earliest one with a step running or at its gate (the
  // first phase before any started; the last such phase once none is).
  const std::string& phase() const { return phase_; }
  // How many steps wait for the operator's approval.
  size_t awaiting_approval() const { return awaiting_; }
  // The step the run is at: the first awaiting approval, else the one that started last.
  std::optional<size_t> current_step() const;
  // The first step past the point of no return that awaits approval, if any: it gets a banner.
  const StepView* point_of_no_return() const;
  // The run's end, once it ended.
  const std::optional<plans::RunEvent>& ended() const { return ended_; }
  // When the model was made: the run clock counts from it.
  Clock::time_point started() const { return started_; }
  // How many events it took in.
  uint64_t events() const { return events_; }

 private:
  void on(const plans::StepEvent& e, Clock::time_point now);
  void on(const plans::ProgressEvent& e, Clock::time_point now);
  void on(const plans::LogEvent& e, Clock::time_point now);
  void on(const plans::HealthEvent& e, Clock::time_point now);
  void on(const plans::HostEvent& e, Clock::time_point now);
  void on(const plans::DowntimeEvent& e, Clock::time_point now);
  void on(const plans::RunEvent& e, Clock::time_point now);
  size_t step_slot(std::string_view id);
  size_t host_slot(std::string_view name);
  JobView& job_slot(std::string_view step, std::string_view host);
  void finish_jobs(std::string_view step, JobState state);
  void restart_jobs(std::string_view step);
  void prune_finished_jobs();

  const plans::Plan& plan_;
  ModelOptions options_;
  Clock::time_point started_;
  std::vector<StepView> steps_;
  std::unordered_map<std::string, size_t> step_by_id_;
  std::vector<HostView> hosts_;
  std::unordered_map<std::string, size_t> host_by_name_;
  std::vector<JobView> jobs_;
  std::unordered_map<std::string, size_t> job_by_key_;  // "step\nhost"
  std::string key_;                                     // scratch for job lookups
  uint64_t job_order_ = 0;
  size_t running_jobs_ = 0;
  LogBuffer log_;
  DowntimeView downtime_;
  std::string phase_;
  size_t awaiting_ = 0;
  size_t running_steps_ = 0;
  std::optional<size_t> last_started_;
  std::optional<plans::RunEvent> ended_;
  uint32_t dirty_ = part::kAll | part::kLayout;
  long long shown_second_ = -1;  // the run clock's second the screen shows
  uint64_t events_ = 0;
};

}  // namespace cutpilot::tui
