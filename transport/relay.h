// Host-to-host connections carried through the cockpit's own SSH sessions, for hosts
// that cannot reach each other ("relay through the cockpit — slower, and the UI says so").
//
// The connecting host's sshd listens on 127.0.0.1:PORT (a remote forward, as `ssh -R`
// makes); each connection to it arrives here as a forwarded-tcpip channel, and the
// cockpit opens a direct-tcpip channel on the other host's session to that host's own
// sshd and copies bytes both ways from the fleet's poll loop. The host-to-host ssh
// inside stays end to end: the relay only ever sees its ciphertext, and the connecting
// host verifies the other host's key as `[127.0.0.1]:PORT KEY`.
//
// Memory stays bounded: each direction of a connection holds at most one chunk here,
// and nothing is read from a channel while its chunk waits to be written, so libssh
// stops growing that channel's window and the sending side slows down instead.
#pragma once

#include <libssh/libssh.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cutpilot::transport {

// What one relay has carried, for the UI ("relayed through the cockpit: 1.2 GiB").
struct RelayInfo {
  std::string from_host;       // where the listener is: the host that connects
  std::string to_host;         // whose sshd the connections reach
  uint16_t port = 0;           // from_host listens on 127.0.0.1:port
  uint16_t to_port = 0;        // to_host's sshd, reached on its own 127.0.0.1
  bool broken = false;         // a link was lost: connections cut, new ones refused
  std::string error;           // why it broke, or why the last connection failed
  uint64_t bytes_forward = 0;  // from_host -> to_host
  uint64_t bytes_back = 0;     // to_host -> from_host (the data of a pull)
  uint64_t connections = 0;    // accepted so far
  size_t active = 0;           // open now
};

// How a request to a host's sshd about its listener ended.
struct RelayAnswer {
  std::optional<uint16_t> port;  // the port listened on (open only)
  std::string error;             // why not
  bool stuck = false;            // no answer in time: the session's next global request
                                 // would read this one's late reply, so drop the link
};

// The relays of one fleet. The fleet's poll loop drives it (ready()/tick()) and drops a
// host's relays before that host's session goes away: a relay holds raw libssh sessions.
class Relays {
 public:
  Relays();
  ~Relays();
  Relays(const Relays&) = delete;
  Relays& operator=(const Relays&) = delete;

  // Asks from's sshd to listen on 127.0.0.1 (it picks the port) and carries each
  // connection to 127.0.0.1:to_port as seen from `to`. Blocks for one round trip to from.
  RelayAnswer open(const std::string& from, ssh_session from_session, const std::string& to,
                   ssh_session to_session, uint16_t to_port);
  // Cuts a relay's connections, stops its listener (one round trip when from is still
  // connected) and forgets it; an unknown relay answers with an error.
  RelayAnswer close(std::string_view from, uint16_t port);
  // The host's session is going away: cuts every connection through it and marks its
  // relays broken, with why.
  void drop_host(std::string_view host, const std::string& why);
  // True when there is work that no socket event will announce: call tick() now.
  bool ready() const;
  // Accepts new connections, finishes opening their far ends, moves what can move.
  void tick();
  // Every relay not closed, with what went through it.
  std::vector<RelayInfo> list() const;

 private:
  struct Pipe;
  struct Relay;
  void accept(ssh_session session);

  std::vector<std::unique_ptr<Relay>> relays_;
};

}  // namespace cutpilot::transport
