#include "plans/fields.h"

#include <algorithm>

#include "plans/duration.h"

namespace cutpilot::plans {
namespace {

std::string type_name(const toml::value& value) {
  switch (value.type()) {
    case toml::value_t::boolean:
      return "a boolean";
    case toml::value_t::integer:
      return "an integer";
    case toml::value_t::floating:
      return "a float";
    case toml::value_t::string:
      return "a string";
    case toml::value_t::offset_datetime:
    case toml::value_t::local_datetime:
    case toml::value_t::local_date:
    case toml::value_t::local_time:
      return "a date or time";
    case toml::value_t::array:
      return "an array";
    case toml::value_t::table:
      return "a table";
    default:
      return "empty";
  }
}

}  // namespace

void Reader::error(SourcePos pos, std::string message) {
  diagnostics_.push_back({path_, pos, Severity::kError, std::move(message)});
}

void Reader::value_error(const Entry& entry, std::string_view what) {
  error(source_.pos_of(entry.value),
        quote(entry.key) + " in " + std::string(entry.section) + " " + std::string(what));
}

std::optional<std::string> Reader::expanded(const Entry& entry, bool as_path, bool allow_empty) {
  if (!entry.value.is_string()) {
    value_error(entry, "must be a string, not " + type_name(entry.value));
    return std::nullopt;
  }
  const std::string& raw = entry.value.as_string().str;
  Expansion expansion = as_path ? expander_.expand_path(raw) : expander_.expand(raw);
  if (!expansion.ok()) {
    // A broken [vars] entry is reported where it is defined, not at every use.
    if (!expansion.cascade)
      error(source_.pos_of(entry.value),
            quote(entry.key) + " in " + std::string(entry.section) + ": " + expansion.error);
    return std::nullopt;
  }
  if (expansion.text.empty() && !allow_empty) {
    value_error(entry, "must not be empty");
    return std::nullopt;
  }
  return std::move(expansion.text);
}

std::optional<std::string> Reader::string(const Entry& entry, bool allow_empty) {
  return expanded(entry, false, allow_empty);
}

std::optional<std::string> Reader::path(const Entry& entry) {
  return expanded(entry, true, false);
}

std::optional<bool> Reader::boolean(const Entry& entry) {
  if (!entry.value.is_boolean()) {
    value_error(entry, "must be true or false, not " + type_name(entry.value));
    return std::nullopt;
  }
  return entry.value.as_boolean();
}

std::optional<int64_t> Reader::integer(const Entry& entry, int64_t min, int64_t max) {
  if (!entry.value.is_integer() || entry.value.as_integer() < min ||
      entry.value.as_integer() > max) {
    value_error(entry,
                "must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
    return std::nullopt;
  }
  return entry.value.as_integer();
}

std::optional<std::chrono::milliseconds> Reader::duration(const Entry& entry) {
  if (!entry.value.is_string()) {
    value_error(entry, "must be " + std::string(kDurationForms) + " (a string), not " +
                           type_name(entry.value));
    return std::nullopt;
  }
  const std::optional<std::string> text = expanded(entry, false, true);
  if (!text) return std::nullopt;
  const auto parsed = parse_duration(*text);
  if (parsed && parsed->count() == 0) {
    value_error(entry, "must be longer than zero");
    return std::nullopt;
  }
  if (!parsed) {
    value_error(entry, "must be " + std::string(kDurationForms) + ", not " +
                           (entry.value.as_string().str == *text ? quote(*text)
                                                                 : quote(*text) + " (expanded)"));
    return std::nullopt;
  }
  return parsed;
}

}  // namespace cutpilot::plans
