// How the agent words amounts in what operators read: sizes, times and counts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cutpilot::agent {

// "1.5 GiB", "512 B": one decimal above bytes, so a detail stays put while it barely moves.
std::string human_bytes(uint64_t bytes);
// "0.4 s", "12.0 s": seconds with one decimal.
std::string human_seconds(double seconds);
// "1 table", "3 tables": a count with its noun, plural unless it is one; many is the
// plural when it is not one + "s" ("entries").
std::string counted(uint64_t count, std::string_view one, std::string_view many = {});

}  // namespace cutpilot::agent
