#include "plans/fields.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "plans/duration.h"
#include "plans/size.h"

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

void Reader::warning(SourcePos pos, std::string message) {
  diagnostics_.push_back({path_, pos, Severity::kWarning, std::move(message)});
}

void Reader::unknown_key(SourcePos pos, std::string message) {
  ++unknown_keys_;
  error(pos, std::move(message));
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

bool Reader::expands_to_nothing(const Entry& entry) {
  if (!entry.value.is_string()) return false;
  const std::string& raw = entry.value.as_string().str;
  if (raw.find("${") == std::string::npos) return false;  // "" by hand stays an error
  const Expansion expansion = expander_.expand(raw);
  return expansion.ok() && expansion.text.empty();
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
  // A string is accepted when it expands to an integer: `port = "${env:PGPORT}"`, for
  // values only known where the plan runs (a lab's ports).
  if (entry.value.is_string() && entry.value.as_string().str.find("${") != std::string::npos) {
    const std::optional<std::string> text = expanded(entry, false, false);
    if (!text) return std::nullopt;
    int64_t number = 0;
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), number);
    if (ec != std::errc() || end != text->data() + text->size() || number < min || number > max) {
      value_error(entry, "must be an integer from " + std::to_string(min) + " to " +
                             std::to_string(max) + ", not " + quote(*text));
      return std::nullopt;
    }
    return number;
  }
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

std::optional<uint64_t> Reader::size(const Entry& entry) {
  if (!entry.value.is_string()) {
    value_error(
        entry, "must be " + std::string(kSizeForms) + " (a string), not " + type_name(entry.value));
    return std::nullopt;
  }
  const std::optional<std::string> text = expanded(entry, false, true);
  if (!text) return std::nullopt;
  const auto parsed = parse_size(*text);
  if (!parsed) value_error(entry, "must be " + std::string(kSizeForms) + ", not " + quote(*text));
  return parsed;
}

std::optional<double> Reader::number(const Entry& entry, double min, double max) {
  const toml::value& v = entry.value;
  const std::optional<double> number =
      v.is_integer()    ? std::optional<double>(static_cast<double>(v.as_integer()))
      : v.is_floating() ? std::optional<double>(v.as_floating())
                        : std::nullopt;
  if (!number || !(*number >= min && *number <= max)) {
    char range[96];
    std::snprintf(range, sizeof range, "must be a number from %g to %g", min, max);
    value_error(entry, range);
    return std::nullopt;
  }
  return number;
}

std::optional<std::string> Reader::choice(const Entry& entry,
                                          std::span<const std::string_view> choices) {
  std::string listed;
  for (size_t i = 0; i < choices.size(); ++i)
    listed += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + quote(choices[i]);
  if (!entry.value.is_string()) {
    value_error(entry, "must be " + listed + ", not " + type_name(entry.value));
    return std::nullopt;
  }
  std::optional<std::string> text = string(entry);
  if (!text) return std::nullopt;
  if (std::find(choices.begin(), choices.end(), *text) == choices.end()) {
    value_error(entry, "must be " + listed + ", not " + quote(*text) +
                           did_you_mean(*text, {choices.begin(), choices.end()}));
    return std::nullopt;
  }
  return text;
}

std::optional<std::vector<Located>> Reader::list(const Entry& entry, bool single,
                                                 bool allow_empty) {
  std::vector<Located> out;
  if (single && entry.value.is_string()) {
    auto text = string(entry);
    if (!text) return std::nullopt;
    out.push_back({std::move(*text), source_.pos_of(entry.value)});
    return out;
  }
  if (!entry.value.is_array()) {
    value_error(entry, std::string(single ? "must be a string or an array of strings"
                                          : "must be an array of strings") +
                           ", not " + type_name(entry.value));
    return std::nullopt;
  }
  if (entry.value.as_array().empty() && !allow_empty) {
    value_error(entry, "must not be empty");
    return std::nullopt;
  }
  bool ok = true;
  for (const toml::value& element : entry.value.as_array()) {
    const Entry item{entry.section, entry.key, element};
    if (!element.is_string()) {
      value_error(item, "must hold only strings, not " + type_name(element));
      ok = false;
      continue;
    }
    auto text = string(item);
    if (!text) {
      ok = false;
      continue;
    }
    out.push_back({std::move(*text), source_.pos_of(element)});
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::vector<std::string>> Reader::strings(const Entry& entry, bool single,
                                                        bool allow_empty) {
  auto located = list(entry, single, allow_empty);
  if (!located) return std::nullopt;
  std::vector<std::string> out;
  for (Located& item : *located)
    out.push_back(std::move(item.text));
  return out;
}

std::optional<std::map<std::string, std::string>> Reader::string_map(const Entry& entry) {
  if (!entry.value.is_table()) {
    value_error(entry,
                "must be a table of strings ({ NAME = \"value\" }), not " + type_name(entry.value));
    return std::nullopt;
  }
  std::map<std::string, std::string> out;
  bool ok = true;
  for (const auto& [key, value] : source_.entries_in_order(entry.value)) {
    const Entry item{entry.section, *key, *value};
    auto text = string(item, /*allow_empty=*/true);
    if (!text) {
      ok = false;
      continue;
    }
    out[*key] = std::move(*text);
  }
  if (!ok) return std::nullopt;
  return out;
}

}  // namespace cutpilot::plans
