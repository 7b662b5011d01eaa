#include "plans/duration.h"

#include <array>
#include <cstdint>

namespace cutpilot::plans {
namespace {

// A duration unit, in the order the parts of a duration must come.
struct Unit {
  std::string_view suffix;
  int64_t milliseconds;
};

constexpr std::array<Unit, 4> kUnits = {{
    {"h", 3'600'000},
    {"m", 60'000},
    {"s", 1'000},
    {"ms", 1},
}};

// Enough digits for any duration up to kMaxDuration in milliseconds, few enough to never overflow.
constexpr size_t kMaxDigits = 10;

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  int64_t total = 0;
  size_t next_unit = 0;  // units must come largest first, each at most once
  size_t at = 0;
  while (at < text.size()) {
    const size_t digits_start = at;
    int64_t number = 0;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
      if (at - digits_start == kMaxDigits) return std::nullopt;
      number = number * 10 + (text[at] - '0');
      ++at;
    }
    if (at == digits_start) return std::nullopt;
    const size_t suffix_start = at;
    while (at < text.size() && text[at] >= 'a' && text[at] <= 'z')
      ++at;
    const std::string_view suffix = text.substr(suffix_start, at - suffix_start);
    size_t unit = next_unit;
    while (unit < kUnits.size() && kUnits[unit].suffix != suffix)
      ++unit;
    if (unit == kUnits.size()) return std::nullopt;
    next_unit = unit + 1;
    total += number * kUnits[unit].milliseconds;
    if (total > kMaxDuration.count()) return std::nullopt;
  }
  return std::chrono::milliseconds(total);
}

std::string format_duration(std::chrono::milliseconds duration) {
  int64_t left = duration.count();
  if (left <= 0) return "0s";
  std::string text;
  for (const Unit& unit : kUnits) {
    if (left < unit.milliseconds) continue;
    text += std::to_string(left / unit.milliseconds) + std::string(unit.suffix);
    left %= unit.milliseconds;
  }
  return text;
}

}  // namespace cutpilot::plans
