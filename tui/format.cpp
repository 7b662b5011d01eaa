#include "tui/format.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <cwchar>
#include <optional>

namespace cutpilot::tui {
namespace {

// One UTF-8 character: its code point, its length in bytes; nullopt for a malformed one.
struct Decoded {
  char32_t code = 0;
  size_t size = 1;
};

std::optional<Decoded> decode(std::string_view text, size_t at) {
  const auto lead = static_cast<unsigned char>(text[at]);
  if (lead < 0x80) return Decoded{lead, 1};
  const size_t size = lead >= 0xf0 && lead < 0xf5 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc2 ? 2 : 0;
  if (size == 0 || lead >= 0xf5 || at + size > text.size()) return std::nullopt;
  char32_t code = lead & (0x7f >> size);
  for (size_t i = 1; i < size; ++i) {
    const auto byte = static_cast<unsigned char>(text[at + i]);
    if ((byte & 0xc0) != 0x80) return std::nullopt;
    code = (code << 6) | (byte & 0x3f);
  }
  static constexpr char32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code < kSmallest[size] || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
    return std::nullopt;
  return Decoded{code, size};
}

// Cells a character takes: wide (CJK, most emoji) 2, combining 0, else 1.
int cells(char32_t code) {
  if (code < 0x80) return 1;
  const int width = wcwidth(static_cast<wchar_t>(code));
  return width < 0 ? 1 : width;
}

}  // namespace

std::string clock_text(double seconds) {
  const auto total = static_cast<long long>(std::max(0.0, std::floor(seconds)));
  char out[32];
  if (total >= 3600)
    std::snprintf(out, sizeof out, "%lld:%02lld:%02lld", total / 3600, total / 60 % 60, total % 60);
  else
    std::snprintf(out, sizeof out, "%lld:%02lld", total / 60, total % 60);
  return out;
}

std::string wall_clock_text(double unix_time) {
  const auto seconds = static_cast<std::time_t>(unix_time);
  std::tm local{};
  localtime_r(&seconds, &local);
  char out[16];
  std::strftime(out, sizeof out, "%H:%M:%S", &local);
  return out;
}

std::string bytes_text(uint64_t bytes) {
  // Not plans::format_size: on a progress line a value rounds down, never up, so that
  // "2.0 GiB/2.0 GiB" only shows once it is true.
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  const int unit = bytes < 1024 ? 0 : (std::bit_width(bytes) - 1) / 10;
  if (unit == 0) return std::to_string(bytes) + " B";
  const double value = std::ldexp(static_cast<double>(bytes), -10 * unit);
  char out[32];
  if (value < 10)
    std::snprintf(out, sizeof out, "%.1f %s", std::floor(value * 10) / 10, kUnits[unit]);
  else
    std::snprintf(out, sizeof out, "%.0f %s", std::floor(value), kUnits[unit]);
  return out;
}

std::string rate_text(double bytes_per_second) {
  if (!(bytes_per_second > 0)) return "-";
  return bytes_text(static_cast<uint64_t>(bytes_per_second)) + "/s";
}

std::string bar_text(double fraction, int width, bool utf8) {
  if (width < 3) return "";
  const int inner = width - 2;
  if (!(fraction > 0)) fraction = 0;  // also NaN
  fraction = std::min(fraction, 1.0);
  // Rounded down, so a bar is full only at 100 %.
  const int filled = static_cast<int>(std::floor(fraction * inner));
  std::string out = "[";
  for (int i = 0; i < inner; ++i)
    out += i < filled ? (utf8 ? "\u2588" : "#") : (utf8 ? "\u00b7" : ".");
  out += "]";
  return out;
}

int text_width(std::string_view text) {
  int width = 0;
  for (size_t at = 0; at < text.size();) {
    const std::optional<Decoded> c = decode(text, at);
    width += c ? cells(c->code) : 1;
    at += c ? c->size : 1;
  }
  return width;
}

std::string fit(std::string_view text, int width) {
  if (width <= 0) return "";
  if (text_width(text) <= width) return std::string(text);
  // Keep what fits in width-1 cells and mark the cut.
  std::string out;
  int used = 0;
  for (size_t at = 0; at < text.size();) {
    const std::optional<Decoded> c = decode(text, at);
    const size_t size = c ? c->size : 1;
    used += c ? cells(c->code) : 1;
    if (used > width - 1) break;
    out.append(text.substr(at, size));
    at += size;
  }
  out += "~";
  return out;
}

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t at = 0; at < text.size();) {
    const std::optional<Decoded> c = decode(text, at);
    if (!c) {
      out.push_back('?');  // a malformed byte
      ++at;
      continue;
    }
    if (c->code == '\t')
      out += "  ";
    else if (c->code < 0x20 || (c->code >= 0x7f && c->code < 0xa0))
      out.push_back('?');  // C0 and C1 controls: a terminal would obey them
    else
      out.append(text.substr(at, c->size));
    at += c->size;
  }
  return out;
}

bool healthy_status(std::string_view status) {
  return status == "healthy" || status == "running" || status == "ok" || status == "open" ||
         status == "active";
}

}  // namespace cutpilot::tui
