#include "agents/words.h"

#include <cstdio>
#include <iterator>

namespace cutpilot::agent {

std::string human_bytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", value, kUnits[unit]);
  return text;
}

std::string human_seconds(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", seconds);
  return text;
}

std::string counted(uint64_t count, std::string_view one, std::string_view many) {
  if (count == 1) return "1 " + std::string(one);
  return std::to_string(count) + " " + (many.empty() ? std::string(one) + "s" : std::string(many));
}

}  // namespace cutpilot::agent
