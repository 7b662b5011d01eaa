// What the loader says about a plan file: errors and warnings at a line and column.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cutpilot::plans {

// A place in the plan file; lines and columns count from 1, columns in bytes.
struct SourcePos {
  uint32_t line = 1;
  uint32_t column = 1;

  friend bool operator==(const SourcePos&, const SourcePos&) = default;
};

// How bad a diagnostic is: errors make the plan unusable, warnings do not.
enum class Severity { kError, kWarning };

// One finding about the plan file.
struct Diagnostic {
  std::string path;  // the plan file as the operator named it
  SourcePos pos;
  Severity severity = Severity::kError;
  std::string message;
};

// Formats a diagnostic as "PLAN:LINE:COL: error: message" (DESIGN.md fixes the form).
std::string format_diagnostic(const Diagnostic& diagnostic);

// True when any diagnostic is an error.
bool has_errors(const std::vector<Diagnostic>& diagnostics);

// A name or value from the plan made safe for a terminal: control bytes escaped as \xNN,
// long text shortened.
std::string printable(std::string_view text);

// Quotes a name or value from the plan for a message: 'text', control bytes escaped,
// long text shortened, so a message never carries raw terminal control sequences.
std::string quote(std::string_view text);

}  // namespace cutpilot::plans
