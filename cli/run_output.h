// A run's events as text for people (`HH:MM:SS host step: message`) or as DESIGN.md's
// --json lines for scripts.
#pragma once

#include <chrono>
#include <cstdio>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "run/run_events.h"

namespace cutpilot::cli {

// Prints events as they come; progress at most once a second per job.
class RunPrinter {
 public:
  RunPrinter(std::FILE* out, bool json) : out_(out), json_(json) {}
  // Prints one event (or nothing, when it is throttled progress or not for this format).
  void print(const plans::Event& event);

 private:
  std::FILE* out_;
  bool json_;
  std::map<std::string, std::chrono::steady_clock::time_point> last_progress_;  // step/host
};

// The --json object of an event; null for events the schema has no type for.
nlohmann::json event_to_json(const plans::Event& event);

// The one-line text of an event, without the time ("host step: message"); "" for none.
std::string event_to_line(const plans::Event& event);

}  // namespace cutpilot::cli
