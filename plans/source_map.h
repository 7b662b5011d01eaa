// Where parsed TOML values sit in the plan text, found in O(log lines).
//
// toml11's value.location() counts newlines from the start of the file on every
// call, which makes a 1 MiB plan with many keys take minutes; this reads the
// value's byte offset once and looks it up in a table of line starts.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml.hpp>

#include "plans/diagnostic.h"

namespace cutpilot::plans {

// Positions of values parsed from one text; the text must outlive the map.
class SourceMap {
 public:
  explicit SourceMap(std::string_view text);

  // Where a value starts.
  SourcePos pos_of(const toml::value& value) const;
  // Where the key that holds value is written (the value's own position when it cannot be found).
  SourcePos key_pos(const toml::value& value, std::string_view key) const;
  // A table's entries in file order (toml11 keeps them in a hash map).
  std::vector<std::pair<const std::string*, const toml::value*>> entries_in_order(
      const toml::value& table) const;

 private:
  std::optional<size_t> offset_of(const toml::value& value) const;
  std::string_view line_text(uint32_t line) const;

  std::string_view text_;
  std::vector<size_t> line_starts_;
};

}  // namespace cutpilot::plans
