// Reading TOML tables into typed structs: each section declares its keys in a
// table of FieldSpec, and read_fields() dispatches on it, reporting unknown
// keys (with a suggestion) and wrong types at their line and column. Hosts, steps
// and each action kind (kind_*.cpp) declare their fields this way.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml.hpp>

#include "plans/diagnostic.h"
#include "plans/expand.h"
#include "plans/source_map.h"
#include "plans/suggest.h"

namespace cutpilot::plans {

// One key = value of a table being read, with the section it is in for messages.
struct Entry {
  std::string_view section;  // "[hosts.source]"
  std::string_view key;
  const toml::value& value;
};

// A string from the plan with where it was written (a host in `on`, a step in `needs`).
struct Located {
  std::string text;
  SourcePos pos;
};

// Collects diagnostics and converts values; one per plan load.
class Reader {
 public:
  Reader(std::string path, const SourceMap& source, Expander& expander)
      : path_(std::move(path)), source_(source), expander_(expander) {}

  // Records an error at pos.
  void error(SourcePos pos, std::string message);
  // Records a warning at pos: the plan stays usable.
  void warning(SourcePos pos, std::string message);
  // Records an error about an unknown key at pos, and counts it (see unknown_keys()).
  void unknown_key(SourcePos pos, std::string message);
  // How many unknown keys were reported so far. A table with a misspelt key does not also
  // report the key it lacks because of it (`runn` is one error, not a second "needs 'run'"):
  // compare the count before and after reading the table.
  size_t unknown_keys() const { return unknown_keys_; }
  // Records an error about an entry's value: "'port' in [hosts.source] " + what.
  void value_error(const Entry& entry, std::string_view what);
  // Everything recorded, in the order it was found.
  std::vector<Diagnostic>& diagnostics() { return diagnostics_; }
  // The expander for ${...} in strings.
  Expander& expander() { return expander_; }
  // Where values sit in the plan text.
  const SourceMap& source() const { return source_; }

  // Whether a string value with ${...} expands to "" ("${env:LAB_SSH_CONFIG:-}"): an optional
  // path written so, which an example plan sets on the lab and leaves unset in production,
  // is as if the key were absent. An empty string written by hand is not.
  bool expands_to_nothing(const Entry& entry);
  // A string value with ${...} expanded; empty strings are refused unless allow_empty.
  std::optional<std::string> string(const Entry& entry, bool allow_empty = false);
  // A path: a string with ${...} expanded and a leading "~/" turned into $HOME.
  std::optional<std::string> path(const Entry& entry);
  // A boolean value.
  std::optional<bool> boolean(const Entry& entry);
  // An integer value from min to max.
  std::optional<int64_t> integer(const Entry& entry, int64_t min, int64_t max);
  // A positive duration string (see duration.h), ${...} expanded.
  std::optional<std::chrono::milliseconds> duration(const Entry& entry);
  // A size string (see size.h), ${...} expanded; zero allowed.
  std::optional<uint64_t> size(const Entry& entry);
  // A number (integer or float) from min to max.
  std::optional<double> number(const Entry& entry, double min, double max);
  // A string that must be one of choices (the error lists them).
  std::optional<std::string> choice(const Entry& entry, std::span<const std::string_view> choices);
  // An array of non-empty strings (or, when single is allowed, one string), each expanded,
  // with where each was written. An empty array is refused unless allow_empty.
  std::optional<std::vector<Located>> list(const Entry& entry, bool single, bool allow_empty);
  // list() without the positions.
  std::optional<std::vector<std::string>> strings(const Entry& entry, bool single,
                                                  bool allow_empty);
  // A table of strings (environment variables, labels), each value expanded.
  std::optional<std::map<std::string, std::string>> string_map(const Entry& entry);

 private:
  std::optional<std::string> expanded(const Entry& entry, bool as_path, bool allow_empty);

  std::string path_;
  const SourceMap& source_;
  Expander& expander_;
  std::vector<Diagnostic> diagnostics_;
  size_t unknown_keys_ = 0;
};

// One key a section accepts, and how to read it into the section's struct.
template <typename Target>
struct FieldSpec {
  std::string_view key;
  void (*read)(Reader& reader, const Entry& entry, Target& out);
};

// FieldSpec readers for the common cases: the value goes into a member of the target
// (`read_flag<SyncRead, &SyncAction::del>`; the target may derive from the member's class).
template <typename Target, auto Member>
void read_flag(Reader& reader, const Entry& entry, Target& out) {
  if (auto value = reader.boolean(entry)) out.*Member = *value;
}
// A non-empty string, ${...} expanded, into a member.
template <typename Target, auto Member>
void read_text(Reader& reader, const Entry& entry, Target& out) {
  if (auto value = reader.string(entry)) out.*Member = std::move(*value);
}
// A positive duration into a member.
template <typename Target, auto Member>
void read_time(Reader& reader, const Entry& entry, Target& out) {
  if (auto value = reader.duration(entry)) out.*Member = *value;
}

// Reads every entry of table through specs; unknown keys are errors with a suggestion.
template <typename Target>
void read_fields(Reader& reader, const toml::value& table, std::string_view section,
                 std::span<const FieldSpec<Target>> specs, Target& out) {
  for (const auto& [key, value] : reader.source().entries_in_order(table)) {
    const Entry entry{section, *key, *value};
    const FieldSpec<Target>* spec = nullptr;
    for (const FieldSpec<Target>& candidate : specs)
      if (candidate.key == *key) spec = &candidate;
    if (spec) {
      spec->read(reader, entry, out);
      continue;
    }
    std::vector<std::string_view> known;
    for (const FieldSpec<Target>& candidate : specs)
      known.push_back(candidate.key);
    reader.unknown_key(
        reader.source().key_pos(*value, *key),
        "unknown key " + quote(*key) + " in " + std::string(section) + did_you_mean(*key, known));
  }
}

}  // namespace cutpilot::plans
