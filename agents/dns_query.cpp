#include "agents/dns_query.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <sstream>

#include "agents/dns_wire.h"
#include "agents/net_stream.h"

namespace cutpilot::agent {
namespace {

using Clock = std::chrono::steady_clock;
using dns_wire::get16;
using dns_wire::get32;
using dns_wire::kClassIn;
using dns_wire::put16;

constexpr uint16_t kTypeCname = 5;
constexpr size_t kHeaderBytes = 12;
constexpr size_t kMaxUdpBytes = 4096;
constexpr size_t kMaxNameBytes = 255;
constexpr int kMaxPointerJumps = 64;

// The name without a trailing dot, lower-cased (DNS names compare without case).
std::string canonical(std::string name) {
  if (!name.empty() && name.back() == '.') name.pop_back();
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return name;
}

}  // namespace

bool dns_read_name(const std::vector<uint8_t>& m, size_t& pos, std::string& name) {
  name.clear();
  size_t at = pos;
  bool jumped = false;
  for (int jumps = 0; jumps <= kMaxPointerJumps;) {
    if (at >= m.size()) return false;
    const uint8_t len = m[at];
    if (len == 0) {
      if (!jumped) pos = at + 1;
      return true;
    }
    if ((len & 0xc0) == 0xc0) {
      if (at + 1 >= m.size()) return false;
      if (!jumped) pos = at + 2;
      at = static_cast<size_t>(len & 0x3f) << 8 | m[at + 1];
      jumped = true;
      ++jumps;
      continue;
    }
    if (len & 0xc0 || at + 1 + len > m.size()) return false;
    if (!name.empty()) name += '.';
    name.append(reinterpret_cast<const char*>(&m[at + 1]), len);
    if (name.size() > kMaxNameBytes) return false;
    at += 1 + len;
  }
  return false;
}

namespace {

std::string address_text(const std::vector<uint8_t>& m, size_t at, uint16_t type) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(type == kDnsTypeA ? AF_INET : AF_INET6, &m[at], text, sizeof text);
  return text;
}

// Waits until fd is ready for events (or cancel_fd fires, or the deadline passes); "" when
// ready, else why not.
std::string wait_for(int fd, short events, Clock::time_point deadline, int cancel_fd) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return "timed out";
    pollfd fds[2] = {{fd, events, 0}, {cancel_fd, POLLIN, 0}};
    const int n = poll(fds, cancel_fd >= 0 ? 2 : 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::strerror(errno);
    if (cancel_fd >= 0 && fds[1].revents) return "cancelled";
    if (fds[0].revents) return "";
  }
}

std::optional<DnsAnswer> query_udp(const sockaddr_storage& to, socklen_t to_len,
                                   const std::vector<uint8_t>& query, uint16_t id,
                                   const std::string& name, uint16_t type,
                                   Clock::time_point deadline, int cancel_fd, std::string& error) {
  const int fd = socket(to.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::strerror(errno);
    return std::nullopt;
  }
  std::optional<DnsAnswer> answer;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&to), to_len) != 0 ||
      send(fd, query.data(), query.size(), 0) != static_cast<ssize_t>(query.size())) {
    error = std::strerror(errno);
    close(fd);
    return std::nullopt;
  }
  std::vector<uint8_t> buffer(kMaxUdpBytes);
  while (!answer) {
    error = wait_for(fd, POLLIN, deadline, cancel_fd);
    if (!error.empty()) break;
    const ssize_t n = recv(fd, buffer.data(), buffer.size(), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n < 0) {  // ECONNREFUSED: the ICMP port unreachable of a closed port
      error = std::strerror(errno);
      break;
    }
    std::string why;
    answer = dns_parse_response({buffer.begin(), buffer.begin() + n}, id, name, type, why);
    // Not ours (another id, garbage): keep listening until the deadline, as resolvers do.
    if (!answer) error = why;
  }
  close(fd);
  if (answer) error.clear();
  return answer;
}

// Writes all of data, or says why not.
std::string write_all(int fd, const std::vector<uint8_t>& data, Clock::time_point deadline,
                      int cancel_fd) {
  for (size_t done = 0; done < data.size();) {
    const ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) return std::strerror(errno);
    if (std::string why = wait_for(fd, POLLOUT, deadline, cancel_fd); !why.empty()) return why;
  }
  return "";
}

// Reads exactly out.size() bytes, or says why not.
std::string read_all(int fd, std::vector<uint8_t>& out, Clock::time_point deadline, int cancel_fd) {
  for (size_t done = 0; done < out.size();) {
    const ssize_t n = recv(fd, out.data() + done, out.size() - done, 0);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) return "the server closed the connection";
    if (errno != EAGAIN && errno != EINTR) return std::strerror(errno);
    if (std::string why = wait_for(fd, POLLIN, deadline, cancel_fd); !why.empty()) return why;
  }
  return "";
}

}  // namespace

std::string dns_canonical(const std::string& name) {
  return canonical(name);
}

std::vector<uint8_t> dns_wire_name(const std::string& name, bool canonical_case) {
  const std::string bare = canonical_case                        ? canonical(name)
                           : !name.empty() && name.back() == '.' ? name.substr(0, name.size() - 1)
                                                                 : name;
  if (bare.empty() || bare.size() > kMaxNameBytes - 2 || bare.back() == '.') return {};
  std::vector<uint8_t> out;
  std::istringstream labels(bare);
  for (std::string label; std::getline(labels, label, '.');) {
    if (label.empty() || label.size() > 63) return {};
    out.push_back(static_cast<uint8_t>(label.size()));
    out.insert(out.end(), label.begin(), label.end());
  }
  out.push_back(0);
  return out;
}

std::vector<uint8_t> dns_build_query(uint16_t id, const std::string& name, uint16_t type) {
  const std::vector<uint8_t> wire = dns_wire_name(name);
  if (wire.empty()) return {};
  std::vector<uint8_t> out;
  put16(out, id);
  put16(out, 0x0100);  // a standard query, recursion desired (resolvers need it)
  put16(out, 1);
  put16(out, 0);
  put16(out, 0);
  put16(out, 0);
  out.insert(out.end(), wire.begin(), wire.end());
  put16(out, type);
  put16(out, kClassIn);
  return out;
}

std::optional<std::vector<uint8_t>> dns_exchange_tcp(const std::string& server, uint16_t port,
                                                     const std::vector<uint8_t>& message,
                                                     Clock::time_point deadline, int cancel_fd,
                                                     std::string& error) {
  const int fd = connect_tcp(server, port, deadline, cancel_fd, error);
  if (fd < 0) return std::nullopt;
  std::vector<uint8_t> framed;
  put16(framed, static_cast<uint16_t>(message.size()));
  framed.insert(framed.end(), message.begin(), message.end());
  std::vector<uint8_t> length(2), reply;
  error = write_all(fd, framed, deadline, cancel_fd);
  if (error.empty()) error = read_all(fd, length, deadline, cancel_fd);
  if (error.empty()) {
    reply.resize(get16(length, 0));
    error = read_all(fd, reply, deadline, cancel_fd);
  }
  close(fd);
  if (!error.empty()) return std::nullopt;
  return reply;
}

std::optional<DnsAnswer> dns_parse_response(const std::vector<uint8_t>& m, uint16_t id,
                                            const std::string& name, uint16_t type,
                                            std::string& error) {
  error.clear();
  if (m.size() < kHeaderBytes)
    error = "a reply shorter than a DNS header";
  else if (get16(m, 0) != id)
    error = "a reply to another query (id)";
  else if (!(m[2] & 0x80))
    error = "a query, not a reply";
  else if (get16(m, 4) != 1)
    error = "a reply without our question";
  if (!error.empty()) return std::nullopt;
  DnsAnswer answer;
  answer.rcode = m[3] & 0x0f;
  answer.authoritative = m[2] & 0x04;
  answer.truncated = m[2] & 0x02;
  size_t pos = kHeaderBytes;
  std::string asked;
  if (!dns_read_name(m, pos, asked) || pos + 4 > m.size() || canonical(asked) != canonical(name) ||
      get16(m, pos) != type || get16(m, pos + 2) != kClassIn) {
    error = "a reply to another question";
    return std::nullopt;
  }
  pos += 4;
  const uint16_t records = get16(m, 6);
  for (uint16_t i = 0; i < records; ++i) {
    std::string owner;
    if (!dns_read_name(m, pos, owner) || pos + 10 > m.size()) {
      error = "a malformed answer record";
      return std::nullopt;
    }
    const uint16_t rtype = get16(m, pos), rclass = get16(m, pos + 2), length = get16(m, pos + 8);
    const uint32_t ttl = get32(m, pos + 4);
    pos += 10;
    if (pos + length > m.size()) {
      error = "a malformed answer record";
      return std::nullopt;
    }
    const size_t want = type == kDnsTypeA ? 4 : 16;
    if (rclass == kClassIn && (rtype == kTypeCname || (rtype == type && length == want))) {
      answer.ttl = std::min(answer.ttl.value_or(ttl), ttl);
      if (rtype == type) answer.addresses.push_back(address_text(m, pos, type));
    }
    pos += length;
  }
  std::sort(answer.addresses.begin(), answer.addresses.end());
  return answer;
}

std::string dns_rcode_name(int rcode) {
  static const char* const kNames[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
                                       "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
                                       "NXRRSET", "NOTAUTH", "NOTZONE"};
  if (rcode >= 0 && rcode < static_cast<int>(std::size(kNames))) return kNames[rcode];
  return "RCODE " + std::to_string(rcode);
}

std::optional<DnsAnswer> dns_query(const std::string& server, uint16_t port,
                                   const std::string& name, uint16_t type,
                                   Clock::time_point deadline, int cancel_fd, std::string& error) {
  sockaddr_storage to{};
  socklen_t to_len = 0;
  if (auto* v4 = reinterpret_cast<sockaddr_in*>(&to);
      inet_pton(AF_INET, server.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    to_len = sizeof(sockaddr_in);
  } else if (auto* v6 = reinterpret_cast<sockaddr_in6*>(&to);
             inet_pton(AF_INET6, server.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    to_len = sizeof(sockaddr_in6);
  } else {
    error = "the server must be an IP address, not \"" + server + "\"";
    return std::nullopt;
  }
  std::random_device random;
  const auto id = static_cast<uint16_t>(random());
  const std::vector<uint8_t> query = dns_build_query(id, name, type);
  if (query.empty()) {
    error = "\"" + name + "\" is not a DNS name";
    return std::nullopt;
  }
  std::optional<DnsAnswer> answer =
      query_udp(to, to_len, query, id, name, type, deadline, cancel_fd, error);
  if (answer && answer->truncated) {
    const auto reply = dns_exchange_tcp(server, port, query, deadline, cancel_fd, error);
    answer = reply ? dns_parse_response(*reply, id, name, type, error) : std::nullopt;
  }
  return answer;
}

std::vector<std::string> resolv_conf_servers(const std::string& text) {
  std::vector<std::string> servers;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string key, value;
    if (words >> key >> value && key == "nameserver") servers.push_back(value);
  }
  return servers;
}

}  // namespace cutpilot::agent
