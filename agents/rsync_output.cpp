#include "agents/rsync_output.h"

#include <algorithm>
#include <array>
#include <functional>
#include <limits>
#include <tuple>
#include <utility>

namespace cutpilot::agent {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool consume(std::string_view& s, std::string_view prefix) {
  if (!s.starts_with(prefix)) return false;
  s.remove_prefix(prefix.size());
  return true;
}

void skip_spaces(std::string_view& s) {
  while (!s.empty() && s.front() == ' ')
    s.remove_prefix(1);
}

// The next run of non-space characters, after any spaces.
std::string_view next_token(std::string_view& s) {
  skip_spaces(s);
  size_t end = s.find(' ');
  if (end == std::string_view::npos) end = s.size();
  std::string_view token = s.substr(0, end);
  s.remove_prefix(end);
  return token;
}

// A decimal count as rsync prints it: digits, with commas between groups when -h is on.
std::optional<uint64_t> parse_count(std::string_view s) {
  if (s.empty() || !is_digit(s.front()) || !is_digit(s.back())) return std::nullopt;
  uint64_t value = 0;
  for (char c : s) {
    if (c == ',') continue;
    if (!is_digit(c)) return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (kMax - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

// Leading count of s up to the first space ("302 (reg: 300, dir: 2)" -> 302).
std::optional<uint64_t> leading_count(std::string_view s) {
  return parse_count(s.substr(0, std::min(s.find(' '), s.size())));
}

// "64.12MB/s" in bytes per second, rounded; 1024-based like rsync's own units.
std::optional<uint64_t> parse_rate(std::string_view s) {
  static constexpr std::array<std::pair<std::string_view, uint64_t>, 6> kUnits = {{
      {"kB/s", uint64_t{1} << 10},
      {"KB/s", uint64_t{1} << 10},
      {"MB/s", uint64_t{1} << 20},
      {"GB/s", uint64_t{1} << 30},
      {"TB/s", uint64_t{1} << 40},
      {"B/s", 1},
  }};
  uint64_t multiplier = 0;
  for (const auto& [suffix, factor] : kUnits) {
    if (s.ends_with(suffix)) {
      s.remove_suffix(suffix.size());
      multiplier = factor;
      break;
    }
  }
  if (multiplier == 0) return std::nullopt;
  // A decimal comma, in case a locale's LC_NUMERIC ever reaches rsync's printf.
  size_t point = s.find_first_of(".,");
  std::string_view whole = s.substr(0, point);
  std::string_view fraction = point == std::string_view::npos ? "" : s.substr(point + 1);
  if (whole.empty() || fraction.size() > 6) return std::nullopt;
  if (point != std::string_view::npos && fraction.empty()) return std::nullopt;
  auto whole_value = parse_count(whole);  // holds no comma: the first one was taken as the point
  if (!whole_value) return std::nullopt;
  uint64_t fraction_value = 0, scale = 1;
  for (char c : fraction) {
    if (!is_digit(c)) return std::nullopt;
    fraction_value = fraction_value * 10 + static_cast<uint64_t>(c - '0');
    scale *= 10;
  }
  if (*whole_value > kMax / multiplier) return std::nullopt;
  // fraction_value < scale <= 10^6 and multiplier <= 2^40: the product fits in 64 bits.
  const uint64_t fraction_bytes = (fraction_value * multiplier + scale / 2) / scale;
  const uint64_t whole_bytes = *whole_value * multiplier;
  if (whole_bytes > kMax - fraction_bytes) return std::nullopt;
  return whole_bytes + fraction_bytes;
}

// "0:00:00", "1234:05:59" or, when rsync cannot tell, "??:??:??".
bool is_time_left(std::string_view s) {
  if (s == "??:??:??") return true;
  if (s.size() < 7 || s[s.size() - 3] != ':' || s[s.size() - 6] != ':') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i != s.size() - 3 && i != s.size() - 6 && !is_digit(s[i])) return false;
  }
  return true;
}

// "(xfr#1, to-chk=299/302)" and the older "(xfer#1, to-check=299/302)".
bool parse_file_counts(std::string_view s, RsyncProgress& progress) {
  if (!consume(s, "(xfr#") && !consume(s, "(xfer#")) return false;
  size_t comma = s.find(", ");
  if (comma == std::string_view::npos || !parse_count(s.substr(0, comma))) return false;
  s.remove_prefix(comma + 2);
  if (!consume(s, "to-chk=") && !consume(s, "ir-chk=") && !consume(s, "to-check=")) return false;
  size_t slash = s.find('/'), close = s.find(')');
  if (slash == std::string_view::npos || close == std::string_view::npos || close < slash) {
    return false;
  }
  auto to_check = parse_count(s.substr(0, slash));
  auto total = parse_count(s.substr(slash + 1, close - slash - 1));
  if (!to_check || !total) return false;
  s.remove_prefix(close + 1);
  skip_spaces(s);  // progress2 pads a line that got shorter than the one before
  if (!s.empty()) return false;
  progress.files_total = *total;
  progress.files_done = *to_check <= *total ? *total - *to_check : 0;
  progress.has_files = true;
  return true;
}

int octal_digit(char c) {
  return c >= '0' && c <= '7' ? c - '0' : -1;
}

// A temporary file rsync writes before renaming, ".NAME.XXXXXX", mapped back to NAME.
std::string untemp(std::string path) {
  const size_t slash = path.rfind('/');
  const size_t base = slash == std::string::npos ? 0 : slash + 1;
  std::string_view name = std::string_view(path).substr(base);
  if (name.size() < 9 || name.front() != '.' || name[name.size() - 7] != '.') return path;
  for (char c : name.substr(name.size() - 6)) {
    const bool alnum = is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum) return path;
  }
  return path.substr(0, base) + std::string(name.substr(1, name.size() - 8));
}

// The first quoted path of an error message. Names may contain '"' (rsync does not escape it)
// and the text after the path never does, so the path ends at the last quote, or where a
// second quoted name starts ("X" -> "T", "X" => T, lsetxattr("X","name")).
std::optional<std::string> quoted_path(std::string_view message) {
  const size_t open = message.find('"');
  if (open == std::string_view::npos) return std::nullopt;
  std::string_view body = message.substr(open + 1);
  size_t end = std::string_view::npos;
  for (std::string_view separator : {"\" -> ", "\" => ", "\",\""}) {
    end = std::min(end, body.find(separator));
  }
  if (end == std::string_view::npos) end = body.rfind('"');
  if (end == std::string_view::npos || end == 0) return std::nullopt;
  return unescape_rsync_name(body.substr(0, end));
}

}  // namespace

std::optional<RsyncProgress> parse_progress2(std::string_view line) {
  RsyncProgress progress;
  auto bytes = parse_count(next_token(line));
  if (!bytes) return std::nullopt;
  progress.bytes = *bytes;

  std::string_view percent = next_token(line);
  if (percent.size() < 2 || percent.size() > 10 || !percent.ends_with('%')) return std::nullopt;
  percent.remove_suffix(1);
  auto percent_value = parse_count(percent);
  if (!percent_value || percent.find(',') != std::string_view::npos ||
      *percent_value > static_cast<uint64_t>(std::numeric_limits<int>::max())) {
    return std::nullopt;
  }
  progress.percent = static_cast<int>(*percent_value);

  auto rate = parse_rate(next_token(line));
  if (!rate || !is_time_left(next_token(line))) return std::nullopt;
  progress.rate = *rate;

  skip_spaces(line);
  if (line.empty()) return progress;
  if (!parse_file_counts(line, progress)) return std::nullopt;
  return progress;
}

void RsyncStatsParser::feed_line(std::string_view line) {
  static constexpr std::array<std::pair<std::string_view, uint64_t RsyncStats::*>, 5> kFields = {{
      {"Number of files: ", &RsyncStats::files},
      {"Number of regular files transferred: ", &RsyncStats::regular_files_transferred},
      {"Number of deleted files: ", &RsyncStats::deleted},
      {"Total file size: ", &RsyncStats::total_size},
      {"Total transferred file size: ", &RsyncStats::transferred_size},
  }};
  for (const auto& [key, member] : kFields) {
    if (!consume(line, key)) continue;
    if (auto value = leading_count(line)) stats_.*member = *value;
    if (member == &RsyncStats::transferred_size) stats_.complete = true;
    return;
  }
}

std::string unescape_rsync_name(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '\\' && i + 4 < name.size() && name[i + 1] == '#') {
      const int a = octal_digit(name[i + 2]), b = octal_digit(name[i + 3]),
                c = octal_digit(name[i + 4]);
      if (a >= 0 && a <= 3 && b >= 0 && c >= 0) {
        out.push_back(static_cast<char>(a * 64 + b * 8 + c));
        i += 4;
        continue;
      }
    }
    out.push_back(name[i]);
  }
  return out;
}

bool names_a_missing_file(std::string_view stderr_line) {
  return (stderr_line.starts_with("rsync: [sender] link_stat \"") ||
          stderr_line.starts_with("rsync: link_stat \"")) &&
         stderr_line.ends_with("\" failed: No such file or directory (2)");
}

std::optional<std::string> failed_file_of(std::string_view stderr_line) {
  std::string_view message = stderr_line;
  // Errors carry "rsync: " and, since 3.2, the role of the process: "rsync: [sender] ".
  // "rsync error: ..." (the summary) and "rsync warning: ..." name no file.
  const bool is_error = consume(message, "rsync: ");
  if (is_error && message.starts_with('[')) {
    const size_t close = message.find("] ");
    if (close != std::string_view::npos) message.remove_prefix(close + 2);
  }

  if (consume(message, "file has vanished: ")) return quoted_path(message);

  // The final verdict after a retry; the first "WARNING: ... (will try again)" is not one.
  if (!is_error && consume(message, "ERROR: ")) {
    const size_t verdict = message.rfind(" failed verification -- update ");
    if (verdict == std::string_view::npos || verdict == 0) return std::nullopt;
    return unescape_rsync_name(message.substr(0, verdict));
  }

  // "could not make way for new directory: ro/x" (unquoted; the description has no ": ").
  if (!is_error && consume(message, "could not make way for ")) {
    const size_t colon = message.find(": ");
    if (colon == std::string_view::npos || colon + 2 == message.size()) return std::nullopt;
    return unescape_rsync_name(message.substr(colon + 2));
  }
  if (!is_error) return std::nullopt;

  // "delete_file: unlink(ro/x) failed: Permission denied (13)" (unquoted).
  if (consume(message, "delete_file: ")) {
    const size_t open = message.find('(');
    const size_t close = message.rfind(") failed");
    if (open == std::string_view::npos || close == std::string_view::npos || close <= open + 1) {
      return std::nullopt;
    }
    return unescape_rsync_name(message.substr(open + 1, close - open - 1));
  }

  auto path = quoted_path(message);
  if (path && (message.starts_with("mkstemp ") || message.starts_with("rename "))) {
    return untemp(std::move(*path));
  }
  return path;
}

std::optional<std::array<int, 3>> parse_rsync_version(std::string_view line) {
  constexpr std::string_view kPrefix = "version ";
  const size_t at = line.find(kPrefix);
  if (!line.starts_with("rsync") || at == std::string_view::npos) return std::nullopt;
  std::string_view rest = line.substr(at + kPrefix.size());
  std::array<int, 3> version{0, 0, 0};
  for (size_t part = 0; part < 3; ++part) {
    size_t digits = 0;
    int value = 0;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9' && value < 100000)
      value = value * 10 + (rest[digits++] - '0');
    if (digits == 0) return part >= 2 ? std::optional(version) : std::nullopt;  // "3.2"
    version[part] = value;
    rest.remove_prefix(digits);
    if (rest.empty() || rest[0] != '.') return part >= 1 ? std::optional(version) : std::nullopt;
    rest.remove_prefix(1);
  }
  return version;
}

bool has_trust_sender(const std::array<int, 3>& version) {
  return version >= std::array<int, 3>{3, 2, 5};
}

bool directory_time_only(std::string_view itemized) {
  // YXcstpoguax: Y '.' (nothing transferred), X 'd', then the attribute letters.
  constexpr size_t kFlags = 11;
  if (itemized.size() < kFlags + 1 || itemized[kFlags] != ' ') return false;
  if (itemized[0] != '.' || itemized[1] != 'd') return false;
  bool time = false;
  for (size_t i = 2; i < kFlags; ++i) {
    const char c = itemized[i];
    if (i == 4 && (c == 't' || c == 'T')) {
      time = true;
    } else if (c != '.' && c != ' ') {
      return false;
    }
  }
  return time;
}

std::string describe_itemized(std::string_view itemized) {
  constexpr size_t kFlags = 11;
  constexpr std::string_view kDeleting = "*deleting";
  if (itemized.starts_with(kDeleting)) {
    std::string_view name = itemized.substr(kDeleting.size());
    while (!name.empty() && name.front() == ' ')
      name.remove_prefix(1);
    return "only on the target: " + std::string(name);
  }
  if (itemized.size() < kFlags + 1 || itemized[kFlags] != ' ') return std::string(itemized);
  const std::string name(itemized.substr(kFlags + 1));
  if (itemized.substr(2, kFlags - 2) == "+++++++++") return "missing on the target: " + name;
  // YXcstpoguax: the letters from the third on say which attributes differ.
  static constexpr std::pair<char, std::string_view> kWhat[] = {{'c', "content"},
                                                                {'s', "size"},
                                                                {'t', "time"},
                                                                {'T', "time"},
                                                                {'p', "permissions"},
                                                                {'o', "owner"},
                                                                {'g', "group"},
                                                                {'u', "access time"},
                                                                {'n', "create time"},
                                                                {'a', "ACL"},
                                                                {'x', "extended attributes"},
                                                                {'L', "link target"}};
  std::string what;
  for (size_t i = 2; i < kFlags; ++i)
    for (const auto& [letter, word] : kWhat)
      if (itemized[i] == letter && what.find(word) == std::string::npos)
        what += (what.empty() ? "" : ", ") + std::string(word);
  if (itemized[1] == 'L' && itemized[0] == 'c') what = what.empty() ? "link target" : what;
  return "differs" + (what.empty() ? std::string() : " (" + what + ")") + ": " + name;
}

}  // namespace cutpilot::agent
