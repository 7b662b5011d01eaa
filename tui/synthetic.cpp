#include "tui/synthetic.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <random>

#include "plans/show.h"
#include "run/downtime.h"

namespace cutpilot::tui {
namespace {

using plans::CommandKind;
using plans::StepState;
using Seconds = std::chrono::duration<double>;

}  // namespace

// The script's state while it plays, on the run's thread only.
struct ScriptedRun::Script {
  ScriptedRun& run;
  std::deque<plans::Command> inbox;
  bool stopped = false;
  bool aborted = false;
  const plans::Step* at_gate = nullptr;  // the step waiting for approval, if any
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point downtime_started{};
  std::vector<const plans::Step*> done;  // succeeded, in order: what abort rolls back

  void publish(plans::Event event) { run.link_.publish(std::move(event)); }
  void step(const plans::Step& s, StepState state, std::string detail = "") {
    publish(plans::StepEvent{.step = s.id, .state = state, .detail = std::move(detail)});
  }
  void log(const plans::Step& s, std::string host, std::string line,
           std::string stream = "stdout") {
    publish(plans::LogEvent{.step = s.id,
                            .host = std::move(host),
                            .stream = std::move(stream),
                            .line = std::move(line),
                            .at = plans::unix_now()});
  }
  double seconds() const { return Seconds(std::chrono::steady_clock::now() - started).count(); }

  // Waits `for` (scaled by speed) while taking in commands; false once the run must stop.
  bool pause(double seconds_) {
    const auto until = std::chrono::steady_clock::now() + Seconds(seconds_ / run.options_.speed);
    for (;;) {
      if (run.link_.view_closed()) stopped = true;
      if (stopped) return false;
      for (plans::Command& c : run.link_.take_commands()) {
        {
          std::lock_guard lock(run.mutex_);
          run.received_.push_back(c);
        }
        if (c.kind == CommandKind::kAbort)
          aborted = true;
        else
          inbox.push_back(std::move(c));
      }
      if (aborted) return false;
      const auto left = until - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) return true;
      pollfd fds[2] = {{run.link_.command_fd(), POLLIN, 0}, {run.stop_fd_, POLLIN, 0}};
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
      poll(fds, 2, static_cast<int>(std::min<long long>(ms, 200)));
      if (fds[1].revents & POLLIN) stopped = true;
    }
  }

  // Waits for an operator command about s; nullopt when the run must stop.
  std::optional<plans::Command> command_for(const plans::Step& s) {
    for (;;) {
      while (!inbox.empty()) {
        plans::Command c = std::move(inbox.front());
        inbox.pop_front();
        if (c.step == s.id) return c;
      }
      if (!pause(0.1)) return std::nullopt;
    }
  }

  // Plays s's action on each of its hosts; false when interrupted.
  bool play(const plans::Step& s) {
    const std::string host = s.on.empty() ? "" : s.on.front();
    log(s, host, "$ " + plans::describe_action(run.plan_, s, s.action, host), "agent");
    if (std::holds_alternative<plans::SyncAction>(s.action))
      return progress(s, 2ull << 30, 12000, 40, {}, "entries");
    if (std::holds_alternative<plans::DbAction>(s.action))
      return progress(s, 512ull << 20, 4, 30,
                      {"public.customers", "public.orders", "public.order_items", "public.events"},
                      "tables");
    if (const auto* health = std::get_if<plans::HealthAction>(&s.action)) {
      std::vector<std::string> targets = health->names;
      if (targets.empty()) targets.push_back(health->url.empty() ? "check" : health->url);
      for (const char* status : {"starting", "healthy"}) {
        for (const std::string& h : s.on)
          for (const std::string& t : targets)
            publish(plans::HealthEvent{.step = s.id, .host = h, .target = t, .status = status});
        if (!pause(0.8)) return false;
      }
      return true;
    }
    if (const auto* wait = std::get_if<plans::WaitAction>(&s.action))
      return pause(std::min(2.0, Seconds(wait->duration).count()));
    for (const std::string& h : s.on)
      log(s, h, "done on " + h);
    return pause(0.8);
  }

  // A job's progress from 0 to total in ticks steps of 0.1 s, on each host.
  bool progress(const plans::Step& s, uint64_t total, uint64_t files, int ticks,
                const std::vector<std::string>& items, const char* unit) {
    const double duration = ticks * 0.1;
    const double rate = static_cast<double>(total) / duration;
    for (int i = 1; i <= ticks; ++i) {
      for (const std::string& h : s.on) {
        const uint64_t bytes = total / static_cast<uint64_t>(ticks) * static_cast<uint64_t>(i);
        plans::ProgressEvent p{.step = s.id,
                               .host = h,
                               .bytes = i == ticks ? total : bytes,
                               .total = total,
                               .rate = rate,
                               .eta_s = (ticks - i) * 0.1};
        if (files) {
          p.files = files * static_cast<uint64_t>(i) / static_cast<uint64_t>(ticks);
          p.files_total = files;
          p.unit = unit;
        }
        if (!items.empty()) p.item = items[static_cast<size_t>(i) * items.size() / (ticks + 1)];
        publish(std::move(p));
        if (i % 10 == 0) log(s, h, "transferred " + std::to_string(i * 100 / ticks) + "%");
      }
      if (!pause(0.1)) return false;
    }
    return true;
  }

  void downtime(bool start_edge) {
    const auto& settings = run.plan_.settings;
    std::optional<double> budget;
    if (settings.downtime_budget) budget = static_cast<double>(settings.downtime_budget->count());
    if (start_edge) {
      downtime_started = std::chrono::steady_clock::now();
      publish(plans::DowntimeEvent{.state = "started", .predicted_s = 95.0, .budget_s = budget});
    } else {
      const double elapsed = Seconds(std::chrono::steady_clock::now() - downtime_started).count();
      publish(plans::DowntimeEvent{
          .state = "ended", .seconds = elapsed, .predicted_s = 95.0, .budget_s = budget});
    }
  }

  // Rolls back what succeeded, newest first, and ends the run as aborted.
  void abort_run() {
    // As the executor does: an aborted run has no step waiting for approval.
    if (at_gate) step(*at_gate, StepState::kPending, "not run (aborted)");
    for (auto it = done.rbegin(); it != done.rend(); ++it) {
      const plans::Step& s = **it;
      if (!s.rollback) continue;
      const std::string host = s.on.empty() ? "" : s.on.front();
      log(s, host, "rollback: " + plans::describe_action(run.plan_, s, *s.rollback, host), "agent");
      step(s, StepState::kRolledBack);
    }
    publish(plans::RunEvent{.state = "aborted", .seconds = seconds()});
  }

  // One step from pending to a final state; false when the run ends here.
  bool run_step(const plans::Step& s) {
    if (s.gate == plans::Gate::kApprove) {
      step(s, StepState::kAwaitingApproval);
      at_gate = &s;
      for (;;) {
        const auto c = command_for(s);
        if (!c) return false;
        if (c->kind == CommandKind::kSkip) {
          step(s, StepState::kSkipped, "skipped by " + c->by);
          return true;
        }
        if (c->kind != CommandKind::kApprove) continue;
        if (s.confirm && c->confirm != *s.confirm) {
          log(s, "", "approval refused: the confirmation text does not match", "agent");
          continue;
        }
        log(s, "", "approved by " + c->by, "agent");
        break;
      }
      at_gate = nullptr;
    }
    for (int attempt = 1;; ++attempt) {
      step(s, StepState::kRunning, attempt > 1 ? "attempt " + std::to_string(attempt) : "");
      if (attempt == 1 && s.downtime == plans::Downtime::kStart) downtime(true);
      if (!play(s)) return false;
      const auto& fail = run.options_.fail_once;
      if (attempt > 1 || std::find(fail.begin(), fail.end(), s.id) == fail.end()) break;
      log(s, s.on.empty() ? "" : s.on.front(), "error: scripted failure", "stderr");
      step(s, StepState::kFailed, "exit status 1");
      for (;;) {
        const auto c = command_for(s);
        if (!c) return false;
        if (c->kind == CommandKind::kSkip) {
          step(s, StepState::kSkipped, "skipped by " + c->by);
          return true;
        }
        if (c->kind == CommandKind::kRetry) break;
      }
    }
    step(s, StepState::kSucceeded);
    done.push_back(&s);
    if (s.downtime == plans::Downtime::kEnd) downtime(false);
    return true;
  }

  void play_all() {
    const auto& plan = run.plan_;
    for (const plans::HostSpec& h : plan.hosts)
      publish(plans::HostEvent{.host = h.name, .state = "connecting"});
    if (!pause(0.3)) return finish();
    for (const plans::HostSpec& h : plan.hosts)
      publish(plans::HostEvent{.host = h.name, .state = "ready"});
    std::optional<double> budget;
    if (plan.settings.downtime_budget)
      budget = static_cast<double>(plan.settings.downtime_budget->count());
    publish(plans::DowntimeEvent{.state = "predicted", .predicted_s = 95.0, .budget_s = budget});
    for (size_t index : plans::ordered_steps(plan.steps))
      if (!run_step(plan.steps[index])) return finish();
    publish(plans::RunEvent{.state = "succeeded", .seconds = seconds()});
    while (pause(1.0)) {
    }
  }

  void finish() {
    if (aborted && !stopped) abort_run();
  }
};

ScriptedRun::ScriptedRun(const plans::Plan& plan, plans::RunLink& link, ScriptOptions options)
    : plan_(plan),
      link_(link),
      options_(std::move(options)),
      stop_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (!(options_.speed > 0)) options_.speed = 1;
  thread_ = std::thread([this] { run(); });
}

ScriptedRun::~ScriptedRun() {
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = write(stop_fd_, &one, sizeof one);
  thread_.join();
  close(stop_fd_);
}

std::vector<plans::Command> ScriptedRun::received() const {
  std::lock_guard lock(mutex_);
  return received_;
}

void ScriptedRun::run() {
  Script script{.run = *this};
  script.play_all();
}

const char* demo_plan_text() {
  return R"toml(# The cockpit demo's plan: played by a script, nothing connects anywhere.
[plan]
name = "shop migration (demo)"
downtime_budget = "5m"

[vars]
app = "/srv/shop"

[hosts.source]
address = "old.example.com"
[hosts.target]
address = "new.example.com"

[[steps]]
id = "presync"
title = "Pre-sync the uploads"
phase = "prepare"
on = "target"
sync = { from = "source:${app}/uploads/", to = "${app}/uploads/", delete = true, parallel = 4 }

[[steps]]
id = "stop-app"
title = "Stop the shop"
phase = "cutover"
on = "source"
gate = "approve"
confirm = "stop shop"
downtime = "start"
exec = { run = ["systemctl", "stop", "shop"] }
rollback = { exec = { run = ["systemctl", "start", "shop"] } }

[[steps]]
id = "copy-db"
needs = ["stop-app"]
on = "target"
db = { engine = "postgres", from = { host = "source", database = "shop", port = 5432 }, to = { database = "shop", port = 5432 } }

[[steps]]
id = "start-target"
needs = ["copy-db"]
on = "target"
exec = { run = ["systemctl", "start", "shop"] }
rollback = { exec = { run = ["systemctl", "stop", "shop"] } }

[[steps]]
id = "healthy"
needs = ["start-target"]
on = "target"
health = { containers = ["web", "worker"], timeout = "5m" }
downtime = "end"

[[steps]]
id = "switch-dns"
title = "Point shop.example.com at the target"
phase = "after"
on = "source"
gate = "approve"
point_of_no_return = true
exec = { run = ["dns-switch", "shop.example.com", "new.example.com"] }
)toml";
}

plans::Plan synthetic_plan(size_t hosts, size_t steps) {
  plans::Plan plan;
  plan.path = "synthetic.toml";
  plan.settings.name = "synthetic: " + std::to_string(hosts) + " hosts";
  plan.settings.downtime_budget = std::chrono::seconds(300);
  std::vector<std::string> names;
  for (size_t i = 0; i < hosts; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "host%03zu", i);
    names.push_back(name);
    plan.hosts.push_back(plans::HostSpec{.name = name, .address = std::string(name) + ".example"});
  }
  for (size_t i = 0; i < steps; ++i) {
    plans::Step step;
    step.id = "sync-" + std::to_string(i);
    step.title = step.id;
    step.phase = i % 2 ? "cutover" : "prepare";
    step.on = names;
    step.action =
        plans::SyncAction{.from_host = names.empty() ? std::nullopt : std::optional(names.front()),
                          .from_path = "/srv/app/part" + std::to_string(i) + "/",
                          .to_path = "/srv/app/part" + std::to_string(i) + "/"};
    plan.steps.push_back(std::move(step));
  }
  return plan;
}

std::vector<plans::Event> synthetic_events(const plans::Plan& plan, size_t count, uint32_t seed) {
  std::vector<plans::Event> out;
  out.reserve(count);
  std::mt19937 random(seed);
  struct Job {
    const std::string* step;
    const std::string* host;
    uint64_t bytes = 0;
  };
  std::vector<Job> jobs;
  for (const plans::Step& step : plan.steps)
    for (const std::string& host : step.on)
      jobs.push_back(Job{.step = &step.id, .host = &host});
  if (jobs.empty()) return out;
  const uint64_t total = 10ull << 30;
  static const char* kStatuses[] = {"starting", "healthy", "unhealthy"};
  for (size_t i = 0; i < count; ++i) {
    Job& job = jobs[random() % jobs.size()];
    const uint32_t kind = random() % 100;
    if (kind < 85) {
      job.bytes = std::min(total, job.bytes + 1 + random() % (8u << 20));
      out.push_back(plans::ProgressEvent{.step = *job.step,
                                         .host = *job.host,
                                         .bytes = job.bytes,
                                         .total = total,
                                         .rate = 50e6 + random() % 1000000,
                                         .eta_s = static_cast<double>(total - job.bytes) / 50e6,
                                         .files = job.bytes >> 20,
                                         .files_total = total >> 20,
                                         .item = "data/file" + std::to_string(job.bytes >> 20)});
    } else if (kind < 97) {
      out.push_back(plans::LogEvent{.step = *job.step,
                                    .host = *job.host,
                                    .stream = "stdout",
                                    .line = ">f+++++++++ data/file" + std::to_string(i)});
    } else if (kind < 99) {
      out.push_back(plans::HealthEvent{.step = *job.step,
                                       .host = *job.host,
                                       .target = "web" + std::to_string(random() % 3),
                                       .status = kStatuses[random() % 3]});
    } else {
      out.push_back(plans::HostEvent{.host = *job.host, .state = "ready"});
    }
  }
  return out;
}

}  // namespace cutpilot::tui
