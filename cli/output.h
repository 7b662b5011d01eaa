// What the command line prints: aligned tables for people, JSON lines for scripts.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cutpilot::cli {

// A table printed with columns padded to their widest cell.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  // Adds a row with one cell per header column.
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  // Prints the table; the last column is not padded.
  void print(std::FILE* out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// The current time in RFC 3339 with milliseconds, UTC ("2026-11-21T17:31:25.123Z").
std::string rfc3339_now();

// A JSON event object with "t" and "type" set, per DESIGN.md's --json schema.
nlohmann::json event_json(const std::string& type);

}  // namespace cutpilot::cli
