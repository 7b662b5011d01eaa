#include "transport/ssh_g_cache.h"

#include <glob.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <semaphore>
#include <sstream>
#include <thread>

#include "transport/local_cache.h"
#include "transport/sha256.h"

namespace cutpilot::transport {
namespace {

// Tokens whose value the key holds: the names of the host and user asked for (in argv
// or the config), and the local user's name, uid and home (in the key).
constexpr std::string_view kKeyedTokens = "%hpnrdujik";

// A config keyword or -o option whose effect is not a function of the text alone.
bool volatile_keyword(std::string keyword) {
  for (char& c : keyword)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return keyword == "match" || keyword == "canonicalizehostname" || keyword.empty() ||
         keyword[0] == '"';
}

// The keyword a config line or an -o option starts with ("" for none).
std::string keyword_of(std::string_view line) {
  const size_t start = line.find_first_not_of(" \t");
  if (start == std::string_view::npos) return "";
  const size_t end = line.find_first_of(" \t=", start);
  return std::string(line.substr(start, end == std::string_view::npos ? end : end - start));
}

bool tokens_keyed(std::string_view text) {
  if (text.find("${") != std::string_view::npos) return false;
  for (size_t i = text.find('%'); i != std::string_view::npos; i = text.find('%', i + 2))
    if (i + 1 == text.size() || kKeyedTokens.find(text[i + 1]) == std::string_view::npos)
      return false;
  return true;
}

// The ssh that execvp would run for "ssh": its path and identity, or "" when none.
std::string ssh_binary_identity() {
  const char* env = std::getenv("PATH");
  const std::string path = env ? env : "/bin:/usr/bin";
  for (size_t start = 0;;) {
    const size_t colon = path.find(':', start);
    std::string dir = path.substr(start, colon == std::string::npos ? colon : colon - start);
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/ssh";
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0)
      return candidate + " " + file_identity(st);
    if (colon == std::string::npos) return "";
    start = colon + 1;
  }
}

bool is_include(std::string keyword) {
  for (char& c : keyword)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return keyword == "include";
}

// One config file as the key holds it: its text and, in turn, that of each file its Include
// lines name, resolved as ssh resolves them (glob(3) with ~, a relative name under ~/.ssh for
// the user's config and -F, under /etc/ssh for the system's). false: not cacheable.
bool add_config(const std::string& file, const std::string& relative_to, int depth,
                std::string& key) {
  key += "\nfile " + file + "\n";
  struct stat st;
  if (stat(file.c_str(), &st) != 0 && errno == ENOENT) {
    key += "(absent)";
    return true;
  }
  const auto text = read_file(file);
  if (!text || !ssh_config_cacheable(*text)) return false;
  key += std::to_string(text->size()) + ":" + *text;
  for (size_t start = 0; start < text->size();) {
    size_t end = text->find('\n', start);
    if (end == std::string::npos) end = text->size();
    const std::string line = text->substr(start, end - start);
    start = end + 1;
    const std::string keyword = keyword_of(line);
    if (!is_include(keyword)) continue;
    if (depth >= 16 || line.find_first_of("\"'%$") != std::string::npos) return false;
    std::istringstream args(line.substr(line.find(keyword) + keyword.size()));
    std::string arg;
    while (args >> arg) {
      if (arg[0] == '=') arg.erase(0, 1);
      if (arg.empty()) continue;
      const std::string pattern = arg[0] == '/' || arg[0] == '~' ? arg : relative_to + "/" + arg;
      glob_t found{};
      const int rc = glob(pattern.c_str(), GLOB_TILDE, nullptr, &found);
      key += "\ninclude " + pattern + " " + std::to_string(rc == 0 ? found.gl_pathc : 0);
      bool ok = rc == 0 || rc == GLOB_NOMATCH;
      for (size_t i = 0; ok && rc == 0 && i < found.gl_pathc; ++i)
        ok = add_config(found.gl_pathv[i], relative_to, depth + 1, key);
      globfree(&found);
      if (!ok) return false;
    }
  }
  return true;
}

// The config files ssh reads for argv, each with the directory its relative Includes are
// under: the -F file, else the user's and the system's.
using ConfigFiles = std::vector<std::pair<std::string, std::string>>;
std::optional<ConfigFiles> config_files(const std::vector<std::string>& argv, const passwd& pw) {
  std::optional<ConfigFiles> named;
  for (size_t i = 2; i < argv.size(); ++i) {
    if (argv[i] == "--") break;
    if (argv[i] == "-o") {
      if (++i == argv.size()) return std::nullopt;
      if (volatile_keyword(keyword_of(argv[i])) || !tokens_keyed(argv[i])) return std::nullopt;
    } else if (argv[i] == "-F") {
      if (++i == argv.size()) return std::nullopt;
      named = argv[i] == "none" ? ConfigFiles{} : ConfigFiles{{argv[i], "~/.ssh"}};
    } else {
      return std::nullopt;  // an option this key does not know
    }
  }
  if (named) return named;
  return ConfigFiles{{std::string(pw.pw_dir) + "/.ssh/config", "~/.ssh"},
                     {"/etc/ssh/ssh_config", "/etc/ssh"}};
}

// Runs argv with at most two ssh processes per core at a time. A hundred hosts start their
// `ssh -G` at once: all of them at the same time on two busy cores took longer than the
// 10 s each may take (a host failed in the fan-out bench at load 50); in turns they finish
// as soon, and each one's time limit counts from its own start.
CommandOutput run_limited(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  static std::counting_semaphore<> slots(std::max<std::ptrdiff_t>(
      2, 2 * static_cast<std::ptrdiff_t>(std::thread::hardware_concurrency())));
  slots.acquire();
  CommandOutput out = run_command(argv, timeout);
  slots.release();
  return out;
}

}  // namespace

bool ssh_config_cacheable(const std::string& text) {
  if (!tokens_keyed(text)) return false;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + start, end - start);
    const std::string keyword = keyword_of(line);
    if (!keyword.empty() && keyword[0] != '#' && volatile_keyword(keyword)) return false;
    start = end + 1;
  }
  return true;
}

std::optional<std::string> ssh_g_cache_key(const std::vector<std::string>& argv) {
  const passwd* pw = getpwuid(getuid());
  if (!pw || argv.size() < 2 || argv[0] != "ssh" || argv[1] != "-G") return std::nullopt;
  const auto files = config_files(argv, *pw);
  if (!files) return std::nullopt;
  const std::string ssh = ssh_binary_identity();
  if (ssh.empty()) return std::nullopt;
  const char* home = std::getenv("HOME");
  std::string key = "ssh -G v1\n" + ssh + "\nuid " + std::to_string(getuid()) + " " + pw->pw_name +
                    " " + pw->pw_dir + "\nHOME " + (home ? home : "(unset)") + "\nargv";
  for (const auto& arg : argv)
    key += " " + std::to_string(arg.size()) + ":" + arg;
  for (const auto& [file, relative_to] : *files)
    if (!add_config(file, relative_to, 0, key)) return std::nullopt;
  return key;
}

CommandOutput run_ssh_g(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  const auto key = ssh_g_cache_key(argv);
  if (!key) return run_limited(argv, timeout);
  const std::string entry = "ssh-G/" + sha256_hex(*key);
  if (auto cached = cache_read(entry)) {
    CommandOutput out;
    out.exit_status = 0;
    out.out = std::move(*cached);
    return out;
  }
  CommandOutput out = run_limited(argv, timeout);
  // Kept only when nothing the key holds changed while ssh ran.
  if (out.exit_status == 0 && out.error.empty() && !out.out.empty() &&
      ssh_g_cache_key(argv) == key && cache_write(entry, out.out))
    cache_prune("ssh-G", std::chrono::hours(24 * 7));
  return out;
}

}  // namespace cutpilot::transport
