#include "transport/job_tracker.h"

namespace cutpilot::transport {
namespace {

// The job a message is about, or "" for messages that are not about a job.
std::string job_of(const proto::Message& message) {
  return std::visit(
      [](const auto& m) -> std::string {
        if constexpr (requires { m.job_id; }) {
          return m.job_id;
        } else {
          return "";
        }
      },
      message);
}

// The event's place in its job's log (0 for messages outside the log).
uint64_t seq_of(const proto::Message& message) {
  return std::visit(
      [](const auto& m) -> uint64_t {
        if constexpr (requires { m.seq; }) {
          return m.seq;
        } else {
          return 0;
        }
      },
      message);
}

}  // namespace

void JobTracker::start(const std::string& host, proto::StartJob request) {
  const std::string id = request.job_id;
  auto [it, added] = jobs_.try_emplace(id);
  if (!added) return;  // already started: the agent would only follow it again
  it->second.host = host;
  it->second.request = std::move(request);
  ask(id, it->second);
}

void JobTracker::follow(const std::string& host, const std::string& job_id, uint64_t after_seq) {
  TrackedJob& job = jobs_[job_id];
  if (job.finished || !job.error.empty() || job.host != host) {
    job.finished.reset();
    job.error.clear();
    job.last_seq = 0;
  }
  job.host = host;
  job.request.job_id = job_id;
  job.attach_only = true;  // no spec to send, and an id the agent lacks must never be claimed
  job.last_seq = std::max(job.last_seq, after_seq);
  ask(job_id, job);
}

void JobTracker::ask(const std::string& job_id, TrackedJob& job) {
  if (job.finished || !job.error.empty()) return;
  proto::Message request = job.last_seq == 0 && !job.attach_only
                               ? proto::Message(job.request)
                               : proto::Message(proto::Attach{job_id, job.last_seq});
  job.asked = fleet_.send(job.host, request);
  if (job.asked) ++job.requests;
}

void JobTracker::handle(const HostEvent& event, std::vector<JobEvent>& out) {
  if (event.state) {
    for (auto& [id, job] : jobs_) {
      if (job.host != event.host) continue;
      if (*event.state == LinkState::kReady) {
        ask(id, job);
      } else {
        job.asked = false;
      }
    }
    return;
  }
  if (!event.message) return;
  const std::string id = job_of(*event.message);
  const auto it = jobs_.find(id);
  if (id.empty() || it == jobs_.end() || it->second.host != event.host) return;
  TrackedJob& job = it->second;
  if (const auto* error = std::get_if<proto::Error>(&*event.message)) {
    if (job.finished || !job.error.empty()) return;  // e.g. a late answer to a CancelJob
    job.error = error->message;
    // Only a refused StartJob means "never ran": once the job was seen (or was never ours to
    // start), an error leaves its outcome unknown.
    const bool unknown =
        error->code == proto::ErrorCode::kUnknownJob || job.attach_only || job.last_seq > 0;
    out.push_back({event.host, id, *event.message, unknown});
    return;
  }
  const auto* started = std::get_if<proto::JobStarted>(&*event.message);
  if (started && !started->existing && job.attach_only && started->seq > job.last_seq) {
    // The start an Attach replays: this cockpit found the job on the agent, it started nothing.
    job.last_seq = started->seq;
    proto::JobStarted note = *started;
    note.existing = true;
    out.push_back({event.host, id, note});
    return;
  }
  if (started && started->existing) {
    // A note about the claim, not an event of the log: the agent already had the job (a
    // re-attach). Passed on so the caller can say so; it moves no seq.
    out.push_back({event.host, id, *event.message});
    return;
  }
  const uint64_t seq = seq_of(*event.message);
  if (seq <= job.last_seq || job.finished) return;  // a replay of what was delivered
  job.last_seq = seq;
  if (const auto* finished = std::get_if<proto::JobFinished>(&*event.message))
    job.finished = *finished;
  out.push_back({event.host, id, *event.message});
}

bool JobTracker::cancel(const std::string& job_id) {
  const auto it = jobs_.find(job_id);
  return it != jobs_.end() && fleet_.send(it->second.host, proto::CancelJob{job_id});
}

void JobTracker::acknowledge(const std::string& job_id) {
  const auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  fleet_.send(it->second.host, proto::Ack{job_id, it->second.last_seq});
  jobs_.erase(it);
}

const TrackedJob* JobTracker::find(const std::string& job_id) const {
  const auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : &it->second;
}

bool JobTracker::done(const std::string& job_id) const {
  const TrackedJob* job = find(job_id);
  return job && (job->finished || !job->error.empty());
}

}  // namespace cutpilot::transport
