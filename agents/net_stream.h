// Connected byte streams for the agent's clients (HTTP probes, the Docker API, TCP probes):
// TCP (IPv4/IPv6) or a unix socket, optionally TLS; every wait bounded by one deadline and
// cut short by a cancel fd. No threads.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

struct ssl_st;
struct ssl_ctx_st;

namespace cutpilot::agent {

// "HOST:PORT", with brackets around an IPv6 address.
std::string join_host_port(const std::string& host, uint16_t port);

// Opens a TCP connection to host:port (a name or an address; each resolved address in turn)
// before deadline; the connected, non-blocking, close-on-exec socket, or -1 with error set
// ("cannot connect to 127.0.0.1:8080: Connection refused", "...: timed out", "...: cancelled").
// cancel_fd: when it becomes readable the attempt stops (it is not read; -1: none).
int connect_tcp(const std::string& host, uint16_t port,
                std::chrono::steady_clock::time_point deadline, int cancel_fd, std::string& error);

// A TCP port on 127.0.0.1 that was free a moment ago (0 when none could be had).
uint16_t free_local_port();

// Opens a connection to the unix socket at path, like connect_tcp.
int connect_unix(const std::string& path, std::chrono::steady_clock::time_point deadline,
                 int cancel_fd, std::string& error);

// One connected socket (owned, closed at the end), TLS on top once start_tls succeeded.
class NetStream {
 public:
  // timeout: the span the deadline was set from, for error messages.
  NetStream(int fd, std::chrono::steady_clock::time_point deadline, int cancel_fd,
            std::chrono::milliseconds timeout);
  ~NetStream();
  NetStream(const NetStream&) = delete;
  NetStream& operator=(const NetStream&) = delete;

  // Runs the TLS handshake for host (SNI, and the name or address the certificate must carry
  // when verify); trusts the host's CA bundle plus ca_file ("" for none).
  bool start_tls(const std::string& host, bool verify, const std::string& ca_file,
                 std::string& error);
  // Writes all of data.
  bool write_all(std::string_view data, std::string& error);
  // Reads what is there (waiting for something); bytes read, 0 at the end, -1 with error set.
  ssize_t read_some(char* buffer, size_t size, std::string& error);

 private:
  // Waits until the socket has events; false with error set on timeout, cancel or failure.
  bool wait(short events, const char* doing, std::string& error);

  struct SslCtxFree {
    void operator()(ssl_ctx_st* c) const;
  };
  struct SslFree {
    void operator()(ssl_st* s) const;
  };

  int fd_;
  std::chrono::steady_clock::time_point deadline_;
  int cancel_fd_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<ssl_ctx_st, SslCtxFree> ctx_;
  std::unique_ptr<ssl_st, SslFree> ssl_;
};

}  // namespace cutpilot::agent
