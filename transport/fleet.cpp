#include "transport/fleet.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <mutex>
#include <thread>

#include "transport/codec.h"

namespace cutpilot::transport {

std::string_view link_state_name(LinkState state) {
  switch (state) {
    case LinkState::kConnecting:
      return "connecting";
    case LinkState::kAuthenticating:
      return "authenticating";
    case LinkState::kDeploying:
      return "deploying";
    case LinkState::kReady:
      return "ready";
    case LinkState::kLost:
      return "lost";
    case LinkState::kReconnecting:
      return "reconnecting";
    case LinkState::kFailed:
      return "failed";
  }
  return "unknown";
}

// What a connect worker hands to the loop: a phase, or the finished attempt.
struct Report {
  size_t index = 0;
  uint64_t attempt = 0;
  LinkState state = LinkState::kConnecting;
  bool final = false;
  std::unique_ptr<SshSession> session;  // set when the attempt succeeded
  RunningAgent agent;
  std::string error;
  OpenFailure failure = OpenFailure::kNone;
};

// Where connect workers leave their reports; the eventfd wakes the poll loop.
struct Fleet::Inbox {
  std::mutex mutex;
  std::vector<Report> reports;
  int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ~Inbox() { close(wake_fd); }
  void post(Report report) {
    {
      std::lock_guard lock(mutex);
      reports.push_back(std::move(report));
    }
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd, &one, sizeof one);
  }
};

// One host: its target, its live session once ready, and the loop's bookkeeping.
struct Fleet::Link {
  SshTarget target;
  LinkInfo info;
  std::unique_ptr<SshSession> session;
  ssh_channel channel = nullptr;
  proto::FrameDecoder decoder;
  std::string outgoing;
  std::string stderr_tail;
  std::thread worker;
  uint64_t attempt = 0;  // reports of older attempts are ignored
  bool connecting = false;
  bool ever_ready = false;
  Clock::time_point last_rx{}, last_ping{}, retry_at{};
  std::chrono::milliseconds backoff{0};
  ssh_counter_struct counter{};  // bytes libssh read and wrote on the socket
  uint64_t rx_seen = 0;          // counter.in_bytes when prepare() started

  void close_link() {
    if (channel) {
      ssh_channel_free(channel);
      channel = nullptr;
    }
    session.reset();
    outgoing.clear();
    decoder = proto::FrameDecoder();
  }
};

Fleet::Fleet(std::vector<SshTarget> targets, AgentBinary agent, FleetOptions options)
    : agent_(std::move(agent)), options_(options), inbox_(std::make_shared<Inbox>()) {
  for (auto& target : targets) {
    auto link = std::make_unique<Link>();
    link->target = std::move(target);
    links_.push_back(std::move(link));
  }
}

Fleet::~Fleet() {
  for (auto& link : links_) {
    if (link->worker.joinable()) link->worker.join();
    shut(*link, "the cockpit closed the link");
  }
  // Sessions that finished connecting after the last tick were never taken over.
  std::lock_guard lock(inbox_->mutex);
  for (auto& report : inbox_->reports)
    if (report.agent.channel) ssh_channel_free(report.agent.channel);
}

std::vector<std::string> Fleet::hosts() const {
  std::vector<std::string> names;
  for (const auto& link : links_)
    names.push_back(link->target.name);
  return names;
}

Fleet::Link* Fleet::find(std::string_view host) const {
  for (const auto& link : links_)
    if (link->target.name == host) return link.get();
  return nullptr;
}

const LinkInfo& Fleet::info(std::string_view host) const {
  return find(host)->info;
}

void Fleet::start() {
  for (size_t i = 0; i < links_.size(); ++i)
    launch(i, false);
}

void Fleet::launch(size_t index, bool reconnecting) {
  Link& link = *links_[index];
  if (link.worker.joinable()) link.worker.join();
  link.connecting = true;
  const uint64_t attempt = ++link.attempt;
  // Always reported, also the first "connecting" that equals the initial state.
  link.info.state = reconnecting ? LinkState::kReconnecting : LinkState::kConnecting;
  link.info.error.clear();
  pending_.push_back({link.target.name, link.info.state, "", std::nullopt});
  // The worker owns copies of what it needs; the inbox outlives it (shared).
  link.worker = std::thread([inbox = inbox_, target = link.target, agent = &agent_, index, attempt,
                             timeout = options_.handshake_timeout] {
    auto phase = [&](LinkState state) {
      Report r;
      r.index = index;
      r.attempt = attempt;
      r.state = state;
      inbox->post(std::move(r));
    };
    Report done;
    done.index = index;
    done.attempt = attempt;
    done.final = true;
    auto session = std::make_unique<SshSession>(target);
    if (!session->open([&] { phase(LinkState::kAuthenticating); })) {
      done.error = session->error();
      done.failure = session->failure();
    } else {
      phase(LinkState::kDeploying);
      if (start_agent(*session, *agent, done.agent, done.error, timeout)) {
        done.state = LinkState::kReady;
        done.session = std::move(session);
      }
    }
    inbox->post(std::move(done));
  });
}

void Fleet::set_state(Link& link, LinkState state, std::string error,
                      std::vector<HostEvent>& events) {
  if (link.info.state == state && link.info.error == error) return;
  link.info.state = state;
  link.info.error = error;
  HostEvent event;
  event.host = link.target.name;
  event.state = state;
  event.error = std::move(error);
  events.push_back(std::move(event));
}

void Fleet::take_reports(std::vector<HostEvent>& events, Clock::time_point now) {
  uint64_t count;
  [[maybe_unused]] ssize_t n = read(inbox_->wake_fd, &count, sizeof count);
  std::vector<Report> reports;
  {
    std::lock_guard lock(inbox_->mutex);
    reports.swap(inbox_->reports);
  }
  for (auto& report : reports) {
    Link& link = *links_[report.index];
    if (report.attempt != link.attempt) {
      if (report.agent.channel) ssh_channel_free(report.agent.channel);
      continue;
    }
    if (!report.final) {
      set_state(link, report.state, "", events);
      continue;
    }
    link.connecting = false;
    if (report.session) {
      link.session = std::move(report.session);
      link.channel = report.agent.channel;
      link.info.endpoint = link.session->host_key().endpoint;
      link.info.host_key = link.session->host_key().public_key;
      if (const auto& resolved = link.session->resolved()) {
        link.info.via = !resolved->proxy_jump.empty()      ? resolved->proxy_jump
                        : !resolved->proxy_command.empty() ? "ProxyCommand"
                                                           : "";
        link.info.user = resolved->user;
      }
      link.info.agent_version = report.agent.identity.agent_version;
      link.info.uploaded = report.agent.uploaded;
      link.info.preamble = report.agent.preamble;
      ++link.info.connects;
      link.ever_ready = true;
      link.backoff = std::chrono::milliseconds(0);
      link.last_rx = link.last_ping = now;
      link.stderr_tail.clear();
      link.counter = {};
      ssh_set_counters(link.session->handle(), &link.counter, nullptr);
      ssh_set_blocking(link.session->handle(), 0);
      set_state(link, LinkState::kReady, "", events);
      continue;
    }
    // A host that never came up, or whose key or credentials are wrong, stays failed:
    // retrying cannot fix those. A link that worked before keeps trying.
    const bool permanent = report.failure == OpenFailure::kHostKeyChanged ||
                           report.failure == OpenFailure::kHostKeyUnknown ||
                           report.failure == OpenFailure::kAuth ||
                           report.failure == OpenFailure::kConfig;
    if (!link.ever_ready || permanent || !options_.reconnect) {
      set_state(link, LinkState::kFailed, report.error, events);
    } else {
      lose(link, report.error, events, now);
    }
  }
}

void Fleet::shut(Link& link, const std::string& why) {
  // Relays hold the session's channels: they go first.
  relays_.drop_host(link.target.name,
                    "the link to " + link.target.name + " went down (" + why + ")");
  link.close_link();
}

void Fleet::lose(Link& link, std::string why, std::vector<HostEvent>& events,
                 Clock::time_point now) {
  shut(link, why);
  if (!options_.reconnect) {
    set_state(link, LinkState::kFailed, std::move(why), events);
    return;
  }
  link.backoff = link.backoff.count() == 0 ? options_.backoff_first
                                           : std::min(link.backoff * 2, options_.backoff_max);
  link.retry_at = now + link.backoff;
  set_state(link, LinkState::kLost, std::move(why), events);
}

void Fleet::service(Link& link, std::vector<HostEvent>& events, Clock::time_point now) {
  // What libssh could not write at once goes out now that poll() may have said POLLOUT.
  if (ssh_get_status(link.session->handle()) & SSH_WRITE_PENDING)
    ssh_blocking_flush(link.session->handle(), 0);
  char buffer[64 * 1024];
  for (;;) {
    const int n = ssh_channel_read_nonblocking(link.channel, buffer, sizeof buffer, 0);
    if (n <= 0) {
      if (n < 0 && !ssh_channel_is_eof(link.channel))
        return lose(link, std::string("connection lost: ") + ssh_get_error(link.session->handle()),
                    events, now);
      break;
    }
    link.last_rx = now;
    link.decoder.feed(std::string_view(buffer, static_cast<size_t>(n)));
    proto::Message message;
    proto::FrameDecoder::Status status;
    while ((status = link.decoder.next(message)) == proto::FrameDecoder::Status::kMessage) {
      if (std::holds_alternative<proto::Pong>(message)) continue;
      HostEvent event;
      event.host = link.target.name;
      event.message = std::move(message);
      events.push_back(std::move(event));
    }
    if (status == proto::FrameDecoder::Status::kError) {
      // A garbled stream cannot be trusted: drop only this host.
      std::string why = link.target.name + ": bad frame from the agent: " + link.decoder.error();
      shut(link, why);
      return set_state(link, LinkState::kFailed, std::move(why), events);
    }
  }
  int e;
  while ((e = ssh_channel_read_nonblocking(link.channel, buffer, sizeof buffer, 1)) > 0) {
    link.stderr_tail.append(buffer, static_cast<size_t>(e));
    if (link.stderr_tail.size() > 4096) link.stderr_tail.erase(0, link.stderr_tail.size() - 4096);
  }
  if (ssh_channel_is_eof(link.channel) || !ssh_is_connected(link.session->handle())) {
    std::string why = link.target.name + ": the connection closed";
    if (!link.stderr_tail.empty()) why += "; agent stderr: " + link.stderr_tail;
    return lose(link, why, events, now);
  }
  if (now - link.last_rx >= options_.dead_after)
    return lose(link,
                link.target.name + ": no answer for " +
                    std::to_string(options_.dead_after.count() / 1000) + " s; the link is dead",
                events, now);
  if (now - link.last_ping >= options_.keepalive && link.outgoing.empty()) {
    link.outgoing += proto::encode_frame(proto::Ping{next_token_++});
    link.last_ping = now;
  }
  while (!link.outgoing.empty()) {
    const int n = ssh_channel_write(link.channel, link.outgoing.data(),
                                    static_cast<uint32_t>(link.outgoing.size()));
    if (n < 0)
      return lose(link, std::string("connection lost: ") + ssh_get_error(link.session->handle()),
                  events, now);
    if (n == 0) break;
    link.outgoing.erase(0, static_cast<size_t>(n));
  }
}

int Fleet::prepare(std::vector<pollfd>& fds, Clock::time_point now) {
  fds.push_back({inbox_->wake_fd, POLLIN, 0});
  auto next = now + std::chrono::hours(1);
  auto live = [](const Link& link) { return link.info.state == LinkState::kReady && link.channel; };
  for (auto& link : links_) {
    if (live(*link)) {
      link->rx_seen = link->counter.in_bytes;
      // libssh may already hold decrypted data that poll() will not report.
      if (ssh_channel_poll(link->channel, 0) > 0 || ssh_channel_poll(link->channel, 1) > 0)
        next = now;
      next = std::min(
          {next, link->last_ping + options_.keepalive, link->last_rx + options_.dead_after});
    } else if (link->info.state == LinkState::kLost && !link->connecting) {
      next = std::min(next, link->retry_at);
    }
  }
  if (relays_.ready()) next = now;
  for (auto& link : links_) {
    if (!live(*link)) continue;
    ssh_session session = link->session->handle();
    // Polling a channel reads the socket, and what it read may be for another channel
    // (a relay's above all): then there is work that poll() will not announce.
    if (link->counter.in_bytes != link->rx_seen) next = now;
    const bool writing =
        !link->outgoing.empty() || (ssh_get_status(session) & SSH_WRITE_PENDING) != 0;
    fds.push_back({ssh_get_fd(session), static_cast<short>(POLLIN | (writing ? POLLOUT : 0)), 0});
  }
  const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count();
  return static_cast<int>(std::clamp<int64_t>(wait, 0, 60'000));
}

void Fleet::tick(std::vector<HostEvent>& events, Clock::time_point now) {
  for (auto& event : pending_)
    events.push_back(std::move(event));
  pending_.clear();
  take_reports(events, now);
  for (auto& link : links_) {
    if (link->info.state == LinkState::kReady && link->channel) {
      service(*link, events, now);
    } else if (link->info.state == LinkState::kLost && !link->connecting && now >= link->retry_at) {
      launch(static_cast<size_t>(&link - &links_[0]), true);
    }
  }
  relays_.tick();
}

std::optional<uint16_t> Fleet::open_relay(std::string_view from_host, std::string_view to_host,
                                          std::string& error) {
  Link* from = find(from_host);
  Link* to = find(to_host);
  if (!from || !to || from == to) {
    error = "a relay needs two different hosts of the plan";
    return std::nullopt;
  }
  for (const Link* link : {from, to})
    if (link->info.state != LinkState::kReady || !link->session) {
      error = link->target.name + " is " + std::string(link_state_name(link->info.state)) +
              ", not ready: no relay through it";
      return std::nullopt;
    }
  // The port the cockpit reached to_host's sshd on; the relay connects to it from to_host.
  const std::string& endpoint = to->info.endpoint;
  const size_t colon = endpoint.rfind(':');
  unsigned port = 0;
  if (colon == std::string::npos ||
      std::from_chars(endpoint.data() + colon + 1, endpoint.data() + endpoint.size(), port).ec !=
          std::errc() ||
      port == 0 || port > 65535) {
    error = to->target.name + ": no sshd port in the endpoint '" + endpoint + "'";
    return std::nullopt;
  }
  RelayAnswer answer = relays_.open(from->target.name, from->session->handle(), to->target.name,
                                    to->session->handle(), static_cast<uint16_t>(port));
  if (answer.stuck) lose(*from, answer.error, pending_, Clock::now());
  if (!answer.port) error = answer.error;
  return answer.port;
}

bool Fleet::close_relay(std::string_view from_host, uint16_t port, std::string& error) {
  RelayAnswer answer = relays_.close(from_host, port);
  if (answer.stuck)
    if (Link* from = find(from_host)) lose(*from, answer.error, pending_, Clock::now());
  error = answer.error;
  return error.empty();
}

std::vector<RelayInfo> Fleet::relays() const {
  return relays_.list();
}

bool Fleet::send(std::string_view host, const proto::Message& message) {
  Link* link = find(host);
  if (!link || link->info.state != LinkState::kReady) return false;
  link->outgoing += proto::encode_frame(message);
  return true;
}

bool Fleet::run_until(const std::function<bool(const std::vector<HostEvent>&)>& done,
                      Clock::duration limit) {
  const auto deadline = Clock::now() + limit;
  std::vector<pollfd> fds;
  std::vector<HostEvent> events;
  for (;;) {
    auto now = Clock::now();
    events.clear();
    tick(events, now);
    if (done(events)) return true;
    if (now >= deadline) return false;
    fds.clear();
    int wait = prepare(fds, now);
    wait = std::min<int>(
        wait, static_cast<int>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count()) +
                  1);
    poll(fds.data(), fds.size(), wait);
  }
}

}  // namespace cutpilot::transport
