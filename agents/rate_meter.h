// A transfer rate that follows the last few seconds, for progress events.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <utility>

namespace cutpilot::agent {

// Bytes per second over the last few seconds of a growing byte count.
class RateMeter {
 public:
  // Records the count now; the rate over the window (0 until 0.2 s have passed).
  uint64_t update(uint64_t bytes) {
    const auto now = std::chrono::steady_clock::now();
    samples_.push_back({now, bytes});
    while (samples_.size() > 2 && now - samples_[1].first > std::chrono::seconds(3))
      samples_.pop_front();
    const auto span = std::chrono::duration<double>(now - samples_.front().first).count();
    return span > 0.2 ? static_cast<uint64_t>((bytes - samples_.front().second) / span) : 0;
  }

 private:
  std::deque<std::pair<std::chrono::steady_clock::time_point, uint64_t>> samples_;
};

}  // namespace cutpilot::agent
