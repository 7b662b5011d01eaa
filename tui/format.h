// Short text for numbers on a crowded screen: durations, byte counts, rates, bars, and
// truncation that respects UTF-8. Pure functions, so the tests pin them down.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cutpilot::tui {

// "0:07", "12:34", "1:02:03"; negative times read as 0.
std::string clock_text(double seconds);
// The local time of day of a unix time, "02:14:07".
std::string wall_clock_text(double unix_time);
// "0 B", "999 B", "1.2 KiB", "34 MiB", "5.6 GiB".
std::string bytes_text(uint64_t bytes);
// "12 MiB/s"; "-" for a rate of 0.
std::string rate_text(double bytes_per_second);
// A bar of width cells, filled to fraction (clamped to 0..1): "[#####.....]" in ASCII.
std::string bar_text(double fraction, int width, bool utf8);
// The number of terminal cells UTF-8 text takes (wide characters 2, combining 0).
int text_width(std::string_view text);
// text cut to at most width cells, with "~" marking a cut when there is room for it.
std::string fit(std::string_view text, int width);
// text with control characters (C0, C1, DEL) and malformed UTF-8 replaced by '?' and tabs
// by spaces, so that it cannot drive the terminal.
std::string printable(std::string_view text);
// Whether status (from a health event) counts as good: healthy, running, ok, open, active.
bool healthy_status(std::string_view status);

}  // namespace cutpilot::tui
