// Durations in plan files: "250ms", "90s", "5m", "1h30m".
//
// A duration is one or more <digits><unit> parts with no spaces, units from
// largest to smallest and each at most once: h, m, s, ms. So "1h30m", "2m30s"
// and "1s500ms" are fine, while "5 minutes", "1.5h", "30m1h", "5" and "" are
// not. Bare numbers are refused because a plan that says `timeout = 5` leaves
// the reader guessing the unit. A duration is at most 31 days.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace cutpilot::plans {

// The longest duration a plan may name.
inline constexpr std::chrono::milliseconds kMaxDuration = std::chrono::hours(24 * 31);

// Parses a duration; nullopt when the text is not one (see the file comment).
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// A duration as a plan would write it: "250ms", "90s" is "1m30s", "2h".
std::string format_duration(std::chrono::milliseconds duration);

// The accepted forms, for error messages: `a duration like "90s", "5m" or "1h30m"`.
inline constexpr std::string_view kDurationForms = R"(a duration like "90s", "5m" or "1h30m")";

}  // namespace cutpilot::plans
