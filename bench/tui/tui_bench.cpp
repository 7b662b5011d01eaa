// The cockpit's cost with 200 hosts and 400 running jobs: events taken in by the real model,
// frames drawn by the real view (ncurses on a pseudo-terminal), and the CPU of the real loop
// (run_cockpit) while nothing happens. No tool to compare with: the numbers stand alone.
//   tui_bench                          everything (idle: TUI_BENCH_IDLE_SECONDS, default 5)
//   tui_bench --benchmark_min_time=0.01  the CI smoke run
#include <benchmark/benchmark.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include "tui/cockpit.h"
#include "tui/synthetic.h"
#include "tui/view.h"

namespace cutpilot::tui {
namespace {

constexpr size_t kHosts = 200;
constexpr size_t kSteps = 2;  // each on every host: 400 jobs

// A pseudo-terminal of a given size whose output a thread reads and throws away (counting
// it), as a terminal emulator would.
class Pty {
 public:
  Pty(int cols, int rows) {
    winsize size{};
    size.ws_col = static_cast<unsigned short>(cols);
    size.ws_row = static_cast<unsigned short>(rows);
    if (openpty(&master_, &slave_, nullptr, nullptr, &size) != 0)
      throw std::runtime_error("openpty");
    drain_ = std::thread([this] {
      char buffer[65536];
      pollfd fd{master_, POLLIN, 0};
      while (!stop_) {
        if (poll(&fd, 1, 50) <= 0) continue;
        const ssize_t n = read(master_, buffer, sizeof buffer);
        if (n <= 0) break;
        bytes_ += static_cast<uint64_t>(n);
      }
    });
  }
  ~Pty() {
    stop_ = true;
    drain_.join();
    close(slave_);
    close(master_);
  }
  int master() const { return master_; }
  int slave() const { return slave_; }
  uint64_t bytes() const { return bytes_; }

 private:
  int master_ = -1;
  int slave_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> bytes_{0};
  std::thread drain_;
};

const plans::Plan& big_plan() {
  static const plans::Plan plan = synthetic_plan(kHosts, kSteps);
  return plan;
}

const std::vector<plans::Event>& big_events() {
  static const std::vector<plans::Event> events = synthetic_events(big_plan(), 1 << 20, 42);
  return events;
}

// A model of the big plan with every step running and all 400 jobs reporting.
void warm_up(Model& model) {
  const Clock::time_point now = Clock::now();
  for (const plans::Step& step : big_plan().steps)
    model.apply(plans::StepEvent{.step = step.id, .state = plans::StepState::kRunning}, now);
  model.apply(plans::DowntimeEvent{.state = "started", .predicted_s = 120, .budget_s = 300}, now);
  for (const plans::Step& step : big_plan().steps)
    for (const std::string& host : step.on)
      model.apply(plans::ProgressEvent{.step = step.id, .host = host, .bytes = 1, .total = 100},
                  now);
}

// Events through the RunLink into the model, as the cockpit takes them in (publishing,
// the run's side, is not timed).
void BM_EventIntake(benchmark::State& state) {
  const auto& events = big_events();
  const size_t batch = static_cast<size_t>(state.range(0));
  Model model(big_plan());
  warm_up(model);
  plans::RunLink link;
  size_t at = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (size_t i = 0; i < batch; ++i)
      link.publish(events[(at + i) % events.size()]);
    at += batch;
    state.ResumeTiming();
    const Clock::time_point now = Clock::now();
    for (const plans::Event& event : link.take_events())
      model.apply(event, now);
    benchmark::DoNotOptimize(model.take_dirty());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(batch));
}
BENCHMARK(BM_EventIntake)->Arg(1000)->Arg(10000)->UseRealTime();

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// One frame after a batch of 1,000 events (progress of most of the 400 jobs, log lines,
// health): what changed is drawn and sent to the terminal. range(2) = 1: every pane and a
// full repaint each frame (as after a resize).
void BM_Frame(benchmark::State& state) {
  const int cols = static_cast<int>(state.range(0));
  const int rows = static_cast<int>(state.range(1));
  const bool full = state.range(2) != 0;
  Pty pty(cols, rows);
  std::FILE* in = fdopen(dup(pty.slave()), "r");
  std::FILE* out = fdopen(dup(pty.slave()), "w");
  {
    View view(in, out, ViewOptions{.term = "tmux-256color"});
    Model model(big_plan());
    warm_up(model);
    UiState ui;
    ui.focus = Pane::kJobs;
    view.draw(model, ui, model.take_dirty() | part::kLayout, Clock::now());
    const auto& events = big_events();
    size_t at = 0;
    std::vector<double> frames;
    const uint64_t bytes_before = pty.bytes();
    for (auto _ : state) {
      const Clock::time_point now = Clock::now();
      for (size_t i = 0; i < 1000; ++i)
        model.apply(events[(at + i) % events.size()], now);
      at += 1000;
      model.tick(now);
      const uint32_t dirty = model.take_dirty() | (full ? part::kAll | part::kLayout : 0);
      const auto start = Clock::now();
      view.draw(model, ui, dirty, now);
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      frames.push_back(seconds);
      state.SetIterationTime(seconds);
    }
    state.counters["median_ms"] = median(frames) * 1e3;
    std::sort(frames.begin(), frames.end());
    state.counters["p99_ms"] = frames.empty() ? 0 : frames[frames.size() * 99 / 100] * 1e3;
    state.counters["kB_per_frame"] =
        static_cast<double>(pty.bytes() - bytes_before) / 1e3 / static_cast<double>(frames.size());
  }
  std::fclose(in);
  std::fclose(out);
}
BENCHMARK(BM_Frame)
    ->Args({80, 24, 0})
    ->Args({200, 60, 0})
    ->Args({200, 60, 1})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

double thread_cpu_seconds(pthread_t thread) {
  clockid_t clock;
  timespec ts{};
  if (pthread_getcpuclockid(thread, &clock) != 0 || clock_gettime(clock, &ts) != 0) return 0;
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// The real loop (run_cockpit) on a 200x60 pty with the big plan and no events at all: the
// CPU its thread uses, as % of a core. range(0) = 1: with a step running and the downtime
// clock ticking (the steps pane redraws every second too).
void BM_IdleLoop(benchmark::State& state) {
  const char* env = std::getenv("TUI_BENCH_IDLE_SECONDS");
  const double seconds = env ? std::atof(env) : 5.0;
  for (auto _ : state) {
    Pty pty(200, 60);
    plans::RunLink link;
    if (state.range(0)) {
      link.publish(plans::StepEvent{.step = "sync-0", .state = plans::StepState::kRunning});
      link.publish(plans::DowntimeEvent{.state = "started", .predicted_s = 120, .budget_s = 300});
    }
    std::thread cockpit([&] {
      run_cockpit(big_plan(), link,
                  CockpitOptions{.in_fd = pty.slave(), .out_fd = pty.slave(), .by = "bench@local"});
    });
    // Let it draw its first frames, then measure a quiet stretch.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const double cpu_before = thread_cpu_seconds(cockpit.native_handle());
    const auto wall_before = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    const double cpu = thread_cpu_seconds(cockpit.native_handle()) - cpu_before;
    const double wall = std::chrono::duration<double>(Clock::now() - wall_before).count();
    // Inside the downtime window q asks first: y answers it.
    const char* leave = state.range(0) ? "qy" : "q";
    [[maybe_unused]] const ssize_t n = write(pty.master(), leave, std::strlen(leave));
    cockpit.join();
    state.SetIterationTime(wall);
    state.counters["cpu_pct_of_core"] = 100.0 * cpu / wall;
  }
}
BENCHMARK(BM_IdleLoop)->Arg(0)->Arg(1)->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);

}  // namespace
}  // namespace cutpilot::tui

BENCHMARK_MAIN();
