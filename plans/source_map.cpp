#include "plans/source_map.h"

#include <algorithm>

namespace cutpilot::plans {
namespace {

// How far from a value its key is looked for (beyond the key's own length).
constexpr size_t kKeySearchBytes = 1024;

}  // namespace

SourceMap::SourceMap(std::string_view text) : text_(text) {
  line_starts_.push_back(0);
  for (size_t at = 0; at < text.size(); ++at)
    if (text[at] == '\n') line_starts_.push_back(at + 1);
}

std::optional<size_t> SourceMap::offset_of(const toml::value& value) const {
  // toml11 keeps the parse buffer (our text, plus a final '\n' when it lacked one)
  // behind each value's region; only trust it when it is that buffer.
  const auto* region = dynamic_cast<const toml::detail::region*>(toml::detail::get_region(value));
  if (!region || !region->source()) return std::nullopt;
  const auto& buffer = *region->source();
  if (buffer.size() != text_.size() && buffer.size() != text_.size() + 1) return std::nullopt;
  const auto offset = region->first() - buffer.cbegin();
  if (offset < 0 || static_cast<size_t>(offset) > text_.size()) return std::nullopt;
  return static_cast<size_t>(offset);
}

std::string_view SourceMap::line_text(uint32_t line) const {
  if (line == 0 || line > line_starts_.size()) return {};
  const size_t start = line_starts_[line - 1];
  const size_t end = line < line_starts_.size() ? line_starts_[line] - 1 : text_.size();
  return text_.substr(start, end - start);
}

SourcePos SourceMap::pos_of(const toml::value& value) const {
  if (const auto offset = offset_of(value)) {
    const auto next_line = std::upper_bound(line_starts_.begin(), line_starts_.end(), *offset);
    const size_t line = static_cast<size_t>(next_line - line_starts_.begin());
    return {static_cast<uint32_t>(line),
            static_cast<uint32_t>(*offset - line_starts_[line - 1] + 1)};
  }
  const toml::source_location location = value.location();
  return {std::max<uint32_t>(location.line(), 1), std::max<uint32_t>(location.column(), 1)};
}

SourcePos SourceMap::key_pos(const toml::value& value, std::string_view key) const {
  const SourcePos at = pos_of(value);
  if (key.empty()) return at;
  const std::string_view line = line_text(at.line);
  // The key is written just before its value ("key = value"), or inside a header
  // that starts where the table does ("[hosts.key]"). Searching only near the value
  // keeps a long line of inline tables from making this quadratic.
  const size_t value_at = std::min<size_t>(at.column - 1, line.size());
  const size_t near = key.size() + kKeySearchBytes;
  const size_t before = value_at > near ? value_at - near : 0;
  size_t found = line.substr(before, value_at - before).rfind(key);
  if (found != std::string_view::npos) return {at.line, static_cast<uint32_t>(before + found + 1)};
  found = line.substr(value_at, near).find(key);
  if (found != std::string_view::npos)
    return {at.line, static_cast<uint32_t>(value_at + found + 1)};
  return at;
}

std::vector<std::pair<const std::string*, const toml::value*>> SourceMap::entries_in_order(
    const toml::value& table) const {
  std::vector<std::pair<const std::string*, const toml::value*>> entries;
  if (!table.is_table()) return entries;
  std::vector<std::pair<SourcePos, std::pair<const std::string*, const toml::value*>>> placed;
  for (const auto& [key, value] : table.as_table())
    placed.push_back({key_pos(value, key), {&key, &value}});
  std::sort(placed.begin(), placed.end(), [](const auto& a, const auto& b) {
    if (a.first.line != b.first.line) return a.first.line < b.first.line;
    if (a.first.column != b.first.column) return a.first.column < b.first.column;
    return *a.second.first < *b.second.first;
  });
  for (const auto& entry : placed)
    entries.push_back(entry.second);
  return entries;
}

}  // namespace cutpilot::plans
