// "did you mean ...?" for misspelt keys, hosts and variables.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cutpilot::plans {

// Beyond this many candidates no suggestion is made: it would cost more than it helps.
inline constexpr size_t kMaxSuggestCandidates = 256;

// Optimal string alignment distance: insertions, deletions, substitutions and
// swaps of two neighbours each cost 1; compared case-insensitively.
size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to word, when close enough to be a likely typo of it, or
// else the first candidate that word (4 letters or more) is the start of.
std::optional<std::string_view> closest_match(std::string_view word,
                                              const std::vector<std::string_view>& candidates);

// "; did you mean 'x'?" for the closest candidate, or "" when none is close.
std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates);

}  // namespace cutpilot::plans
