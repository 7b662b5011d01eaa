// The boundary between plan text and toml11: limits first, then the parse, and
// every toml11 failure turned into one diagnostic at the right line and column.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <toml.hpp>

#include "plans/diagnostic.h"

namespace cutpilot::plans {

// The outcome of reading TOML text: the document, or the one error that stopped it.
struct TomlRead {
  std::optional<toml::value> root;
  std::optional<Diagnostic> error;
};

// Limits on plan text that keep toml11 fast and its recursion shallow.
struct TomlLimits {
  size_t max_bytes;       // the whole text
  size_t max_line_bytes;  // toml11 copies the current line into a message for every
                          // alternative it tries, so a long line of values is quadratic
  size_t max_nesting;     // arrays, inline tables and dotted-key parts together
};

// Checks encoding and limits, then parses; never throws.
TomlRead read_toml(std::string_view text, const std::string& display_path,
                   const TomlLimits& limits);

// Finds the first line longer than max_line_bytes (at the first byte past the limit).
std::optional<SourcePos> find_long_line(std::string_view text, size_t max_line_bytes);

// Finds the first byte that is not part of well-formed UTF-8; nullopt when all is.
std::optional<SourcePos> find_invalid_utf8(std::string_view text);

// Finds where text nests deeper than max_nesting; nullopt when it does not.
// Exposed for tests; read_toml() runs it.
std::optional<SourcePos> find_deep_nesting(std::string_view text, size_t max_nesting);

// Turns toml11's multi-line error text into a one-line message and its position;
// fallback is used when the text names no position.
Diagnostic syntax_diagnostic(const std::string& what, const std::string& display_path,
                             SourcePos fallback);

}  // namespace cutpilot::plans
