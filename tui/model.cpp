#include "tui/model.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

#include "tui/format.h"

namespace cutpilot::tui {
namespace {

using plans::StepState;

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

double StepView::elapsed(Clock::time_point now) const {
  return elapsed_before + (running_since ? seconds_between(*running_since, now) : 0.0);
}

std::optional<double> JobView::fraction() const {
  // A sync knows how many files it checks before it knows how many bytes will move.
  if (!total && files && files_total && *files_total > 0)
    return std::min(1.0, static_cast<double>(*files) / static_cast<double>(*files_total));
  if (!total) return std::nullopt;
  if (*total == 0) return 1.0;
  return std::min(1.0, static_cast<double>(bytes) / static_cast<double>(*total));
}

bool LogQuery::matches(const LogLine& line) const {
  if (!step.empty() && line.step != step) return false;
  if (!host.empty() && line.host != host) return false;
  return text.empty() || line.line.find(text) != std::string::npos;
}

LogBuffer::LogBuffer(size_t capacity) : capacity_(std::max<size_t>(capacity, 1)) {}

void LogBuffer::push(LogLine line) {
  line.seq = next_seq_++;
  if (lines_.size() == capacity_) lines_.pop_front();
  lines_.push_back(std::move(line));
}

std::vector<const LogLine*> LogBuffer::page(const LogQuery& query, uint64_t end_seq,
                                            size_t count) const {
  std::vector<const LogLine*> out;
  if (lines_.empty() || count == 0) return out;
  // Lines are in seq order with no gaps: index of end_seq is a subtraction.
  const uint64_t first = lines_.front().seq;
  if (end_seq < first) return out;
  size_t i = std::min<uint64_t>(end_seq - first, lines_.size() - 1) + 1;
  while (i > 0 && out.size() < count) {
    const LogLine& line = lines_[--i];
    if (query.matches(line)) out.push_back(&line);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

uint64_t LogBuffer::move(const LogQuery& query, uint64_t seq, long delta) const {
  if (lines_.empty()) return seq;
  const uint64_t first = lines_.front().seq;
  size_t i = seq < first ? 0 : std::min<uint64_t>(seq - first, lines_.size() - 1);
  uint64_t found = seq;
  if (delta < 0) {
    while (delta < 0 && i > 0) {
      if (query.matches(lines_[--i])) {
        found = lines_[i].seq;
        ++delta;
      }
    }
  } else {
    while (delta > 0 && i + 1 < lines_.size()) {
      if (query.matches(lines_[++i])) {
        found = lines_[i].seq;
        --delta;
      }
    }
  }
  return found;
}

double DowntimeView::elapsed(Clock::time_point now) const {
  if (state != State::kStarted) return seconds;
  return seconds + seconds_between(at, now);
}

DowntimeView::Budget DowntimeView::budget_level(Clock::time_point now) const {
  if (!budget_s) return Budget::kWithin;
  const double spent = elapsed(now);
  if (spent > *budget_s) return Budget::kOver;
  return spent >= 0.8 * *budget_s ? Budget::kNear : Budget::kWithin;
}

Model::Model(const plans::Plan& plan, ModelOptions options)
    : plan_(plan),
      options_(options),
      // A resumed run's clock goes on from where it was, never back to 0:00.
      started_(Clock::now() - std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(options.seconds_before))),
      log_(options.log_lines) {
  for (const std::string& phase : plans::phases(plan.steps))
    for (size_t index : plans::ordered_steps(plan.steps)) {
      const plans::Step& step = plan.steps[index];
      if (step.phase != phase) continue;
      step_by_id_.emplace(step.id, steps_.size());
      steps_.push_back(StepView{.step = &step,
                                .id = step.id,
                                .phase = step.phase,
                                .hosts = fmt::format("{}", fmt::join(step.on, ", "))});
    }
  for (const plans::HostSpec& host : plan.hosts) {
    host_by_name_.emplace(host.name, hosts_.size());
    hosts_.push_back(HostView{.name = host.name, .address = host.address});
  }
  if (!steps_.empty()) phase_ = steps_.front().phase;
  if (plan.settings.downtime_budget)
    downtime_.budget_s = static_cast<double>(plan.settings.downtime_budget->count());
}

void Model::apply(const plans::Event& event, Clock::time_point now) {
  ++events_;
  std::visit([&](const auto& e) { on(e, now); }, event);
}

void Model::set_host_facts(std::string_view host, std::string facts) {
  hosts_[host_slot(host)].facts = printable(facts);
  dirty_ |= part::kHosts;
}

std::optional<Clock::duration> Model::tick(Clock::time_point now) {
  if (ended_ && downtime_.state != DowntimeView::State::kStarted) return std::nullopt;
  const auto since = now - started_;
  const long long second = std::chrono::duration_cast<std::chrono::seconds>(since).count();
  if (second != shown_second_) {
    shown_second_ = second;
    dirty_ |= part::kTop;
    if (running_steps_ > 0) dirty_ |= part::kSteps;
  }
  return std::chrono::seconds(second + 1) - since;
}

uint32_t Model::take_dirty() {
  const uint32_t out = dirty_;
  dirty_ = 0;
  return out;
}

std::optional<size_t> Model::step_index(std::string_view id) const {
  const auto it = step_by_id_.find(std::string(id));
  if (it == step_by_id_.end()) return std::nullopt;
  return it->second;
}

std::optional<size_t> Model::host_index(std::string_view name) const {
  const auto it = host_by_name_.find(std::string(name));
  if (it == host_by_name_.end()) return std::nullopt;
  return it->second;
}

std::vector<const JobView*> Model::jobs() const {
  std::vector<const JobView*> out;
  out.reserve(jobs_.size());
  for (const JobView& job : jobs_)
    if (job.state == JobState::kRunning) out.push_back(&job);
  for (auto it = jobs_.rbegin(); it != jobs_.rend(); ++it)
    if (it->state != JobState::kRunning) out.push_back(&*it);
  return out;
}

std::optional<size_t> Model::current_step() const {
  if (awaiting_ > 0)
    for (size_t i = 0; i < steps_.size(); ++i)
      if (steps_[i].state == StepState::kAwaitingApproval) return i;
  return last_started_;
}

const StepView* Model::point_of_no_return() const {
  if (awaiting_ == 0) return nullptr;
  for (const StepView& step : steps_)
    if (step.state == StepState::kAwaitingApproval && step.step && step.step->point_of_no_return)
      return &step;
  return nullptr;
}

size_t Model::running_jobs() const {
  size_t running = 0;
  for (const StepView& step : steps_)
    if (step.state == StepState::kRunning) running += step.step ? step.step->on.size() : 1;
  return std::max(running, running_jobs_);
}

size_t Model::step_slot(std::string_view id) {
  if (auto index = step_index(id)) return *index;
  // A step the plan does not have: show it rather than drop what the run says.
  step_by_id_.emplace(std::string(id), steps_.size());
  steps_.push_back(StepView{.id = printable(id), .phase = "?"});
  dirty_ |= part::kSteps;
  return steps_.size() - 1;
}

size_t Model::host_slot(std::string_view name) {
  if (auto index = host_index(name)) return *index;
  host_by_name_.emplace(std::string(name), hosts_.size());
  hosts_.push_back(HostView{.name = printable(name)});
  dirty_ |= part::kHosts;
  return hosts_.size() - 1;
}

JobView& Model::job_slot(std::string_view step, std::string_view host) {
  key_.assign(step);
  key_.push_back('\n');
  key_.append(host);
  const auto it = job_by_key_.find(key_);
  if (it != job_by_key_.end()) return jobs_[it->second];
  job_by_key_.emplace(key_, jobs_.size());
  jobs_.push_back(JobView{.step = printable(step), .host = printable(host), .order = job_order_++});
  ++running_jobs_;
  return jobs_.back();
}

void Model::finish_jobs(std::string_view step, JobState state) {
  for (JobView& job : jobs_) {
    if (job.step != step || job.state != JobState::kRunning) continue;
    job.state = state;
    --running_jobs_;
    // A job whose step succeeded moved everything: show it whole.
    if (state == JobState::kDone && job.total) job.bytes = std::max(job.bytes, *job.total);
    if (state == JobState::kDone && job.files_total)
      job.files = std::max(job.files.value_or(0), *job.files_total);
    job.eta_s.reset();
    dirty_ |= part::kJobs;
  }
  prune_finished_jobs();
}

void Model::restart_jobs(std::string_view step) {
  for (JobView& job : jobs_) {
    if (job.step != step || job.state == JobState::kRunning) continue;
    // A retry is a new attempt: its progress starts again from zero.
    job = JobView{.step = job.step, .host = job.host, .order = job.order};
    ++running_jobs_;
    dirty_ |= part::kJobs;
  }
}

void Model::prune_finished_jobs() {
  const size_t finished = jobs_.size() - running_jobs_;
  if (finished <= options_.finished_jobs_kept) return;
  size_t drop = finished - options_.finished_jobs_kept;
  // The oldest finished jobs go first.
  std::vector<JobView> kept;
  kept.reserve(jobs_.size() - drop);
  for (JobView& job : jobs_) {
    if (drop > 0 && job.state != JobState::kRunning) {
      --drop;
      continue;
    }
    kept.push_back(std::move(job));
  }
  jobs_ = std::move(kept);
  job_by_key_.clear();
  for (size_t i = 0; i < jobs_.size(); ++i)
    job_by_key_.emplace(jobs_[i].step + "\n" + jobs_[i].host, i);
}

void Model::on(const plans::StepEvent& e, Clock::time_point now) {
  const size_t index = step_slot(e.step);
  StepView& step = steps_[index];
  const StepState before = step.state;
  step.detail = printable(e.detail);
  step.pre_approved = e.pre_approved;
  dirty_ |= part::kSteps;
  if (before == e.state) return;
  if (before == StepState::kAwaitingApproval) --awaiting_;
  if (e.state == StepState::kAwaitingApproval) ++awaiting_;
  // The Jobs pane counts running steps as running jobs: its header changes with them, even
  // for a step that never reports progress (it said "1 running" after a verify had ended).
  if (before == StepState::kRunning || e.state == StepState::kRunning) dirty_ |= part::kJobs;
  if (before == StepState::kRunning) {
    --running_steps_;
    step.elapsed_before = step.elapsed(now);
    step.running_since.reset();
  }
  if (e.state == StepState::kRunning) {
    ++running_steps_;
    last_started_ = index;
    step.running_since = now;
    restart_jobs(step.id);
  }
  step.state = e.state;
  // The phase is the earliest one with a step still at work (steps_ is in phase order): a
  // step of "after" that started beside a running cutover step does not end the cutover.
  for (const StepView& s : steps_)
    if ((s.state == StepState::kRunning || s.state == StepState::kAwaitingApproval) &&
        s.phase != "?") {
      phase_ = s.phase;
      break;
    }
  if (e.state == StepState::kSucceeded) finish_jobs(step.id, JobState::kDone);
  if (e.state == StepState::kFailed || e.state == StepState::kRolledBack ||
      e.state == StepState::kSkipped)
    finish_jobs(step.id, JobState::kFailed);
  dirty_ |= part::kTop;
  if (step.step && step.step->point_of_no_return &&
      (before == StepState::kAwaitingApproval || e.state == StepState::kAwaitingApproval))
    dirty_ |= part::kBanner | part::kLayout;
}

void Model::on(const plans::ProgressEvent& e, Clock::time_point) {
  // A report that arrives after its step ended (the agent's last one crossed the step's end)
  // would bring back, as running, a job already done or already pruned from the list.
  if (const auto index = step_index(e.step)) {
    const StepState state = steps_[*index].state;
    if (state == StepState::kSucceeded || state == StepState::kFailed ||
        state == StepState::kRolledBack || state == StepState::kSkipped)
      return;
  }
  JobView& job = job_slot(e.step, e.host);
  if (job.state != JobState::kRunning) return;  // a late report of a finished job
  // The screen never shows a job going backwards within one attempt.
  job.bytes = std::max(job.bytes, e.bytes);
  if (e.total) job.total = std::max(job.total.value_or(0), *e.total);
  job.rate = e.rate;
  job.eta_s = e.eta_s;
  if (e.files) job.files = std::max(job.files.value_or(0), *e.files);
  if (e.files_total) job.files_total = e.files_total;
  job.unit = e.unit;
  if (!e.item.empty() && e.item != job.item) job.item = printable(e.item);
  dirty_ |= part::kJobs;
}

void Model::on(const plans::LogEvent& e, Clock::time_point) {
  std::string line = printable(e.line);
  if (!e.step.empty()) {
    StepView& step = steps_[step_slot(e.step)];
    step.last_lines.push_back(line);
    if (step.last_lines.size() > StepView::kLastLines) step.last_lines.pop_front();
    dirty_ |= part::kSteps;
  }
  log_.push(LogLine{.step = e.step,
                    .host = e.host,
                    .stream = e.stream,
                    .line = std::move(line),
                    .notice = e.notice,
                    .at = e.at});
  dirty_ |= part::kLog;
}

void Model::on(const plans::HealthEvent& e, Clock::time_point) {
  HostView& host = hosts_[host_slot(e.host)];
  auto it = std::find_if(host.health.begin(), host.health.end(),
                         [&](const HealthTarget& t) { return t.target == e.target; });
  if (it != host.health.end() && healthy_status(it->status)) --host.healthy;
  if (e.status == "removed") {
    if (it != host.health.end()) host.health.erase(it);
  } else {
    if (it == host.health.end())
      it = host.health.insert(host.health.end(), HealthTarget{.target = printable(e.target)});
    it->status = printable(e.status);
    if (healthy_status(e.status)) ++host.healthy;
  }
  dirty_ |= part::kHosts;
}

void Model::on(const plans::HostEvent& e, Clock::time_point) {
  HostView& host = hosts_[host_slot(e.host)];
  host.state = printable(e.state);
  // An error stays until the host is ready again: the operator should see why it was lost.
  if (!e.error.empty())
    host.error = printable(e.error);
  else if (e.state == "ready")
    host.error.clear();
  if (!e.facts.empty()) host.facts = printable(e.facts);
  dirty_ |= part::kHosts;
}

void Model::on(const plans::DowntimeEvent& e, Clock::time_point now) {
  using State = DowntimeView::State;
  const bool prediction = e.state != "started" && e.state != "ended";
  if (prediction && downtime_.state != State::kNone && downtime_.state != State::kPredicted) {
    // A new prediction while the window runs or after it: the clock itself stays.
    if (e.predicted_s) {
      downtime_.predicted_s = e.predicted_s;
      downtime_.at_least = e.at_least;
    }
    if (e.budget_s) downtime_.budget_s = e.budget_s;
    dirty_ |= part::kTop;
    return;
  }
  if (e.state == "started")
    downtime_.state = State::kStarted;
  else if (e.state == "ended")
    downtime_.state = State::kEnded;
  else if (downtime_.state == State::kNone)
    downtime_.state = State::kPredicted;
  downtime_.seconds = e.seconds;
  downtime_.at = now;
  if (e.predicted_s) {
    downtime_.predicted_s = e.predicted_s;
    downtime_.at_least = e.at_least;
  }
  if (e.predicted_at_start_s) downtime_.predicted_at_start_s = e.predicted_at_start_s;
  if (e.budget_s) downtime_.budget_s = e.budget_s;
  dirty_ |= part::kTop;
}

void Model::on(const plans::RunEvent& e, Clock::time_point) {
  ended_ = e;
  ended_->state = printable(e.state);
  dirty_ |= part::kTop | part::kStatus;
}

}  // namespace cutpilot::tui
