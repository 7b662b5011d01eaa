#include "plans/diagnostic.h"

#include <algorithm>
#include <cstdio>

namespace cutpilot::plans {
namespace {

// Longer names or values are cut in messages; the line and column lead to the rest.
constexpr size_t kMaxQuotedBytes = 80;

}  // namespace

std::string format_diagnostic(const Diagnostic& diagnostic) {
  return diagnostic.path + ":" + std::to_string(diagnostic.pos.line) + ":" +
         std::to_string(diagnostic.pos.column) + ": " +
         (diagnostic.severity == Severity::kError ? "error" : "warning") + ": " +
         diagnostic.message;
}

bool has_errors(const std::vector<Diagnostic>& diagnostics) {
  return std::any_of(diagnostics.begin(), diagnostics.end(),
                     [](const Diagnostic& d) { return d.severity == Severity::kError; });
}

std::string quote(std::string_view text) {
  return "'" + printable(text) + "'";
}

std::string printable(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    // Cut only at the start of a UTF-8 character, never inside one.
    if (i >= kMaxQuotedBytes && (static_cast<unsigned char>(text[i]) & 0xc0) != 0x80) {
      out += "...";
      break;
    }
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out.push_back(static_cast<char>(byte));
    }
  }
  return out;
}

}  // namespace cutpilot::plans
