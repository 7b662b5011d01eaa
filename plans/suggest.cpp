#include "plans/suggest.h"

#include <algorithm>
#include <cctype>

#include "plans/diagnostic.h"

namespace cutpilot::plans {
namespace {

// Longer words are not typos of a key name, and comparing them would only cost time.
constexpr size_t kMaxWordBytes = 64;

char lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

}  // namespace

size_t edit_distance(std::string_view a, std::string_view b) {
  // Three rows of the dynamic-programming table: two back, one back, current.
  std::vector<size_t> before(b.size() + 1), previous(b.size() + 1), current(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    previous[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1]))
        current[j] = std::min(current[j], before[j - 2] + 1);
    }
    std::swap(before, previous);
    std::swap(previous, current);
  }
  return previous[b.size()];
}

std::optional<std::string_view> closest_match(std::string_view word,
                                              const std::vector<std::string_view>& candidates) {
  if (word.empty() || word.size() > kMaxWordBytes || candidates.size() > kMaxSuggestCandidates)
    return std::nullopt;
  // One edit for short words, one more per four letters: "prot" -> "port", "adress" -> "address".
  const size_t allowed = 1 + word.size() / 4;
  std::optional<std::string_view> best;
  size_t best_distance = allowed + 1;
  for (std::string_view candidate : candidates) {
    if (candidate.size() > kMaxWordBytes) continue;
    const size_t distance = edit_distance(word, candidate);
    if (distance < best_distance && distance < std::max(word.size(), candidate.size())) {
      best = candidate;
      best_distance = distance;
    }
  }
  if (best || word.size() < 4) return best;
  // A key cut short: "downtime" -> "downtime_budget", "connect" -> "connect_timeout".
  for (std::string_view candidate : candidates)
    if (candidate.size() > word.size() && candidate.substr(0, word.size()) == word)
      return candidate;
  return best;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates) {
  const auto match = closest_match(word, candidates);
  return match ? "; did you mean " + quote(*match) + "?" : std::string();
}

}  // namespace cutpilot::plans
