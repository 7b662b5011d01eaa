#include "transport/ssh_auth.h"

#include <openssl/evp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

namespace cutpilot::transport {
namespace {

constexpr unsigned char kRequestIdentities = 11;
constexpr unsigned char kIdentitiesAnswer = 12;

// One key the agent holds: its wire blob and comment.
struct AgentKey {
  std::string blob;
  std::string comment;
};

bool read_all(int fd, char* data, size_t len) {
  while (len > 0) {
    const ssize_t n = read(fd, data, len);
    if (n <= 0) return false;
    data += n, len -= static_cast<size_t>(n);
  }
  return true;
}

bool write_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

std::string u32(uint32_t v) {
  const char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  return std::string(b, 4);
}

uint32_t get_u32(const std::string& s, size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data() + at);
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

// One agent message (length-prefixed), or nullopt at end of stream.
std::optional<std::string> read_message(int fd) {
  char len[4];
  if (!read_all(fd, len, 4)) return std::nullopt;
  const uint32_t n = get_u32(std::string(len, 4), 0);
  if (n == 0 || n > 256 * 1024) return std::nullopt;
  std::string body(n, '\0');
  if (!read_all(fd, body.data(), n)) return std::nullopt;
  return body;
}

int connect_agent(const std::string& path) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof addr.sun_path) return -1;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::vector<AgentKey> list_agent(int fd) {
  std::vector<AgentKey> keys;
  if (!write_all(fd, u32(1) + std::string(1, char(kRequestIdentities)))) return keys;
  const auto answer = read_message(fd);
  if (!answer || answer->size() < 5 || (unsigned char)(*answer)[0] != kIdentitiesAnswer)
    return keys;
  const uint32_t count = get_u32(*answer, 1);
  size_t at = 5;
  for (uint32_t i = 0; i < count; ++i) {
    AgentKey k;
    for (std::string* field : {&k.blob, &k.comment}) {
      if (at + 4 > answer->size()) return {};
      const uint32_t n = get_u32(*answer, at);
      if (at + 4 + n > answer->size()) return {};
      *field = answer->substr(at + 4, n);
      at += 4 + n;
    }
    keys.push_back(std::move(k));
  }
  return keys;
}

// The agent as libssh sees it: only `offered`, in that order; every other request
// (signing) goes to the real agent. Lives for one authentication.
class AgentView {
 public:
  AgentView(int agent, std::vector<AgentKey> offered)
      : agent_(agent), offered_(std::move(offered)) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return;
    libssh_end_ = pair[0];
    own_end_ = pair[1];
    thread_ = std::thread([this] { serve(); });
  }
  ~AgentView() {
    if (libssh_end_ >= 0) shutdown(libssh_end_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    if (own_end_ >= 0) close(own_end_);
  }
  // The socket to hand to libssh (which closes it with the session).
  int socket() const { return libssh_end_; }

 private:
  void serve() {
    while (auto request = read_message(own_end_)) {
      std::string reply;
      if ((unsigned char)(*request)[0] == kRequestIdentities) {
        reply = std::string(1, char(kIdentitiesAnswer)) + u32(uint32_t(offered_.size()));
        for (const auto& k : offered_)
          reply +=
              u32(uint32_t(k.blob.size())) + k.blob + u32(uint32_t(k.comment.size())) + k.comment;
      } else {
        if (!write_all(agent_, u32(uint32_t(request->size())) + *request)) break;
        auto answer = read_message(agent_);
        if (!answer) break;
        reply = *answer;
      }
      if (!write_all(own_end_, u32(uint32_t(reply.size())) + reply)) break;
    }
  }

  int agent_;
  std::vector<AgentKey> offered_;
  int libssh_end_ = -1;
  int own_end_ = -1;
  std::thread thread_;
};

// The wire blob of a public key file ("TYPE BASE64 ..."), "" when unreadable.
std::string pub_blob(const std::string& path) {
  std::ifstream in(path);
  std::string type, b64;
  if (!(in >> type >> b64) || b64.size() % 4 != 0) return "";
  std::string out(b64.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(b64.data()),
                                static_cast<int>(b64.size()));
  if (n < 0) return "";
  out.resize(static_cast<size_t>(n) -
             static_cast<size_t>(std::count(b64.end() - 2, b64.end(), '=')));
  return out;
}

std::string pub_of(const std::string& identity) {
  return identity.size() > 4 && identity.ends_with(".pub") ? identity : identity + ".pub";
}

int refuse_prompt(const char*, char*, size_t, int, int, void* wanted) {
  *static_cast<bool*>(wanted) = true;
  return -1;
}

}  // namespace

AuthOutcome authenticate_as_ssh_does(ssh_session session, const ResolvedHost& host) {
  AuthOutcome result;
  auto finish = [&](int rc) {
    if (rc == SSH_AUTH_SUCCESS) result.ok = true;
    if (rc == SSH_AUTH_ERROR) {
      result.transport_error = true;
      result.error = ssh_get_error(session);
    }
    return result.ok || result.transport_error;
  };
  if (finish(ssh_userauth_none(session, nullptr))) return result;
  if (!host.pubkey_authentication) {
    result.error = "PubkeyAuthentication is no for this host; cutpilot never types passwords";
    return result;
  }
  // The agent: IdentityAgent, else SSH_AUTH_SOCK.
  std::string agent_path = host.identity_agent;
  if (agent_path.empty())
    if (const char* sock = std::getenv("SSH_AUTH_SOCK")) agent_path = sock;
  if (agent_path == "none") agent_path.clear();
  const int agent = agent_path.empty() ? -1 : connect_agent(agent_path);
  const std::vector<AgentKey> held = agent >= 0 ? list_agent(agent) : std::vector<AgentKey>{};

  std::vector<AgentKey> offered;        // agent keys, in ssh's order
  std::vector<std::string> from_files;  // identity files not in the agent
  for (const auto& file : host.identity_files) {
    const std::string blob = pub_blob(pub_of(file));
    auto in_agent = std::find_if(held.begin(), held.end(), [&](const AgentKey& k) {
      return !blob.empty() && k.blob == blob;
    });
    if (in_agent != held.end()) {
      if (std::none_of(offered.begin(), offered.end(),
                       [&](const AgentKey& k) { return k.blob == blob; }))
        offered.push_back(*in_agent);
    } else if (std::filesystem::exists(file)) {
      from_files.push_back(file);
    }
  }
  if (!host.identities_only)
    for (const auto& k : held)
      if (std::none_of(offered.begin(), offered.end(),
                       [&](const AgentKey& o) { return o.blob == k.blob; }))
        offered.push_back(k);

  if (!offered.empty()) {
    result.tried = "ssh-agent (" + std::to_string(offered.size()) + " key" +
                   (offered.size() == 1 ? "" : "s") + ")";
    AgentView view(agent, offered);
    if (view.socket() >= 0 && ssh_set_agent_socket(session, view.socket()) == SSH_OK &&
        finish(ssh_userauth_agent(session, nullptr))) {
      if (agent >= 0) close(agent);
      return result;
    }
  }
  if (agent >= 0) close(agent);

  for (const auto& file : from_files) {
    result.tried += (result.tried.empty() ? "" : ", ") + file;
    auto load = [&]() -> ssh_key {
      ssh_key key = nullptr;
      if (ssh_pki_import_privkey_file(file.c_str(), nullptr, &refuse_prompt,
                                      &result.passphrase_wanted, &key) != SSH_OK)
        return nullptr;
      return key;
    };
    // Certificates first: CertificateFile entries that certify this key, then FILE-cert.pub.
    std::vector<std::string> certs = host.certificate_files;
    certs.push_back(file + "-cert.pub");
    for (const auto& cert_file : certs) {
      ssh_key cert = nullptr;
      if (!std::filesystem::exists(cert_file) ||
          ssh_pki_import_cert_file(cert_file.c_str(), &cert) != SSH_OK)
        continue;
      ssh_key key = load();
      // libssh presents the certificate once it is attached to its private key.
      const bool done = key && ssh_pki_copy_cert_to_privkey(cert, key) == SSH_OK &&
                        finish(ssh_userauth_publickey(session, nullptr, key));
      ssh_key_free(key);
      ssh_key_free(cert);
      if (done) return result;
    }
    ssh_key key = load();
    const bool done = key && finish(ssh_userauth_publickey(session, nullptr, key));
    ssh_key_free(key);
    if (done) return result;
  }
  if (result.tried.empty()) result.tried = "no key: no agent key and no IdentityFile exists";
  result.error = "no key was accepted for " + host.user + "@" + host.hostname + ":" +
                 std::to_string(host.port) + " (tried " + result.tried + ")";
  if (result.passphrase_wanted)
    result.error +=
        "; a key needs a passphrase: add it to ssh-agent (ssh-add), cutpilot never prompts";
  return result;
}

}  // namespace cutpilot::transport
