// Every host of a plan, each with one SSH connection and one agent on it.
//
// libssh's connect, auth and the agent handshake are blocking calls, each bounded
// by a timeout: they run on a short-lived worker thread per host, so a slow or
// dead host never delays the others. Once a host is ready its session is handed
// to the caller's poll loop (prepare()/tick()), which owns it from then on:
// messages, keepalive, loss and reconnection all happen there, and so does the copying
// of relays (relay.h) for hosts that cannot reach each other.
#pragma once

#include <poll.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "transport/deploy.h"
#include "transport/protocol.h"
#include "transport/relay.h"
#include "transport/ssh_target.h"

namespace cutpilot::transport {

// Where a host's link stands.
enum class LinkState : uint8_t {
  kConnecting,
  kAuthenticating,
  kDeploying,
  kReady,
  kLost,
  kReconnecting,
  kFailed,
};

// The state's name as the operator reads it ("ready", "lost", ...).
std::string_view link_state_name(LinkState state);

// Something that happened on one host: a state change or a message from its agent.
struct HostEvent {
  std::string host;
  std::optional<LinkState> state;         // set on a state change
  std::string error;                      // why, for lost and failed
  std::optional<proto::Message> message;  // set for a message from the agent
};

// What the fleet knows about one host's link.
struct LinkInfo {
  LinkState state = LinkState::kConnecting;
  std::string error;
  std::string endpoint;               // address:port as connected
  std::string via;                    // the ProxyJump hops in order, "ProxyCommand", or "" (direct)
  std::string user;                   // the user logged in as (the plan's, else ssh_config's)
  std::string host_key;               // the verified key, "TYPE BASE64" (for host-to-host ssh)
  std::string agent_version;          // from the ready line
  bool uploaded = false;              // the last connect had to upload the agent
  std::vector<std::string> preamble;  // what the login shell printed (shown as warnings)
  int connects = 0;                   // successful connects (> 1 after a reconnect)
};

// Timing of keepalive and reconnection.
struct FleetOptions {
  std::chrono::milliseconds keepalive{5000};           // ping the agent this often when idle
  std::chrono::milliseconds dead_after{15000};         // no bytes for this long: the link is lost
  std::chrono::milliseconds handshake_timeout{30000};  // agent start, upload included
  bool reconnect = true;                               // reconnect hosts that were ready
  std::chrono::milliseconds backoff_first{1000};       // 1, 2, 4 ... seconds
  std::chrono::milliseconds backoff_max{30000};
};

// The links to all hosts; driven by the caller's poll loop.
class Fleet {
 public:
  using Clock = std::chrono::steady_clock;

  Fleet(std::vector<SshTarget> targets, AgentBinary agent, FleetOptions options = {});
  ~Fleet();
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  // Starts connecting every host in parallel.
  void start();
  // Adds the descriptors to wait on; returns how long the loop may sleep (ms).
  int prepare(std::vector<pollfd>& fds, Clock::time_point now);
  // Does whatever is due after poll() returned; appends what happened to events.
  void tick(std::vector<HostEvent>& events, Clock::time_point now);
  // Queues a message to a ready host's agent; false when the host is not ready.
  bool send(std::string_view host, const proto::Message& message);

  // The host names, in plan order.
  std::vector<std::string> hosts() const;
  // One host's link (the host must exist).
  const LinkInfo& info(std::string_view host) const;

  // For hosts that cannot reach each other: from_host's sshd listens on 127.0.0.1 and the
  // cockpit carries each connection to to_host's sshd (the port the cockpit itself uses),
  // so from_host reaches to_host as 127.0.0.1:PORT. Returns PORT; blocks for one round
  // trip to from_host. A lost link cuts the relay's connections and marks it broken.
  std::optional<uint16_t> open_relay(std::string_view from_host, std::string_view to_host,
                                     std::string& error);
  // Ends a relay: cuts its connections and stops its listener. false: error says why.
  bool close_relay(std::string_view from_host, uint16_t port, std::string& error);
  // Every relay opened and not closed, with what went through it (for the UI).
  std::vector<RelayInfo> relays() const;
  // A minimal loop for callers that have nothing else to wait on: runs until
  // done() says so or limit passes; false on timeout.
  bool run_until(const std::function<bool(const std::vector<HostEvent>&)>& done,
                 Clock::duration limit);

 private:
  struct Link;
  struct Inbox;
  void launch(size_t index, bool reconnecting);
  void take_reports(std::vector<HostEvent>& events, Clock::time_point now);
  void service(Link& link, std::vector<HostEvent>& events, Clock::time_point now);
  void lose(Link& link, std::string why, std::vector<HostEvent>& events, Clock::time_point now);
  void shut(Link& link, const std::string& why);
  void set_state(Link& link, LinkState state, std::string error, std::vector<HostEvent>& events);
  Link* find(std::string_view host) const;

  AgentBinary agent_;
  FleetOptions options_;
  std::vector<std::unique_ptr<Link>> links_;
  std::shared_ptr<Inbox> inbox_;
  std::vector<HostEvent> pending_;  // state changes made outside tick()
  Relays relays_;
  uint64_t next_token_ = 1;
};

}  // namespace cutpilot::transport
