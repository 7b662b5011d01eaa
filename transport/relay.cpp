#include "transport/relay.h"

#include <algorithm>

namespace cutpilot::transport {
namespace {

// The most one direction of a connection holds here; it is read only once it is empty.
constexpr size_t kChunk = 256 * 1024;
// The most one direction moves per tick, so one busy connection cannot hold up the loop.
constexpr size_t kTurnBudget = 4 * kChunk;

// The address both listener and far end use: each host's own loopback.
constexpr char kLoopback[] = "127.0.0.1";

// libssh still holds bytes for the session's socket (it keeps that buffer unbounded).
bool write_pending(ssh_session session) {
  return (ssh_get_status(session) & SSH_WRITE_PENDING) != 0;
}

// Runs a global request (listen or cancel) to its answer, within the session's timeout.
// Blocking on purpose: in non-blocking mode another call could take this request's reply
// for its own, and libssh reads the bound port from whatever packet came in last.
template <typename Request>
int blocking(ssh_session session, Request request) {
  ssh_set_blocking(session, 1);
  const int rc = request();
  ssh_set_blocking(session, 0);
  return rc;
}

// One direction of a connection: the chunk read from its source not yet written on.
struct Flow {
  std::vector<char> chunk;
  size_t head = 0, end = 0;  // chunk[head, end) is still to be written
  bool eof_sent = false;     // the source ended and everything before it went on

  bool empty() const { return head == end; }
};

}  // namespace

// One connection: the client's side on from's session, sshd's side on to's session.
struct Relays::Pipe {
  ssh_channel near = nullptr;  // forwarded-tcpip: the client that connected on from
  ssh_channel far = nullptr;   // direct-tcpip: to's sshd (opening until far_open)
  bool far_open = false;
  Flow forward;  // near -> far
  Flow back;     // far -> near

  // Freeing an open channel closes it (when its session is still alive); libssh keeps it
  // until the other side's close arrives.
  void release() {
    if (near) ssh_channel_free(near);
    if (far) ssh_channel_free(far);
    near = far = nullptr;
  }
};

// One listener and its connections.
struct Relays::Relay {
  RelayInfo info;
  ssh_session from = nullptr;  // null once from's link dropped (the listener went with it)
  ssh_session to = nullptr;    // null once to's link dropped
  std::vector<std::unique_ptr<Pipe>> pipes;
};

namespace {

// Moves what it can from src to dst, then passes on an EOF; false when the connection broke.
bool move(ssh_channel src, ssh_channel dst, ssh_session dst_session, Flow& flow,
          uint64_t& counter) {
  if (flow.eof_sent) return true;
  size_t budget = kTurnBudget;
  while (budget > 0) {
    if (flow.empty()) {
      if (flow.chunk.empty()) flow.chunk.resize(kChunk);
      flow.head = flow.end = 0;
      while (flow.end < kChunk) {
        const int n = ssh_channel_read_nonblocking(src, flow.chunk.data() + flow.end,
                                                   static_cast<uint32_t>(kChunk - flow.end), 0);
        if (n == SSH_ERROR) return false;
        if (n <= 0) break;  // nothing buffered now, or SSH_EOF
        flow.end += static_cast<size_t>(n);
      }
      if (flow.empty()) break;
    }
    // Queue no more while libssh still holds unsent bytes: it would keep them all.
    if (write_pending(dst_session)) break;
    const size_t want = std::min(flow.end - flow.head, budget);
    const int n =
        ssh_channel_write(dst, flow.chunk.data() + flow.head, static_cast<uint32_t>(want));
    if (n < 0) return false;
    flow.head += static_cast<size_t>(n);
    counter += static_cast<uint64_t>(n);
    budget -= static_cast<size_t>(n);
    if (static_cast<size_t>(n) < want) break;  // dst's window is full
  }
  if (flow.empty() && ssh_channel_is_eof(src)) {
    if (!ssh_channel_is_closed(dst) && ssh_channel_send_eof(dst) == SSH_ERROR) return false;
    flow.eof_sent = true;
    flow.chunk = {};
  }
  return true;
}

// Whether move() would get something done without a new socket event.
bool can_move(ssh_channel src, ssh_channel dst, ssh_session dst_session, const Flow& flow) {
  if (!flow.empty()) return !write_pending(dst_session) && ssh_channel_window_size(dst) > 0;
  if (flow.eof_sent) return false;
  const int n = ssh_channel_poll(src, 0);
  return n > 0 || n == SSH_EOF || n == SSH_ERROR;
}

}  // namespace

Relays::Relays() = default;
Relays::~Relays() = default;  // the fleet drops every host first: sessions free their channels

RelayAnswer Relays::open(const std::string& from, ssh_session from_session, const std::string& to,
                         ssh_session to_session, uint16_t to_port) {
  RelayAnswer answer;
  int bound = 0;
  const int rc = blocking(
      from_session, [&] { return ssh_channel_listen_forward(from_session, kLoopback, 0, &bound); });
  if (rc == SSH_AGAIN) {
    answer.stuck = true;
    answer.error = from + ": no answer to the request to listen for a relay";
    return answer;
  }
  if (rc != SSH_OK || bound <= 0 || bound > 65535) {
    answer.error = from + ": sshd did not listen on " + kLoopback +
                   " for a relay (it needs AllowTcpForwarding yes or remote for this user): " +
                   ssh_get_error(from_session);
    return answer;
  }
  auto relay = std::make_unique<Relay>();
  relay->info.from_host = from;
  relay->info.to_host = to;
  relay->info.port = static_cast<uint16_t>(bound);
  relay->info.to_port = to_port;
  relay->from = from_session;
  relay->to = to_session;
  relays_.push_back(std::move(relay));
  answer.port = static_cast<uint16_t>(bound);
  return answer;
}

RelayAnswer Relays::close(std::string_view from, uint16_t port) {
  RelayAnswer answer;
  auto it = std::find_if(relays_.begin(), relays_.end(), [&](const auto& r) {
    return r->info.from_host == from && r->info.port == port;
  });
  if (it == relays_.end()) {
    answer.error = std::string(from) + ": no relay listens on port " + std::to_string(port);
    return answer;
  }
  Relay& relay = **it;
  for (auto& pipe : relay.pipes)
    pipe->release();
  if (relay.from) {
    const int rc = blocking(
        relay.from, [&] { return ssh_channel_cancel_forward(relay.from, kLoopback, port); });
    if (rc == SSH_AGAIN) {
      answer.stuck = true;
      answer.error = std::string(from) + ": no answer to the request to stop a relay's listener";
    } else if (rc != SSH_OK) {
      answer.error = std::string(from) + ": cannot stop the relay's listener on port " +
                     std::to_string(port) + ": " + ssh_get_error(relay.from);
    }
  }
  relays_.erase(it);
  return answer;
}

void Relays::drop_host(std::string_view host, const std::string& why) {
  for (auto& relay : relays_) {
    const bool from = relay->info.from_host == host, to = relay->info.to_host == host;
    if (!from && !to) continue;
    for (auto& pipe : relay->pipes)
      pipe->release();
    relay->pipes.clear();
    relay->info.active = 0;
    if (!relay->info.broken) relay->info.error = why;
    relay->info.broken = true;
    if (from) relay->from = nullptr;
    if (to) relay->to = nullptr;
  }
}

bool Relays::ready() const {
  for (const auto& relay : relays_)
    for (const auto& pipe : relay->pipes) {
      if (!pipe->far_open) continue;  // its answer comes as a socket event
      if (can_move(pipe->near, pipe->far, relay->to, pipe->forward) ||
          can_move(pipe->far, pipe->near, relay->from, pipe->back))
        return true;
    }
  return false;
}

void Relays::accept(ssh_session session) {
  for (;;) {
    int port = 0;
    ssh_channel near = ssh_channel_open_forward_port(session, 0, &port, nullptr, nullptr);
    if (!near) return;
    auto it = std::find_if(relays_.begin(), relays_.end(), [&](const auto& r) {
      return r->from == session && r->info.port == port;
    });
    // A broken relay keeps its listener until close(): refuse what still arrives.
    if (it == relays_.end() || (*it)->info.broken) {
      ssh_channel_free(near);
      continue;
    }
    Relay& relay = **it;
    auto pipe = std::make_unique<Pipe>();
    pipe->near = near;
    pipe->far = ssh_channel_new(relay.to);
    ++relay.info.connections;
    if (!pipe->far) {
      relay.info.error = relay.info.to_host + ": cannot make a channel: " + ssh_get_error(relay.to);
      pipe->release();
      continue;
    }
    relay.pipes.push_back(std::move(pipe));
  }
}

void Relays::tick() {
  std::vector<ssh_session> listening;
  for (const auto& relay : relays_)
    if (relay->from &&
        std::find(listening.begin(), listening.end(), relay->from) == listening.end())
      listening.push_back(relay->from);
  for (ssh_session session : listening)
    accept(session);

  for (auto& relay : relays_) {
    RelayInfo& info = relay->info;
    auto& pipes = relay->pipes;
    for (size_t i = 0; i < pipes.size();) {
      Pipe& pipe = *pipes[i];
      bool done = false;
      if (!pipe.far_open) {
        // Sends the open the first time, then collects the answer (SSH_AGAIN meanwhile).
        const int rc =
            ssh_channel_open_forward(pipe.far, kLoopback, info.to_port, kLoopback, info.port);
        if (rc == SSH_OK) {
          pipe.far_open = true;
        } else if (rc != SSH_AGAIN) {
          info.error = info.to_host + ": cannot reach its sshd at " + kLoopback + ":" +
                       std::to_string(info.to_port) + ": " + ssh_get_error(relay->to);
          done = true;
        }
      }
      if (pipe.far_open) {
        done = !move(pipe.near, pipe.far, relay->to, pipe.forward, info.bytes_forward) ||
               !move(pipe.far, pipe.near, relay->from, pipe.back, info.bytes_back) ||
               (pipe.forward.eof_sent && pipe.back.eof_sent) ||
               (pipe.forward.eof_sent && ssh_channel_is_closed(pipe.near)) ||
               (pipe.back.eof_sent && ssh_channel_is_closed(pipe.far));
      }
      if (done) {
        pipe.release();
        pipes.erase(pipes.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
    info.active = pipes.size();
  }
}

std::vector<RelayInfo> Relays::list() const {
  std::vector<RelayInfo> out;
  for (const auto& relay : relays_)
    out.push_back(relay->info);
  return out;
}

}  // namespace cutpilot::transport
