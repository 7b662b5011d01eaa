#include "transport/known_hosts.h"

#include <libssh/libssh.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "transport/ssh_process.h"

namespace cutpilot::transport {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kCertSuffix = "-cert-v01@openssh.com";

std::string lower(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// OpenSSH's match_pattern: '*' any run, '?' any one character.
bool wildcard(const char* s, const char* p) {
  for (;; ++s, ++p) {
    if (!*p) return !*s;
    if (*p == '*') {
      while (p[1] == '*')
        ++p;
      if (!p[1]) return true;
      for (; *s; ++s)
        if (wildcard(s, p + 1)) return true;
      return false;
    }
    if (!*s || (*p != '?' && *p != *s)) return false;
  }
}

std::string base64(const unsigned char* data, size_t len) {
  std::string out(4 * ((len + 2) / 3), '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(len));
  out.resize(static_cast<size_t>(std::max(n, 0)));
  return out;
}

std::optional<std::string> unbase64(const std::string& text) {
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  std::string out(text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  const size_t pad = static_cast<size_t>(std::count(text.end() - 2, text.end(), '='));
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string hmac_sha1(const std::string& salt, const std::string& name) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha1(), salt.data(), static_cast<int>(salt.size()),
       reinterpret_cast<const unsigned char*>(name.data()), name.size(), mac, &len);
  return base64(mac, len);
}

// "SHA256:..." of a plain public key, "" when it cannot be read.
std::string fingerprint(const std::string& type, const std::string& b64) {
  ssh_key key = nullptr;
  if (ssh_pki_import_pubkey_base64(b64.c_str(), ssh_key_type_from_name(type.c_str()), &key) !=
      SSH_OK)
    return "";
  std::string result;
  unsigned char* hash = nullptr;
  size_t len = 0;
  if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &len) == 0) {
    char* text = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, len);
    if (text) result = text;
    ssh_string_free_char(text);
    ssh_clean_pubkey_hash(&hash);
  }
  ssh_key_free(key);
  return result;
}

// One line of a known_hosts file.
struct Entry {
  std::string where;   // FILE:LINE
  std::string marker;  // "", "@revoked", "@cert-authority"
  std::string type;
  std::string base64;
  std::string fp() const { return fingerprint(type, base64); }
};

std::vector<Entry> entries_for(const ResolvedHost& host, const std::string& name) {
  std::vector<Entry> found;
  std::vector<std::string> files = host.user_known_hosts;
  files.insert(files.end(), host.global_known_hosts.begin(), host.global_known_hosts.end());
  for (const auto& file : files) {
    std::ifstream in(file);
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
      std::istringstream words(line);
      Entry e;
      std::string hosts;
      if (!(words >> hosts) || hosts[0] == '#') continue;
      if (hosts[0] == '@') {
        e.marker = hosts;
        if (!(words >> hosts)) continue;
      }
      if (!(words >> e.type >> e.base64)) continue;
      if (!known_hosts_field_matches(hosts, name)) continue;
      e.where = file + ":" + std::to_string(number);
      found.push_back(std::move(e));
    }
  }
  return found;
}

// A host certificate as ssh-keygen reads it (which also verifies the CA's signature).
struct HostCert {
  bool parsed = false;
  bool host_type = false;
  std::string key_fp, ca_fp;
  std::string signature_algorithm;  // the CA's, as "(using ALG)" says
  std::vector<std::string> principals;
  std::string valid;  // "forever", "from X to Y", ...
  std::string error;
};

time_t local_time(const std::string& text) {
  std::tm tm{};
  if (!strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
  tm.tm_isdst = -1;
  return std::mktime(&tm);
}

HostCert read_cert(const PresentedKey& key) {
  HostCert cert;
  const CommandOutput out =
      run_command({"ssh-keygen", "-L", "-f", "-"}, 10s, key.type + " " + key.base64 + "\n");
  if (out.exit_status != 0) {
    cert.error = "ssh-keygen cannot read the host certificate: " + out.err;
    return cert;
  }
  std::istringstream in(out.out);
  std::string line;
  bool in_principals = false;
  while (std::getline(in, line)) {
    const size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos) continue;
    const std::string text = line.substr(start);
    const bool field = text.find(": ") != std::string::npos || text.back() == ':';
    if (in_principals && !field) {
      cert.principals.push_back(text);
      continue;
    }
    in_principals = false;
    auto value = [&](const char* key) -> std::optional<std::string> {
      const std::string prefix = std::string(key) + ":";
      if (text.rfind(prefix, 0) != 0) return std::nullopt;
      const size_t v = text.find_first_not_of(' ', prefix.size());
      return v == std::string::npos ? "" : text.substr(v);
    };
    auto second_word = [](const std::string& v) {
      std::istringstream w(v);
      std::string a, b;
      w >> a >> b;
      return b;
    };
    if (auto v = value("Type"))
      cert.host_type = v->find("host certificate") != std::string::npos;
    else if (auto v = value("Public key"))
      cert.key_fp = second_word(*v);
    else if (auto v = value("Signing CA")) {
      cert.ca_fp = second_word(*v);
      const size_t using_at = v->find("(using ");
      if (using_at != std::string::npos)
        cert.signature_algorithm = v->substr(using_at + 7, v->find(')', using_at) - using_at - 7);
    } else if (auto v = value("Valid"))
      cert.valid = *v;
    else if (auto v = value("Principals"))
      in_principals = v->empty();
  }
  cert.parsed = !cert.key_fp.empty() && !cert.ca_fp.empty();
  if (!cert.parsed) cert.error = "ssh-keygen printed no key or CA for the host certificate";
  return cert;
}

// Why a certificate signed by a trusted CA still does not vouch for this host ("" = it does).
std::string cert_problem(const HostCert& cert, const ResolvedHost& host,
                         const std::string& principal) {
  if (!cert.host_type) return "the certificate is not a host certificate";
  const std::string& allowed = host.ca_signature_algorithms;
  if (!allowed.empty() &&
      ("," + allowed + ",").find("," + cert.signature_algorithm + ",") == std::string::npos)
    return "its CA signed the certificate with " + cert.signature_algorithm +
           ", which CASignatureAlgorithms leaves out";
  if (std::find(cert.principals.begin(), cert.principals.end(), principal) == cert.principals.end())
    return "the certificate is not valid for " + principal;
  const time_t now = std::time(nullptr);
  std::istringstream v(cert.valid);
  std::string word, when;
  while (v >> word) {
    if (word == "forever") break;
    if ((word == "from" || word == "after") && v >> when && local_time(when) > now)
      return "the certificate is not valid yet (" + cert.valid + ")";
    if ((word == "to" || word == "before") && v >> when && local_time(when) <= now)
      return "the certificate has expired (" + cert.valid + ")";
  }
  return "";
}

// Whether RevokedHostKeys lists any of the fingerprints (a KRL is asked of ssh-keygen).
std::optional<std::string> revoked_by_file(const std::string& file, const PresentedKey& key,
                                           const std::vector<std::string>& fps) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return "cannot read RevokedHostKeys " + file;  // ssh refuses too
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.rfind(std::string("SSHKRL\n\0", 8), 0) == 0) {
    char path[] = "/tmp/cutpilot-hostkey-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) return "cannot check RevokedHostKeys " + file + ": no temporary file";
    const std::string line = key.type + " " + key.base64 + "\n";
    const bool written = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    close(fd);
    const CommandOutput out =
        written ? run_command({"ssh-keygen", "-Q", "-f", file, path}, 10s) : CommandOutput{};
    unlink(path);
    if (out.exit_status == 0) return std::nullopt;
    return out.out.find("REVOKED") != std::string::npos
               ? "revoked by RevokedHostKeys " + file
               : "cannot check RevokedHostKeys " + file + ": " + out.err;
  }
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream w(line);
    std::string type, b64;
    if (!(w >> type >> b64) || type[0] == '#') continue;
    if (std::find(fps.begin(), fps.end(), fingerprint(type, b64)) != fps.end())
      return "revoked by RevokedHostKeys " + file;
  }
  return std::nullopt;
}

}  // namespace

bool known_hosts_field_matches(const std::string& field, const std::string& name) {
  const std::string host = lower(name);
  if (field.rfind("|1|", 0) == 0) {
    const size_t bar = field.find('|', 3);
    if (bar == std::string::npos) return false;
    const auto salt = unbase64(field.substr(3, bar - 3));
    return salt && hmac_sha1(*salt, host) == field.substr(bar + 1);
  }
  bool positive = false;
  std::istringstream patterns(field);
  std::string p;
  while (std::getline(patterns, p, ',')) {
    const bool negated = !p.empty() && p[0] == '!';
    if (!wildcard(host.c_str(), lower(negated ? p.substr(1) : p).c_str())) continue;
    if (negated) return false;  // a negated match excludes the host, whatever else matches
    positive = true;
  }
  return positive;
}

std::string known_hosts_files(const ResolvedHost& host) {
  std::string list;
  for (const auto* files : {&host.user_known_hosts, &host.global_known_hosts})
    for (const auto& f : *files)
      list += (list.empty() ? "" : ", ") + f;
  return list.empty() ? "no known_hosts file (UserKnownHostsFile and GlobalKnownHostsFile are none)"
                      : list;
}

namespace {

KeyCheck check_name(const ResolvedHost& host, const PresentedKey& key, const std::string& name) {
  const bool is_cert =
      key.type.size() > kCertSuffix.size() &&
      key.type.compare(key.type.size() - kCertSuffix.size(), kCertSuffix.size(), kCertSuffix) == 0;
  HostCert cert;
  std::string plain_type = key.type, plain_fp;
  if (is_cert) {
    cert = read_cert(key);
    if (!cert.parsed) return {KeyVerdict::kError, cert.error};
    plain_type = key.type.substr(0, key.type.size() - kCertSuffix.size());
    plain_fp = cert.key_fp;
  } else {
    plain_fp = fingerprint(key.type, key.base64);
    if (plain_fp.empty()) return {KeyVerdict::kError, "cannot read the server's key"};
  }
  std::vector<std::string> fps = {plain_fp};
  if (is_cert) fps.push_back(cert.ca_fp);
  if (!host.revoked_host_keys.empty())
    if (auto why = revoked_by_file(host.revoked_host_keys, key, fps))
      return {why->rfind("revoked", 0) == 0 ? KeyVerdict::kRevoked : KeyVerdict::kError, *why};
  const std::vector<Entry> entries = entries_for(host, name);
  for (const auto& e : entries)
    if (e.marker == "@revoked" && std::find(fps.begin(), fps.end(), e.fp()) != fps.end())
      return {KeyVerdict::kRevoked, "marked @revoked in " + e.where};
  std::string cert_note;
  if (is_cert) {
    const std::string principal = host.host_key_alias.empty() ? host.hostname : host.host_key_alias;
    for (const auto& e : entries) {
      if (e.marker != "@cert-authority" || e.fp() != cert.ca_fp) continue;
      const std::string problem = cert_problem(cert, host, principal);
      if (problem.empty()) return {KeyVerdict::kKnown, e.where + " (@cert-authority)"};
      cert_note = problem;
    }
    if (cert_note.empty()) cert_note = "no @cert-authority for " + name + " signed its certificate";
  }
  for (const auto& e : entries)
    if (e.marker.empty() && e.fp() == plain_fp) return {KeyVerdict::kKnown, e.where};
  for (const auto& e : entries)
    if (e.marker.empty() && e.type == plain_type)
      return {KeyVerdict::kChanged, e.where + " holds a different " + e.type + " key for " + name};
  std::string other;
  for (const auto& e : entries)
    if (e.marker.empty()) other = "; " + e.where + " knows a " + e.type + " key for " + name;
  return {KeyVerdict::kUnknown, cert_note + other};
}

}  // namespace

KeyCheck check_host_key(const ResolvedHost& host, const PresentedKey& key) {
  KeyCheck check = check_name(host, key, host.known_hosts_name());
  // As OpenSSH does: a key unknown under [host]:port is accepted when the host's
  // port-less entry holds exactly this key ("checking without port identifier").
  if (check.verdict == KeyVerdict::kUnknown && host.host_key_alias.empty() && host.port != 22) {
    const KeyCheck portless = check_name(host, key, host.hostname);
    if (portless.verdict == KeyVerdict::kKnown)
      return {KeyVerdict::kKnown, portless.detail + " (the entry without a port)"};
  }
  return check;
}

KeyCheck check_host_key(const ResolvedHost& host, const PresentedKey& key,
                        const std::vector<PresentedKey>& certificates) {
  KeyCheck check = check_host_key(host, key);
  if (check.verdict != KeyVerdict::kUnknown) return check;
  const std::string fp = fingerprint(key.type, key.base64);
  for (const auto& c : certificates) {
    const HostCert cert = read_cert(c);  // also verifies the CA's signature
    if (!cert.parsed || cert.key_fp != fp) continue;
    const KeyCheck with_cert = check_host_key(host, c);
    if (with_cert.verdict == KeyVerdict::kKnown || with_cert.verdict == KeyVerdict::kRevoked)
      return with_cert;
    if (!with_cert.detail.empty()) check.detail = with_cert.detail;
  }
  return check;
}

std::vector<PresentedKey> scan_host_certificates(const ResolvedHost& host,
                                                 const std::string& key_type, int timeout_seconds,
                                                 const std::vector<std::string>& proxy) {
  std::vector<PresentedKey> certs;
  // ssh-keyscan's -t name for the key's type: one connection, not one per type.
  std::string scan_type = key_type.rfind("ecdsa-sha2-", 0) == 0 ? "ecdsa"
                          : key_type == "ssh-ed25519"           ? "ed25519"
                          : key_type == "ssh-rsa"               ? "rsa"
                                                                : "";
  auto argv = [&](const std::string& address, int port) {
    std::vector<std::string> a = {
        "ssh-keyscan", "-c", "-T", std::to_string(timeout_seconds), "-p", std::to_string(port)};
    if (!scan_type.empty()) a.insert(a.end(), {"-t", scan_type});
    a.insert(a.end(), {"--", address});
    return a;
  };
  const auto bound = std::chrono::seconds(timeout_seconds + 5);
  const CommandOutput out =
      proxy.empty()
          ? run_command(argv(host.hostname, host.port), bound)
          : run_command_through([&](int port) { return argv("127.0.0.1", port); }, proxy, bound);
  std::istringstream lines(out.out);
  std::string line;
  while (std::getline(lines, line)) {
    // "TYPE BASE64" (with -c, ssh-keyscan prints no host name); "# ..." are comments.
    std::istringstream w(line);
    std::string type, b64;
    if (!(w >> type >> b64) || type[0] == '#') continue;
    if (type.ends_with(kCertSuffix)) certs.push_back({type, b64});
  }
  return certs;
}

bool add_known_host(const ResolvedHost& host, const PresentedKey& key, std::string& error) {
  if (host.user_known_hosts.empty()) {
    error = "UserKnownHostsFile is none: there is no file to add the key to";
    return false;
  }
  const std::string& file = host.user_known_hosts.front();
  std::string name = host.known_hosts_name();
  if (host.hash_known_hosts) {
    unsigned char salt[20];
    if (RAND_bytes(salt, sizeof salt) != 1) {
      error = "no random bytes to hash the entry";
      return false;
    }
    const std::string raw(reinterpret_cast<char*>(salt), sizeof salt);
    name = "|1|" + base64(salt, sizeof salt) + "|" + hmac_sha1(raw, lower(name));
  }
  std::error_code ec;
  const auto parent = std::filesystem::path(file).parent_path();
  if (!parent.empty() && !std::filesystem::exists(parent)) {
    std::filesystem::create_directories(parent, ec);
    chmod(parent.c_str(), 0700);
  }
  std::ofstream out(file, std::ios::app);
  out << name << " " << key.type << " " << key.base64 << "\n";
  out.flush();
  if (!out) {
    error = "cannot write " + file;
    return false;
  }
  return true;
}

}  // namespace cutpilot::transport
