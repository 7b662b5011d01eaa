#include "agents/net_stream.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace cutpilot::agent {
namespace {

using Clock = std::chrono::steady_clock;

// Where distributions keep their CA bundle; the first that exists is loaded (a static agent
// cannot rely on OpenSSL's compiled-in directory, which differs between distributions).
constexpr const char* kCaBundles[] = {
    "/etc/ssl/certs/ca-certificates.crt",                 // Debian, Ubuntu, Alpine, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",                   // RHEL, Fedora, CentOS
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  // RHEL 7+
    "/etc/ssl/ca-bundle.pem",                             // SUSE
    "/etc/ssl/cert.pem",                                  // Alpine, BSDs
};

int ms_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<int64_t>(left.count(), 0, 1 << 30));
}

// What a bounded wait for a socket ended with.
enum class Wait { kReady, kTimedOut, kCancelled, kFailed };

// Waits until fd has events (or an error), the deadline passes or cancel_fd turns readable.
Wait wait_for(int fd, short events, Clock::time_point deadline, int cancel_fd) {
  for (;;) {
    pollfd pfds[2] = {{fd, events, 0}, {cancel_fd, POLLIN, 0}};
    const int n = poll(pfds, cancel_fd >= 0 ? 2 : 1, ms_left(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Wait::kFailed;
    if (cancel_fd >= 0 && (pfds[1].revents & POLLIN)) return Wait::kCancelled;
    if (n > 0 && pfds[0].revents) return Wait::kReady;
    if (Clock::now() >= deadline) return Wait::kTimedOut;
  }
}

bool is_ip_literal(const std::string& host) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

std::string address_text(const sockaddr* sa) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, text, sizeof text);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, text, sizeof text);
  return text;
}

// Connects a fresh non-blocking socket to one address; fd, or -1 with errno-like why set.
int connect_one(int family, const sockaddr* addr, socklen_t len, Clock::time_point deadline,
                int cancel_fd, std::string& why) {
  const int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    why = std::strerror(errno);
    return -1;
  }
  if (connect(fd, addr, len) == 0) return fd;
  if (errno != EINPROGRESS) {
    why = std::strerror(errno);
    close(fd);
    return -1;
  }
  const Wait w = wait_for(fd, POLLOUT, deadline, cancel_fd);
  int error = 0;
  socklen_t size = sizeof error;
  if (w == Wait::kReady && getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) == 0 && error == 0)
    return fd;
  why = w == Wait::kTimedOut    ? "timed out"
        : w == Wait::kCancelled ? "cancelled"
                                : std::strerror(error ? error : errno);
  close(fd);
  return -1;
}

// The reason of OpenSSL's oldest queued error, or fallback; clears the queue.
std::string ssl_reason(const std::string& fallback) {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return fallback;
  const char* reason = ERR_reason_error_string(code);
  return reason ? reason : fallback;
}

bool fail(std::string& error, std::string message) {
  error = std::move(message);
  return false;
}

}  // namespace

std::string join_host_port(const std::string& host, uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

uint16_t free_local_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  uint16_t port = 0;
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  if (fd >= 0) close(fd);
  return port;
}

int connect_unix(const std::string& path, Clock::time_point deadline, int cancel_fd,
                 std::string& error) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    error = "cannot connect to " + path + ": the socket path is too long";
    return -1;
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  std::string why;
  const int fd = connect_one(AF_UNIX, reinterpret_cast<const sockaddr*>(&addr), sizeof addr,
                             deadline, cancel_fd, why);
  if (fd < 0) error = "cannot connect to " + path + ": " + why;
  return fd;
}

int connect_tcp(const std::string& host, uint16_t port, Clock::time_point deadline, int cancel_fd,
                std::string& error) {
  const std::string name = join_host_port(host, port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  // getaddrinfo cannot be bounded; the resolver's own timeouts apply (numeric hosts never wait).
  const int resolved = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (resolved != 0) {
    error = "cannot resolve " + host + ": " +
            (resolved == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(resolved));
    return -1;
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> list(found, freeaddrinfo);
  std::string why;
  for (const addrinfo* a = found; a; a = a->ai_next) {
    const int fd = connect_one(a->ai_family, a->ai_addr, a->ai_addrlen, deadline, cancel_fd, why);
    if (fd >= 0) {
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return fd;
    }
    const std::string address = address_text(a->ai_addr);
    error =
        "cannot connect to " + name + (address == host ? "" : " (" + address + ")") + ": " + why;
    if (why == "timed out" || why == "cancelled") break;
  }
  return -1;
}

void NetStream::SslCtxFree::operator()(ssl_ctx_st* c) const {
  SSL_CTX_free(c);
}
void NetStream::SslFree::operator()(ssl_st* s) const {
  SSL_free(s);
}

NetStream::NetStream(int fd, Clock::time_point deadline, int cancel_fd,
                     std::chrono::milliseconds timeout)
    : fd_(fd), deadline_(deadline), cancel_fd_(cancel_fd), timeout_(timeout) {}

NetStream::~NetStream() {
  ssl_.reset();
  if (fd_ >= 0) close(fd_);
}

bool NetStream::start_tls(const std::string& host, bool verify, const std::string& ca_file,
                          std::string& error) {
  OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
  ERR_clear_error();
  ctx_.reset(SSL_CTX_new(TLS_client_method()));
  if (!ctx_) return fail(error, "TLS: " + ssl_reason("cannot create a context"));
  SSL_CTX_set_min_proto_version(ctx_.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx_.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);  // HTTP frames its own end
  if (verify) {
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_default_verify_paths(ctx_.get());  // SSL_CERT_FILE / SSL_CERT_DIR too
    for (const char* bundle : kCaBundles)
      if (access(bundle, R_OK) == 0 && SSL_CTX_load_verify_locations(ctx_.get(), bundle, nullptr))
        break;
    ERR_clear_error();
    if (!ca_file.empty() && !SSL_CTX_load_verify_locations(ctx_.get(), ca_file.c_str(), nullptr))
      return fail(error, "TLS: cannot load CA file " + ca_file + ": " +
                             ssl_reason("no certificates in it"));
  }
  ssl_.reset(SSL_new(ctx_.get()));
  if (!ssl_ || !SSL_set_fd(ssl_.get(), fd_))
    return fail(error, "TLS: " + ssl_reason("cannot set up the connection"));
  const bool ip = is_ip_literal(host);
  if (!ip) SSL_set_tlsext_host_name(ssl_.get(), host.c_str());  // SNI never carries an IP
  if (verify) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_.get());
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int set = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                       : X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
    if (!set) return fail(error, "TLS: cannot check the name " + host);
  }
  SSL_set_connect_state(ssl_.get());
  for (;;) {
    const int r = SSL_do_handshake(ssl_.get());
    if (r == 1) return true;
    const int code = SSL_get_error(ssl_.get(), r);
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
      if (!wait(code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, "in the TLS handshake", error))
        return false;
      continue;
    }
    const long verified = SSL_get_verify_result(ssl_.get());
    if (verify && verified != X509_V_OK)
      return fail(error, std::string("TLS: certificate verify failed: ") +
                             X509_verify_cert_error_string(verified));
    const std::string closed =
        code == SSL_ERROR_SYSCALL && errno ? std::strerror(errno) : "the server closed it";
    return fail(error, "TLS handshake with " + host + " failed: " + ssl_reason(closed));
  }
}

bool NetStream::write_all(std::string_view data, std::string& error) {
  while (!data.empty()) {
    if (ssl_) {
      size_t n = 0;
      const int r = SSL_write_ex(ssl_.get(), data.data(), data.size(), &n);
      if (r == 1) {
        data.remove_prefix(n);
        continue;
      }
      const int code = SSL_get_error(ssl_.get(), r);
      if (code != SSL_ERROR_WANT_READ && code != SSL_ERROR_WANT_WRITE)
        return fail(error, "TLS: cannot send the request: " + ssl_reason("connection closed"));
      if (!wait(code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, "sending the request", error))
        return false;
      continue;
    }
    const ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return fail(error, std::string("cannot send the request: ") + std::strerror(errno));
    } else if (!wait(POLLOUT, "sending the request", error)) {
      return false;
    }
  }
  return true;
}

ssize_t NetStream::read_some(char* buffer, size_t size, std::string& error) {
  for (;;) {
    if (ssl_) {
      size_t n = 0;
      const int r = SSL_read_ex(ssl_.get(), buffer, size, &n);
      if (r == 1) return static_cast<ssize_t>(n);
      const int code = SSL_get_error(ssl_.get(), r);
      if (code == SSL_ERROR_ZERO_RETURN) return 0;
      if (code == SSL_ERROR_SYSCALL && errno == 0) return 0;
      if (code != SSL_ERROR_WANT_READ && code != SSL_ERROR_WANT_WRITE) {
        fail(error, "TLS: cannot read the response: " + ssl_reason("connection reset"));
        return -1;
      }
      if (!wait(code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, "waiting for the response", error))
        return -1;
      continue;
    }
    const ssize_t n = recv(fd_, buffer, size, 0);
    if (n >= 0) return n;
    if (errno != EAGAIN && errno != EINTR) {
      fail(error, std::string("cannot read the response: ") + std::strerror(errno));
      return -1;
    }
    if (!wait(POLLIN, "waiting for the response", error)) return -1;
  }
}

bool NetStream::wait(short events, const char* doing, std::string& error) {
  switch (wait_for(fd_, events, deadline_, cancel_fd_)) {
    case Wait::kReady:
      return true;
    case Wait::kTimedOut:
      return fail(error, "timed out after " + std::to_string(timeout_.count()) + " ms " + doing);
    case Wait::kCancelled:
      return fail(error, "cancelled");
    case Wait::kFailed:
      break;
  }
  return fail(error, std::string("poll failed: ") + std::strerror(errno));
}

}  // namespace cutpilot::agent
