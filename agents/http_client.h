// A small blocking HTTP/1.1 client for the agent: one request per connection, over TCP
// (IPv4/IPv6, optionally to another address than the URL names, like curl --resolve) or a
// unix socket (the Docker Engine API), optionally TLS with verification on by default
// (net_stream.h). The whole exchange is bounded by the request's timeout and can be cut short
// by a cancel fd; no threads, no iostreams. Expects SIGPIPE to be ignored (the runner does).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cutpilot::agent {

// The largest response body kept by default; the rest is dropped and the response marked.
inline constexpr size_t kMaxHttpBody = 4 * 1024 * 1024;

// One request: where to send it, what to send, how long it may take.
struct HttpRequest {
  std::string method = "GET";
  // "http://HOST[:PORT]/PATH?QUERY" or "https://..."; HOST may be "[V6]". With unix_socket
  // set, HOST only names the Host header (e.g. "http://docker/containers/json").
  std::string url;
  std::string unix_socket;  // connect to this socket instead of the URL's host
  // "ADDRESS[:PORT]" or "[V6]:PORT": connect here instead of the URL's host (the Host header,
  // SNI and certificate name stay the URL's); the port defaults to the URL's.
  std::string connect_to;
  // Sent as given; a "Host" entry replaces the URL's host in the Host header.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // sent with Content-Length (and Content-Type when given in headers)
  std::chrono::milliseconds timeout{5000};  // the whole exchange, connect to last byte
  bool tls_verify = true;                   // https: check the chain and the URL's host name
  std::string ca_file;                      // https: trusted in addition to the host's CA bundle
  size_t max_body = kMaxHttpBody;
  int cancel_fd = -1;  // when it becomes readable the request stops ("cancelled"); not read
};

// A response as the server sent it.
struct HttpResponse {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in order
  std::string body;                                          // de-chunked
  bool truncated = false;  // the body was longer than max_body; only its start is kept
  // The first header called name (any case), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const;
};

// Sends request and reads the whole response; nullopt with error set when none came
// ("cannot connect to 127.0.0.1:8080: Connection refused", "timed out after 5000 ms ...",
// "TLS: certificate verify failed: self-signed certificate", "cancelled").
std::optional<HttpResponse> http_request(const HttpRequest& request, std::string& error);

// A URL taken apart.
struct Url {
  bool https = false;
  std::string host;  // without brackets
  uint16_t port = 0;
  std::string target = "/";  // path and query, as sent in the request line
};

// Parses an http:// or https:// URL; nullopt with error set when it is not one.
std::optional<Url> parse_url(std::string_view url, std::string& error);

// Splits "HOST[:PORT]" or "[V6][:PORT]" (port defaults to default_port); nullopt when malformed.
std::optional<std::pair<std::string, uint16_t>> split_host_port(std::string_view text,
                                                                uint16_t default_port);

// Percent-encodes text for a URL's query or path segment (unreserved characters stay).
std::string url_encode(std::string_view text);

}  // namespace cutpilot::agent
