#include "agents/http_client.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <tuple>

#include "agents/net_stream.h"

namespace cutpilot::agent {
namespace {

using Clock = std::chrono::steady_clock;

// The longest status line plus headers accepted.
constexpr size_t kMaxHead = 64 * 1024;
// The longest chunk-size or trailer line accepted.
constexpr size_t kMaxChunkLine = 4096;

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r'))
    text.remove_suffix(1);
  return text;
}

bool has_line_break(std::string_view text) {
  return text.find_first_of("\r\n") != std::string_view::npos;
}

// Parses "HTTP/1.1 200 OK\r\nName: value\r\n..." (without the blank line) into response.
bool parse_head(std::string_view head, HttpResponse& response, std::string& error) {
  const size_t eol = head.find("\r\n");
  const std::string_view status_line = head.substr(0, eol);
  if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12 || status_line[8] != ' ' ||
      !std::all_of(status_line.begin() + 9, status_line.begin() + 12,
                   [](char c) { return c >= '0' && c <= '9'; })) {
    error = "malformed response: not an HTTP/1.x status line: \"" +
            std::string(status_line.substr(0, 80)) + "\"";
    return false;
  }
  response.status = std::stoi(std::string(status_line.substr(9, 3)));
  response.reason = std::string(trim(status_line.size() > 12 ? status_line.substr(13) : ""));
  response.headers.clear();
  size_t at = eol == std::string_view::npos ? head.size() : eol + 2;
  while (at < head.size()) {
    size_t end = head.find("\r\n", at);
    if (end == std::string_view::npos) end = head.size();
    const std::string_view line = head.substr(at, end - at);
    at = end + 2;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      error = "malformed response header: \"" + std::string(line.substr(0, 80)) + "\"";
      return false;
    }
    response.headers.emplace_back(lower(line.substr(0, colon)),
                                  std::string(trim(line.substr(colon + 1))));
  }
  return true;
}

// Decodes a chunked body as its bytes arrive.
class Dechunker {
 public:
  // Appends the data in raw to out; false with error set when raw is not chunked encoding.
  bool feed(std::string_view raw, std::string& out, std::string& error) {
    while (!raw.empty() && state_ != State::kDone) {
      if (state_ == State::kData) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(left_, raw.size()));
        out.append(raw.substr(0, n));
        raw.remove_prefix(n);
        left_ -= n;
        if (left_ == 0) state_ = State::kDataEnd;
        continue;
      }
      std::string line;
      if (!take_line(raw, line, error)) return error.empty();
      if (state_ == State::kDataEnd) {
        if (!line.empty()) return fail(error, "malformed chunked body: no CRLF after a chunk");
        state_ = State::kSize;
      } else if (state_ == State::kSize) {
        const std::string size(trim(line.substr(0, line.find(';'))));
        char* end = nullptr;
        errno = 0;
        left_ = std::strtoull(size.c_str(), &end, 16);
        if (size.empty() || *end != '\0' || errno == ERANGE)
          return fail(error, "malformed chunked body: bad chunk size \"" + size + "\"");
        state_ = left_ == 0 ? State::kTrailer : State::kData;
      } else if (line.empty()) {  // kTrailer: trailer fields end with a blank line
        state_ = State::kDone;
      }
    }
    return true;
  }
  // True once the last chunk and the trailer have arrived.
  bool done() const { return state_ == State::kDone; }

 private:
  enum class State { kSize, kData, kDataEnd, kTrailer, kDone };
  static bool fail(std::string& error, std::string message) {
    error = std::move(message);
    return false;
  }
  // Takes one complete line (without CRLF) out of raw; false when none is complete yet.
  bool take_line(std::string_view& raw, std::string& line, std::string& error) {
    const size_t eol = raw.find('\n');
    pending_.append(raw.substr(0, eol));
    raw.remove_prefix(eol == std::string_view::npos ? raw.size() : eol + 1);
    if (pending_.size() > kMaxChunkLine) return fail(error, "malformed chunked body: long line");
    if (eol == std::string_view::npos) return false;
    if (!pending_.empty() && pending_.back() == '\r') pending_.pop_back();
    line = std::move(pending_);
    pending_.clear();
    return true;
  }

  State state_ = State::kSize;
  uint64_t left_ = 0;
  std::string pending_;
};

std::string build_request(const HttpRequest& request, const Url& url, std::string& error) {
  std::string host = join_host_port(url.host, url.port);
  if ((!url.https && url.port == 80) || (url.https && url.port == 443))
    host = host.substr(0, host.rfind(':'));
  std::string extra;
  for (const auto& [name, value] : request.headers) {
    if (name.empty() || has_line_break(name) || has_line_break(value) ||
        name.find(':') != std::string::npos) {
      error = "bad request header \"" + name + "\"";
      return "";
    }
    if (lower(name) == "host") {
      host = value;
      continue;
    }
    extra += name + ": " + value + "\r\n";
  }
  if (request.method.empty() || has_line_break(request.method) ||
      request.method.find(' ') != std::string::npos) {
    error = "bad request method \"" + request.method + "\"";
    return "";
  }
  std::string text = request.method + " " + url.target + " HTTP/1.1\r\nHost: " + host +
                     "\r\nUser-Agent: cutpilot-agent\r\nAccept: */*\r\nConnection: close\r\n" +
                     extra;
  const bool sends_body = !request.body.empty() || request.method == "POST" ||
                          request.method == "PUT" || request.method == "PATCH";
  if (sends_body) text += "Content-Length: " + std::to_string(request.body.size()) + "\r\n";
  return text + "\r\n" + request.body;
}

}  // namespace

std::optional<std::string_view> HttpResponse::header(std::string_view name) const {
  const std::string wanted = lower(name);
  for (const auto& [key, value] : headers)
    if (key == wanted) return value;
  return std::nullopt;
}

std::optional<std::pair<std::string, uint16_t>> split_host_port(std::string_view text,
                                                                uint16_t default_port) {
  std::string host;
  std::string_view rest;
  if (text.starts_with("[")) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = std::string(text.substr(1, close - 1));
    rest = text.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(":")) return std::nullopt;
  } else {
    const size_t colon = text.find(':');
    host = std::string(text.substr(0, colon));
    if (colon != std::string_view::npos) rest = text.substr(colon);
  }
  if (host.empty() || host.find_first_of(" /?#@[]") != std::string::npos) return std::nullopt;
  uint16_t port = default_port;
  if (!rest.empty()) {
    const std::string digits(rest.substr(1));
    if (digits.empty() || digits.size() > 5 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return std::nullopt;
    const int value = std::stoi(digits);
    if (value < 1 || value > 65535) return std::nullopt;
    port = static_cast<uint16_t>(value);
  }
  return std::pair{host, port};
}

std::optional<Url> parse_url(std::string_view text, std::string& error) {
  Url url;
  if (text.starts_with("http://")) {
    text.remove_prefix(7);
  } else if (text.starts_with("https://")) {
    text.remove_prefix(8);
    url.https = true;
  } else {
    error = "\"" + std::string(text) + "\" is not an http:// or https:// URL";
    return std::nullopt;
  }
  if (std::any_of(text.begin(), text.end(),
                  [](char c) { return static_cast<unsigned char>(c) <= ' ' || c == 0x7f; })) {
    error = "a URL must not contain spaces or control characters";
    return std::nullopt;
  }
  text = text.substr(0, text.find('#'));
  const size_t path = text.find_first_of("/?");
  const std::string_view authority = text.substr(0, path);
  if (authority.find('@') != std::string_view::npos) {
    error = "a URL must not carry user:password@ (credentials do not belong in a plan)";
    return std::nullopt;
  }
  const auto host_port = split_host_port(authority, url.https ? 443 : 80);
  if (!host_port) {
    error = "bad host or port in URL \"" + std::string(authority) + "\"";
    return std::nullopt;
  }
  std::tie(url.host, url.port) = *host_port;
  if (path != std::string_view::npos) {
    url.target = std::string(text.substr(path));
    if (url.target.front() == '?') url.target.insert(0, "/");
  }
  return url;
}

std::string url_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::optional<HttpResponse> http_request(const HttpRequest& request, std::string& error) {
  const auto url = parse_url(request.url, error);
  if (!url) return std::nullopt;
  const std::string text = build_request(request, *url, error);
  if (text.empty()) return std::nullopt;
  const auto deadline = Clock::now() + request.timeout;
  const std::string timed_out =
      "timed out after " + std::to_string(request.timeout.count()) + " ms";
  int fd = -1;
  if (!request.unix_socket.empty()) {
    fd = connect_unix(request.unix_socket, deadline, request.cancel_fd, error);
  } else {
    std::pair<std::string, uint16_t> to{url->host, url->port};
    if (!request.connect_to.empty()) {
      const auto other = split_host_port(request.connect_to, url->port);
      if (!other) {
        error = "bad connect_to address \"" + request.connect_to + "\" (expected ADDRESS[:PORT])";
        return std::nullopt;
      }
      to = *other;
    }
    fd = connect_tcp(to.first, to.second, deadline, request.cancel_fd, error);
  }
  if (fd < 0) {
    if (error.ends_with(": timed out")) error.replace(error.size() - 9, 9, timed_out);
    return std::nullopt;
  }
  NetStream connection(fd, deadline, request.cancel_fd, request.timeout);
  if (url->https && !connection.start_tls(url->host, request.tls_verify, request.ca_file, error))
    return std::nullopt;
  if (!connection.write_all(text, error)) return std::nullopt;

  HttpResponse response;
  std::string raw;
  char buffer[64 * 1024];
  bool at_end = false;
  auto fill = [&]() {
    const ssize_t n = connection.read_some(buffer, sizeof buffer, error);
    if (n < 0) return false;
    if (n == 0) at_end = true;
    raw.append(buffer, static_cast<size_t>(n));
    return true;
  };
  // The head; interim 1xx answers (100 Continue) are skipped.
  for (;;) {
    const size_t end = raw.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (raw.size() > kMaxHead) {
        error = "malformed response: headers longer than " + std::to_string(kMaxHead) + " bytes";
        return std::nullopt;
      }
      if (at_end) {
        error = raw.empty() ? "the server closed the connection without a response"
                            : "the server closed the connection in the middle of the headers";
        return std::nullopt;
      }
      if (!fill()) return std::nullopt;
      continue;
    }
    if (!parse_head(std::string_view(raw).substr(0, end), response, error)) return std::nullopt;
    raw.erase(0, end + 4);
    if (response.status >= 200 || response.status == 101) break;
  }

  const bool no_body = request.method == "HEAD" || response.status == 204 ||
                       response.status == 304 || response.status < 200;
  const auto encoding = response.header("transfer-encoding");
  const bool chunked = encoding && lower(*encoding).find("chunked") != std::string::npos;
  std::optional<uint64_t> length;
  if (const auto value = response.header("content-length"); value && !chunked) {
    const std::string digits(*value);
    if (digits.empty() || digits.size() > 18 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      error = "malformed response: bad Content-Length \"" + digits + "\"";
      return std::nullopt;
    }
    length = std::stoull(digits);
  }
  Dechunker dechunker;
  auto keep = [&](std::string_view bytes) {
    const size_t room = request.max_body - response.body.size();
    if (bytes.size() > room) response.truncated = true;
    response.body.append(bytes.substr(0, room));
  };
  while (!no_body && !response.truncated) {
    if (chunked) {
      std::string decoded;
      if (!dechunker.feed(raw, decoded, error)) return std::nullopt;
      keep(decoded);
      if (dechunker.done()) break;
    } else {
      keep(length ? std::string_view(raw).substr(0, *length - response.body.size()) : raw);
      if (length && response.body.size() >= *length) break;
    }
    raw.clear();
    if (at_end) {
      if (!chunked && !length) break;  // the body ends with the connection
      error = "the server closed the connection before the whole body arrived (" +
              std::to_string(response.body.size()) + " bytes" +
              (length ? " of " + std::to_string(*length) : std::string()) + ")";
      return std::nullopt;
    }
    if (!fill()) return std::nullopt;
  }
  return response;
}

}  // namespace cutpilot::agent
