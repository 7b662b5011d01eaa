#include "cli/fleet_port.h"

#include <cstdio>
#include <cstdlib>

namespace cutpilot::cli {
namespace {

const char* finished_state(proto::JobState state) {
  switch (state) {
    case proto::JobState::kSucceeded:
      return "succeeded";
    case proto::JobState::kCancelled:
      return "cancelled";
    case proto::JobState::kTimedOut:
      return "timed-out";
    default:
      return "failed";
  }
}

const char* stream_name(proto::Stream stream) {
  switch (stream) {
    case proto::Stream::kStdout:
      return "stdout";
    case proto::Stream::kStderr:
      return "stderr";
    default:
      return "agent";
  }
}

// The agent's words about a job without the `job "ID": ` it starts with.
std::string without_job_prefix(const std::string& message, const std::string& job_id) {
  const std::string prefix = "job \"" + job_id + "\": ";
  return message.rfind(prefix, 0) == 0 ? message.substr(prefix.size()) : message;
}

// The executor's view of one job event; nullopt for what it does not need.
std::optional<plans::JobUpdate> update_of(const transport::JobEvent& event) {
  using Kind = plans::JobUpdate::Kind;
  const proto::Message& message = event.message;
  plans::JobUpdate u;
  if (event.unknown) {
    // Not "failed" and not "never ran": nobody can tell any more whether it ran.
    u.kind = Kind::kUnknown;
    const auto& error = std::get<proto::Error>(message);
    const bool gone = error.code == proto::ErrorCode::kUnknownJob;
    u.error = event.host + (gone ? " has no job " : " cannot tell what became of job ") +
              event.job_id + " (" + without_job_prefix(error.message, event.job_id) + ")";
  } else if (const auto* m = std::get_if<proto::JobStarted>(&message)) {
    u.kind = Kind::kStarted;
    u.existing = m->existing;
  } else if (const auto* m = std::get_if<proto::Progress>(&message)) {
    u.kind = Kind::kProgress;
    u.progress.bytes = m->bytes;
    u.progress.total = m->total;
    u.progress.rate = static_cast<double>(m->rate);
    if (m->files || m->files_total) u.progress.files = m->files;
    u.progress.files_total = m->files_total;
    u.progress.item = m->detail;
    if (m->estimate_ms) u.estimate_s = static_cast<double>(*m->estimate_ms) / 1000.0;
  } else if (const auto* m = std::get_if<proto::LogLine>(&message)) {
    u.kind = Kind::kLog;
    u.stream = stream_name(m->stream);
    u.line = m->line;
  } else if (const auto* m = std::get_if<proto::Health>(&message)) {
    u.kind = Kind::kHealth;
    u.target = m->target;
    u.status = m->status;
  } else if (const auto* m = std::get_if<proto::JobFinished>(&message)) {
    u.kind = Kind::kFinished;
    u.state = finished_state(m->state);
    u.exit_code = m->exit_code;
    u.error = m->error;
    u.result = m->result;
  } else if (const auto* m = std::get_if<proto::Error>(&message)) {
    // The agent refused the job (a bad spec, an unknown kind): it never ran.
    u.kind = Kind::kFinished;
    u.state = "failed";
    u.error = "the agent refused the job: " + m->message;
  } else {
    return std::nullopt;
  }
  return u;
}

}  // namespace

std::string facts_line(const proto::HostFacts& facts, const transport::LinkInfo& link) {
  char load[16];
  std::snprintf(load, sizeof load, "%.2f", facts.load1_milli / 1000.0);
  std::string line = "agent " + link.agent_version + ", load " + load;
  for (const auto& disk : facts.disks)
    if (disk.error.empty()) {
      char free[32];
      std::snprintf(free, sizeof free, "%.1f", static_cast<double>(disk.free) / (1ull << 30));
      line += std::string(", ") + free + " GiB free on " + disk.path;
      break;
    }
  return line + ", " + std::to_string(facts.cores) + " cores";
}

const char* schema_host_state(transport::LinkState state) {
  switch (state) {
    case transport::LinkState::kReady:
      return "ready";
    case transport::LinkState::kLost:
      return "lost";
    case transport::LinkState::kFailed:
      return "failed";
    default:
      return "connecting";
  }
}

void FleetPort::start(const std::string& host, const std::string& job_id,
                      const plans::JobSpec& job) {
  tracker_.start(host, proto::StartJob{job_id, job.kind, job.spec});
}

void FleetPort::attach(const std::string& host, const std::string& job_id) {
  // Attach only, on this link and every later one: an agent without the job answers
  // Error(kUnknownJob), handed on as a kUnknown update (deliver).
  tracker_.follow(host, job_id, 0);
}

void FleetPort::cancel(const std::string& job_id) {
  if (!tracker_.cancel(job_id)) cancels_.insert(job_id);
}

void FleetPort::acknowledge(const std::string& job_id) {
  tracker_.acknowledge(job_id);
}

std::optional<plans::PeerAccess> FleetPort::peer_access(std::string_view host) {
  const plans::HostSpec* spec = plan_.find_host(host);
  if (!spec) return std::nullopt;
  const auto& info = fleet_.info(host);
  if (info.host_key.empty()) return std::nullopt;
  plans::PeerAccess access = plans::default_peer_access(*spec);
  access.host_key = info.host_key;
  // Without a user in the plan the other hosts log in as the cockpit did (ssh_config's User),
  // never as whoever runs the job there (root, when that host's agent runs under sudo).
  if (access.user.empty()) access.user = info.user;
  // Without a peer_address the other hosts reach it where the cockpit did: the address
  // and port ssh_config resolved (the plan's address may be an alias only we know). With
  // one, they reach that address on the port ssh uses, unless the plan names a port.
  const size_t colon = info.endpoint.rfind(':');
  if (colon != std::string::npos && colon > 0) {
    if (!spec->peer_address) {
      access.address = info.endpoint.substr(0, colon);
      if (access.address.size() > 2 && access.address.front() == '[')
        access.address = access.address.substr(1, access.address.size() - 2);
    }
    if (!spec->peer_address || !spec->port)
      access.port = static_cast<uint16_t>(std::atoi(info.endpoint.c_str() + colon + 1));
  }
  return access;
}

void FleetPort::deliver(const transport::HostEvent& event, plans::Executor& executor,
                        plans::RunClock::time_point now) {
  if (event.state == transport::LinkState::kReady) {
    // Where the host is now must be where this run's steps ran before anything is asked of it.
    const transport::LinkInfo& info = fleet_.info(event.host);
    const plans::HostSpec* spec = plan_.find_host(event.host);
    const std::string user = spec && spec->user ? *spec->user + "@" : "";
    executor.on_host_ready(event.host, user + info.endpoint, info.host_key);
    if (!executor.fatal().empty()) return;
  }
  if (event.state) {
    const std::string state = schema_host_state(*event.state);
    std::string& shown = shown_[event.host];
    if (state != shown || !event.error.empty())
      executor.on_host(event.host, state, event.error, now);
    shown = state;
    if (*event.state == transport::LinkState::kReady) {
      // What the hosts pane shows beside the state: asked once per connect.
      fleet_.send(event.host, proto::Facts{});
      for (auto it = cancels_.begin(); it != cancels_.end();)
        it = tracker_.cancel(*it) ? cancels_.erase(it) : std::next(it);
    }
  }
  if (event.message)
    if (const auto* facts = std::get_if<proto::HostFacts>(&*event.message))
      executor.on_host(event.host, "ready", "", now, facts_line(*facts, fleet_.info(event.host)));
  std::vector<transport::JobEvent> jobs;
  tracker_.handle(event, jobs);
  for (const auto& job : jobs)
    if (const auto update = update_of(job)) executor.on_job(job.job_id, *update, now);
}

}  // namespace cutpilot::cli
