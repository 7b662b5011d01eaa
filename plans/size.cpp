#include "plans/size.h"

#include <array>
#include <cstdio>

namespace cutpilot::plans {
namespace {

// A size unit and how many bytes it is.
struct SizeUnit {
  std::string_view suffix;
  uint64_t bytes;
};

constexpr std::array<SizeUnit, 9> kSizeUnits = {{
    {"B", 1},
    {"KB", 1000},
    {"MB", 1000 * 1000},
    {"GB", 1000 * 1000 * 1000},
    {"TB", 1000ull * 1000 * 1000 * 1000},
    {"KiB", 1ull << 10},
    {"MiB", 1ull << 20},
    {"GiB", 1ull << 30},
    {"TiB", 1ull << 40},
}};

constexpr uint64_t kMaxSize = 1ull << 62;
// Few enough digits that the number times any unit cannot overflow before the check.
constexpr size_t kMaxSizeDigits = 18;

}  // namespace

std::optional<uint64_t> parse_size(std::string_view text) {
  size_t at = 0;
  uint64_t number = 0;
  while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
    if (at == kMaxSizeDigits) return std::nullopt;
    number = number * 10 + static_cast<uint64_t>(text[at] - '0');
    ++at;
  }
  if (at == 0) return std::nullopt;
  const std::string_view suffix = text.substr(at);
  for (const SizeUnit& unit : kSizeUnits) {
    if (unit.suffix != suffix) continue;
    if (number > kMaxSize / unit.bytes) return std::nullopt;
    return number * unit.bytes;
  }
  return std::nullopt;
}

std::string format_size(uint64_t bytes) {
  static constexpr std::array<std::string_view, 5> kNames = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < kNames.size()) {
    value /= 1024;
    ++unit;
  }
  char text[48];
  if (unit == 0 || value == static_cast<double>(static_cast<uint64_t>(value)))
    std::snprintf(text, sizeof text, "%llu %s", static_cast<unsigned long long>(value),
                  kNames[unit].data());
  else
    std::snprintf(text, sizeof text, "%.1f %s", value, kNames[unit].data());
  return text;
}

}  // namespace cutpilot::plans
