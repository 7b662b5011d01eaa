// The executor: runs a plan's step graph on the agents, one decision at a time.
//
// It never touches the network itself. Jobs go out through a JobPort (the cockpit
// wires it to the SSH fleet), their events come back through on_job(), operator
// commands through command(), and the caller's loop calls tick() for timers. Every
// state change is journalled (fsynced) before anything acts on it, so a cockpit that
// dies at any moment resumes without losing or repeating work: a job is journalled
// before it is started and, on resume, started again under the same id — which the
// agent answers by following the job it already has.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "plans/job_spec.h"
#include "plans/plan.h"
#include "plans/step.h"
#include "run/downtime.h"
#include "run/journal.h"
#include "run/prediction.h"
#include "run/run_events.h"

namespace cutpilot::plans {

// The executor's clock.
using RunClock = std::chrono::steady_clock;

// What a run does once a step failed for good (`--on-failure`).
enum class OnFailure {
  kWait,      // stay up: the operator retries, skips or aborts (from any pane)
  kRollback,  // abort: roll the finished steps back in reverse, then end
  kExit,      // end the run as failed once nothing else runs (for scripts that ask for it)
};

// How a run behaves.
struct ExecutorOptions {
  std::string run_id;
  std::set<std::string> approve;  // --approve STEP: approved up front
  // The confirm texts typed on the command line (--approve 'STEP=TEXT'), by step.
  std::map<std::string, std::string> approve_confirm;
  bool approve_all = false;   // --approve-all (counts as typing every confirm text)
  std::string operator_name;  // user@host, for approvals given on the command line
  size_t max_parallel = 8;    // steps running at once
  OnFailure on_failure = OnFailure::kWait;
  // How another pane names this run (" --state-dir DIR"), for the hints a failure prints.
  std::string control_hint;
  std::chrono::milliseconds retry_backoff{2000};  // doubled per retry, at most 30 s
  PastRuns past;  // what earlier runs of the plan measured, for the downtime prediction
};

// Each step's fingerprint (what it does): a journalled result, or an earlier run's time, of a
// step whose fingerprint changed no longer applies.
std::map<std::string, std::string> step_fingerprints(const Plan& plan);

// Something a job the executor started reported.
struct JobUpdate {
  // kUnknown: an attach-only request found no such job on the agent (it never started there,
  // or its spool is gone): the step's outcome is unknown, never "not run".
  enum class Kind { kStarted, kProgress, kLog, kHealth, kFinished, kUnknown };
  Kind kind = Kind::kLog;
  bool existing = false;   // kStarted: the agent already had this job (re-attached)
  ProgressEvent progress;  // kProgress (step and host filled in by the executor)
  // kProgress: the job's own estimate of what comes after it (a replica's of its catch-up).
  std::optional<double> estimate_s;
  std::string stream;  // kLog
  std::string line;    // kLog
  std::string target;  // kHealth
  std::string status;  // kHealth
  // kFinished: "succeeded", "failed", "cancelled" or "timed-out", the exit code, the
  // error text and the job's result JSON ("" when none).
  std::string state;
  int exit_code = 0;
  std::string error;
  std::string result;
};

// Where the executor's jobs go: the cockpit's fleet, or a fake in tests.
class JobPort {
 public:
  virtual ~JobPort() = default;
  // Starts (or, for an id the agent already has, re-attaches to) a job on host.
  virtual void start(const std::string& host, const std::string& job_id, const JobSpec& job) = 0;
  // Asks host's agent for a job an earlier cockpit started, without ever starting it: an agent
  // that does not know job_id answers, and the executor gets a kUnknown update.
  virtual void attach(const std::string& host, const std::string& job_id) = 0;
  // Asks the job's agent to cancel it.
  virtual void cancel(const std::string& job_id) = 0;
  // Tells the agent the job's result is journalled (its spool may go).
  virtual void acknowledge(const std::string& job_id) = 0;
  // How jobs on other hosts reach host (its verified key); nullopt until it is connected.
  virtual std::optional<PeerAccess> peer_access(std::string_view host) = 0;
};

// Why --approve / --approve-all cannot be taken for plan ("" when they can): a step that does
// not exist or has no gate, or a confirm text not typed exactly. Changes nothing.
std::string check_approvals(const Plan& plan, const ExecutorOptions& options);

// Runs one plan.
class Executor {
 public:
  Executor(const Plan& plan, ExecutorOptions options, JobPort& port, Journal& journal,
           EventSink sink, EnvLookup secrets);

  // Begins a new run: journals its start and approvals from the options.
  bool begin(RunClock::time_point now, std::string& error);
  // Continues the run a journal describes; refuses (error set) when the plan changed in a
  // step that is not pending any more, naming the steps.
  bool resume(const JournalState& state, RunClock::time_point now, std::string& error);
  // Starts whatever can start, fires timers; call after every batch of updates.
  void tick(RunClock::time_point now);
  // Takes one update of a job this executor started.
  void on_job(const std::string& job_id, const JobUpdate& update, RunClock::time_point now);
  // A host's link changed (ready, lost, failed...) or its facts arrived: shown, and a failed
  // host fails its steps.
  void on_host(const std::string& host, const std::string& state, const std::string& error,
               RunClock::time_point now, const std::string& facts = "");
  // A host's link became ready at endpoint (address:port) with its verified key. The first
  // time it is journalled; a resumed run whose started steps used the host somewhere else (its
  // address, port or key changed) stops (fatal) before anything is asked of it.
  void on_host_ready(const std::string& host, const std::string& endpoint, const std::string& key);
  // An operator command; returns "" when accepted, else why not (for the control socket).
  std::string command(const Command& command, RunClock::time_point now);
  // When tick() next has something to do (nullopt: only an update can change anything).
  std::optional<RunClock::time_point> next_timer() const;
  // True once the run has ended (its RunEvent sent).
  bool ended() const { return ended_.has_value(); }
  // The process exit code for the run: 0 succeeded, 1 failed, 3 aborted.
  int exit_code() const;
  // The run as `cutpilot status` shows it.
  nlohmann::json status(RunClock::time_point now) const;
  // The journal failed: the run stopped starting anything (the error says why).
  const std::string& fatal() const { return fatal_; }

 private:
  struct HostJob {
    std::string host;
    std::string job_id;
    bool done = false;
    bool ok = false;
    bool unknown = false;  // its agent had no record of it: the outcome is not known
    std::string result;
    bool reattach = false;  // journalled by an earlier cockpit; not yet asked for again
  };
  struct StepRun {
    const Step* step = nullptr;
    StepState state = StepState::kPending;
    uint32_t attempt = 0;
    uint32_t round = 0;  // hot pre-sync rounds
    bool approved = false;
    std::string approved_how;  // gate, ahead, --approve, --approve-all
    std::string approved_by;
    std::string detail;
    std::vector<HostJob> jobs;  // the current attempt's (or rollback's) jobs
    std::vector<std::string> results;
    std::vector<std::string> round_results;  // a hot pre-sync's earlier rounds' results
    bool rolling_back = false;
    std::optional<RunClock::time_point> retry_at;
    std::optional<RunClock::time_point> wait_until;
    RunClock::time_point started{};
    // When an agent said it started the attempt's first job: a step's time is counted from
    // there, not from the wait for a host's link (a first run also deploys the agent).
    std::optional<RunClock::time_point> job_started;
    double seconds = 0;  // how long the last attempt took
    // A sync waiting for its watch to arm or its seal's answer before its jobs start.
    bool waiting = false;
    std::vector<HostJob> seals;  // a copy's asks to its watch (host: the step's host)
  };
  // A watch of a sync's source (agents/track_job.h): started before the first round of a
  // hot sync with track_changes, sealed by the copy of the same from/to after it.
  struct Tracker {
    std::string key;   // SyncAction::track_key
    std::string host;  // the source, where the watch runs
    std::string step;  // the hot sync that began it
    std::string job_id;
    enum class State { kStarting, kArmed, kGone } state = State::kStarting;
    std::string lost;               // kGone: why
    bool stopping = false;          // cancelled as the run ends
    uint64_t paths = 0, bytes = 0;  // the change set as last reported
    // Not a watch: the job of a replicate step, followed once it streams (its step has
    // succeeded) for its lag until a catch-up removes the replication or the run ends.
    bool replica = false;
  };
  struct PeerSetup {
    PeerLink link;
    enum class Stage {
      kNone,
      kKeygen,
      kAuthorize,
      kReady,
      kFailed,
      kRevoke,
      kDone
    } stage = Stage::kNone;
    std::string job_id;
    std::string error;
  };

  StepRun* find(std::string_view id);
  const StepRun* find(std::string_view id) const;
  void set_state(StepRun& run, StepState state, std::string detail, bool journal = true);
  bool journal(nlohmann::json record);
  bool ready_to_start(const StepRun& run) const;
  // The id of an optional step run needs that failed, or nullptr.
  const std::string* failed_optional_need(const StepRun& run) const;
  bool links_ready(StepRun& run, RunClock::time_point now);
  void start_step(StepRun& run, RunClock::time_point now);
  // A step the damaged journal may not tell all of: ask the agents for attempt's jobs.
  void probe(StepRun& run, uint32_t attempt, bool approved, RunClock::time_point now);
  // Asks again for the jobs an earlier cockpit started, once their hosts' keys are known.
  void reattach(StepRun& run, RunClock::time_point now);
  bool start_jobs(StepRun& run, const Action& action, bool rollback);
  // A job of run's ended (journalled, acknowledged unless it goes on: a streaming replica).
  void finish_job(StepRun& run, HostJob& job, const JobUpdate& update, RunClock::time_point now,
                  bool acknowledge = true);
  void step_jobs_done(StepRun& run, RunClock::time_point now);
  void on_peer_job(PeerSetup& setup, const JobUpdate& update);
  // Shows a log line of a watch or seal job under step.
  void job_line(const std::string& step, const std::string& host, const JobUpdate& update);
  // The watch with this key, or nullptr.
  Tracker* tracker_for(const std::string& key);
  // Starts what a copy needs before its jobs: its watch (a hot sync with track_changes) or
  // its seal (the copy after one); true when its jobs can start now.
  bool sync_ready(StepRun& run);
  // Starts the jobs of the syncs that waited for a watch or a seal and need not any more.
  void start_waiting();
  void on_tracker_job(Tracker& tracker, const JobUpdate& update, RunClock::time_point now);
  // A replicate step's job says it streams: followed from now on as a replica (journalled),
  // and its step succeeds; false when the update is not that.
  bool replica_streams(StepRun& run, HostJob& job, const JobUpdate& update,
                       RunClock::time_point now);
  // A watch or replica job ended (why): journalled, acknowledged, no longer followed.
  void tracker_ended(Tracker& tracker, const JobUpdate& update, const std::string& why);
  // A replica's progress (its lag) under its step.
  void show_replica(const std::string& step, const std::string& host, const JobUpdate& update);
  // A replica's update: its lag shown under its step; its end logged.
  void on_replica_job(Tracker& replica, const JobUpdate& update, RunClock::time_point now);
  void on_seal_job(StepRun& run, const std::string& id, const JobUpdate& update);
  // Puts the seal's answer in a copy's job spec: the tracked list, or why it scans.
  void apply_seal(const StepRun& run, const std::string& host, JobSpec& job);
  // The watches a resumed run had, followed again (never started again).
  void restore_trackers(const JournalState& state);
  // Cancels every running watch (the run ends); true while one has still to end.
  bool stop_trackers();
  void advance_peer(PeerSetup& setup);
  void start_peer_job(PeerSetup& setup, const std::string& host, const std::string& action,
                      const std::string& key);
  // Checks --approve and --approve-all against the plan and applies them to steps that have
  // not finished; false with error set when one cannot be taken.
  bool approve_from_options(std::string& error);
  std::string approve(StepRun& run, const Command& command);
  std::string revoke(StepRun& run, const Command& command);
  // A step failed for good: what --on-failure says, and the commands that help.
  void on_step_failed(StepRun& run);
  void start_abort(RunClock::time_point now);
  void next_rollback(RunClock::time_point now);
  // A rollback failed: the steps the failed one needs are left as they are.
  void rollback_failed(StepRun& run, const std::string& why);
  // The rollback of the step that began the downtime brought the old service back.
  void end_downtime_by_rollback(const StepRun& run);
  // What an abort did, as one log line per list.
  void abort_summary();
  void teardown_or_end(RunClock::time_point now);
  void end_run(const std::string& state, RunClock::time_point now);
  // Predicts the window (or, once it runs, its rest) again; tells the views when it changed.
  void update_prediction(RunClock::time_point now);
  // "the window's steps took (predicted): a 0.1s (0.1s) b 2.0s (1.8s)", as the window ends.
  std::string took_against_predicted() const;
  // Journals and audits an operator's approve, skip, retry or abort.
  void operator_did(const std::string& verb, const std::string& step, const std::string& by,
                    nlohmann::json extra = nlohmann::json::object());
  void log(const std::string& step, const std::string& host, const std::string& line);
  std::string job_id(const StepRun& run, const std::string& host, bool rollback) const;

  const Plan& plan_;
  ExecutorOptions options_;
  JobPort& port_;
  Journal& journal_;
  EventSink sink_;
  JobContext context_;
  std::vector<StepRun> runs_;                    // in plan order
  std::map<std::string, std::string> job_step_;  // job id → step id (step jobs)
  std::map<std::string, uint64_t> shown_bytes_;  // job id → the most progress shown
  std::vector<PeerSetup> peers_;
  std::map<std::string, size_t> peer_jobs_;  // job id → index in peers_
  std::vector<Tracker> trackers_;
  std::map<std::string, size_t> tracker_jobs_;    // job id → index in trackers_
  std::map<std::string, std::string> seal_jobs_;  // job id → step id
  std::vector<std::string> completed_;            // step ids in the order they succeeded
  bool aborting_ = false;
  bool failure_handled_ = false;  // --on-failure acted on the current halt
  // step → the step whose failed rollback leaves it as it is (it needs that one)
  std::map<std::string, std::string> rollback_blocked_;
  std::vector<std::string> rolled_back_, rollback_failed_, left_;  // the abort's lists
  std::string downtime_ended_by_;  // "rollback" when a rollback ended the downtime
  bool tearing_down_ = false;
  bool revoking_ = false;  // the teardown has asked for the migration keys' revocation
  bool resumed_ = false;   // links made by an earlier cockpit are torn down too
  std::string end_state_;  // what the run ends as once torn down
  std::optional<std::string> ended_;
  std::string fatal_;
  RunClock::time_point begun_{};
  DowntimeClock downtime_;
  WindowForecast forecast_;           // the last prediction made
  WindowForecast forecast_at_start_;  // the prediction as the window started
  bool forecast_told_ = false;        // the window's steps' sources were logged at its start
  std::map<std::string, std::string> host_state_;
  // host → where this run reached it (endpoint, key), as journalled.
  std::map<std::string, std::pair<std::string, std::string>> host_ids_;
};

}  // namespace cutpilot::plans
