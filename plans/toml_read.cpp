#include "plans/toml_read.h"

#include <algorithm>
#include <sstream>
#include <vector>

namespace cutpilot::plans {
namespace {

// Walks plan text the way TOML's lexer does for strings and comments, and keeps
// track of how deep the parsed value will nest: every '[' or '{' opens a level,
// every part of a dotted key ("a.b.c") or of a table header adds one.
class NestingScanner {
 public:
  NestingScanner(std::string_view text, size_t max_nesting) : text_(text), max_(max_nesting) {}

  std::optional<SourcePos> run() {
    while (at_ < text_.size()) {
      const char c = text_[at_];
      if (c == '\n') {
        advance(1);
        run_ = 0;
        line_start_ = true;
        continue;
      }
      if (c == ' ' || c == '\t' || c == '\r') {
        advance(1);
        continue;
      }
      const bool first_on_line = line_start_;
      line_start_ = false;
      if (c == '#') {
        skip_until_newline();
      } else if (c == '"' || c == '\'') {
        skip_string(c);
      } else if (c == '[' && first_on_line && open_.empty()) {
        // A table header: its parts set the nesting of the lines below it.
        header_ = text_.substr(at_, 2) == "[[" ? 2 : 1;
        base_ = 0;
        run_ = 0;
        advance(header_);
      } else if (header_ > 0 && c == ']') {
        base_ = run_ + header_;
        run_ = 0;
        advance(text_.substr(at_, 2) == "]]" ? 2 : 1);
        header_ = 0;
        if (base_ > max_) return pos_;
      } else if (c == '[' || c == '{') {
        open_.push_back(base_);
        base_ += run_ + 1;
        run_ = 0;
        if (base_ > max_) return pos_;
        advance(1);
      } else if (c == ']' || c == '}') {
        if (!open_.empty()) {
          base_ = open_.back();
          open_.pop_back();
        }
        run_ = 0;
        advance(1);
      } else if (c == ',') {
        run_ = 0;
        advance(1);
      } else if (c == '.') {
        ++run_;
        // A key of run_ + 1 parts under base_; in a header, base_ is 0 and [[x]] adds a level.
        if (base_ + run_ + std::max<size_t>(header_, 1) > max_) return pos_;
        advance(1);
      } else {
        advance(1);
      }
    }
    return std::nullopt;
  }

 private:
  void advance(size_t bytes) {
    for (size_t end = std::min(text_.size(), at_ + bytes); at_ < end; ++at_) {
      if (text_[at_] == '\n') {
        ++pos_.line;
        pos_.column = 1;
      } else {
        ++pos_.column;
      }
    }
  }

  void skip_until_newline() {
    while (at_ < text_.size() && text_[at_] != '\n')
      advance(1);
  }

  // Skips one string starting at at_. A single-line string also ends at a newline
  // (toml11 stops there with an error), so nothing after it is ever hidden.
  void skip_string(char quote) {
    const std::string triple(3, quote);
    const bool escapes = quote == '"';
    if (text_.substr(at_, 3) == triple) {
      advance(3);
      while (at_ < text_.size()) {
        if (escapes && text_[at_] == '\\') {
          advance(2);
        } else if (text_.substr(at_, 3) == triple) {
          advance(3);
          // Up to two more quotes belong to the string: """a""""" is `a""`.
          for (int extra = 0; extra < 2 && at_ < text_.size() && text_[at_] == quote; ++extra)
            advance(1);
          return;
        } else {
          advance(1);
        }
      }
      return;
    }
    advance(1);
    while (at_ < text_.size() && text_[at_] != '\n') {
      if (escapes && text_[at_] == '\\' && at_ + 1 < text_.size() && text_[at_ + 1] != '\n') {
        advance(2);
      } else if (text_[at_] == quote) {
        advance(1);
        return;
      } else {
        advance(1);
      }
    }
  }

  std::string_view text_;
  size_t max_;
  size_t at_ = 0;
  SourcePos pos_;
  bool line_start_ = true;
  size_t header_ = 0;         // 1 or 2 while inside [table] or [[array.of.tables]]
  size_t base_ = 0;           // nesting of the current table or container
  size_t run_ = 0;            // dots in the current key or value so far
  std::vector<size_t> open_;  // base_ of each enclosing container
};

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// One "  3 | line" + "    |   ^--- comment" pair of toml11's error text.
struct Marked {
  SourcePos pos;
  std::string comment;
};

std::vector<Marked> marked_positions(const std::string& what) {
  std::vector<Marked> found;
  std::istringstream lines(what);
  std::string line;
  uint32_t pending = 0;  // the line number of the source line just shown; 0: none
  while (std::getline(lines, line)) {
    size_t at = line.find_first_not_of(' ');
    if (at == std::string::npos) continue;
    if (line[at] >= '0' && line[at] <= '9') {
      const size_t bar = line.find(" | ", at);
      const std::string digits = line.substr(at, bar == std::string::npos ? 0 : bar - at);
      pending = 0;
      if (!digits.empty() && digits.size() < 10 &&
          digits.find_first_not_of("0123456789") == std::string::npos)
        pending = static_cast<uint32_t>(std::stoul(digits));
      continue;
    }
    if (pending && starts_with(std::string_view(line).substr(at), "| ")) {
      const size_t mark = line.find_first_not_of(' ', at + 2);
      if (mark != std::string::npos && (line[mark] == '^' || line[mark] == '~')) {
        const size_t end = line.find_first_not_of(line[mark] == '^' ? "^-" : "~", mark);
        Marked marked;
        marked.pos = {pending, static_cast<uint32_t>(mark - (at + 2) + 1)};
        if (end != std::string::npos) marked.comment = line.substr(end + 1);
        found.push_back(std::move(marked));
      }
    }
    pending = 0;
  }
  return found;
}

// "[error] toml::parse_table: invalid line format" -> "invalid line format".
std::string headline(const std::string& what) {
  std::string first = what.substr(0, what.find('\n'));
  if (starts_with(first, "[error]")) first.erase(0, 7);
  while (!first.empty() && first.front() == ' ')
    first.erase(0, 1);
  while (starts_with(first, "toml::")) {
    const size_t colon = first.find(": ");
    if (colon == std::string::npos) break;
    first.erase(0, colon + 2);
  }
  while (!first.empty() && (first.back() == '.' || first.back() == ' '))
    first.pop_back();
  return first;
}

std::string trimmed_comment(std::string comment) {
  while (!comment.empty() && (comment.back() == '.' || comment.back() == ' '))
    comment.pop_back();
  return comment;
}

// Bytes in a well-formed UTF-8 sequence starting at text[at] (Unicode table 3-7:
// no overlong forms, no surrogates, nothing above U+10FFFF); 0 when it is not one.
size_t utf8_sequence(std::string_view text, size_t at) {
  const auto byte = [&](size_t i) -> unsigned {
    return at + i < text.size() ? static_cast<unsigned char>(text[at + i]) : 0x100;
  };
  const auto tail = [&](size_t i) { return byte(i) >= 0x80 && byte(i) <= 0xbf; };
  const unsigned lead = byte(0);
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return tail(1) ? 2 : 0;
  if (lead >= 0xe0 && lead <= 0xef) {
    const unsigned low = lead == 0xe0 ? 0xa0 : 0x80, high = lead == 0xed ? 0x9f : 0xbf;
    return byte(1) >= low && byte(1) <= high && tail(2) ? 3 : 0;
  }
  if (lead >= 0xf0 && lead <= 0xf4) {
    const unsigned low = lead == 0xf0 ? 0x90 : 0x80, high = lead == 0xf4 ? 0x8f : 0xbf;
    return byte(1) >= low && byte(1) <= high && tail(2) && tail(3) ? 4 : 0;
  }
  return 0;
}

}  // namespace

std::optional<SourcePos> find_invalid_utf8(std::string_view text) {
  SourcePos pos;
  for (size_t at = 0; at < text.size();) {
    const size_t length = utf8_sequence(text, at);
    if (length == 0) return pos;
    if (text[at] == '\n') {
      ++pos.line;
      pos.column = 1;
    } else {
      pos.column += static_cast<uint32_t>(length);
    }
    at += length;
  }
  return std::nullopt;
}

std::optional<SourcePos> find_deep_nesting(std::string_view text, size_t max_nesting) {
  return NestingScanner(text, max_nesting).run();
}

Diagnostic syntax_diagnostic(const std::string& what, const std::string& display_path,
                             SourcePos fallback) {
  Diagnostic diagnostic{display_path, fallback, Severity::kError, {}};
  const std::vector<Marked> marks = marked_positions(what);
  const std::string head = headline(what);
  if (!marks.empty()) diagnostic.pos = marks.back().pos;

  // toml11 says `value ("name") already exists`; say which key, and where it was first.
  const size_t exists = head.find("\") already exists");
  const size_t open = head.find("(\"");
  if (exists != std::string::npos && open != std::string::npos && open < exists) {
    diagnostic.message = "duplicate key " + quote(head.substr(open + 2, exists - open - 2));
    if (marks.size() >= 2)
      diagnostic.message +=
          " (first defined on line " + std::to_string(marks.front().pos.line) + ")";
    return diagnostic;
  }
  diagnostic.message = "invalid TOML: " + printable(head.empty() ? "cannot parse" : head);
  const std::string comment = marks.empty() ? "" : trimmed_comment(marks.back().comment);
  if (!comment.empty() && comment != "here") diagnostic.message += " (" + printable(comment) + ")";
  return diagnostic;
}

std::optional<SourcePos> find_long_line(std::string_view text, size_t max_line_bytes) {
  uint32_t line = 1;
  for (size_t start = 0; start < text.size(); ++line) {
    const size_t end = std::min(text.find('\n', start), text.size());
    if (end - start > max_line_bytes)
      return SourcePos{line, static_cast<uint32_t>(max_line_bytes + 1)};
    start = end + 1;
  }
  return std::nullopt;
}

TomlRead read_toml(std::string_view text, const std::string& display_path,
                   const TomlLimits& limits) {
  TomlRead read;
  const auto fail = [&](SourcePos pos, std::string message) {
    read.error = Diagnostic{display_path, pos, Severity::kError, std::move(message)};
    return read;
  };
  if (text.size() > limits.max_bytes)
    return fail({}, "the plan is " + std::to_string(text.size()) + " bytes; at most " +
                        std::to_string(limits.max_bytes) + " are allowed");
  // toml11 3.7.1 reads out of bounds on bad UTF-8 in a literal string, so it never sees any.
  if (const auto bad = find_invalid_utf8(text))
    return fail(*bad, "the plan is not valid UTF-8 here");
  if (const auto long_line = find_long_line(text, limits.max_line_bytes))
    return fail(*long_line, "the line is longer than " + std::to_string(limits.max_line_bytes) +
                                " bytes (split it; a long string can be a \"\"\" string)");
  if (const auto deep = find_deep_nesting(text, limits.max_nesting))
    return fail(*deep, "the plan nests deeper than " + std::to_string(limits.max_nesting) +
                           " levels (arrays, inline tables and parts of dotted keys)");
  try {
    std::istringstream stream{std::string(text)};
    read.root = toml::parse(stream, "plan");
  } catch (const toml::exception& e) {
    read.error =
        syntax_diagnostic(e.what(), display_path, {e.location().line(), e.location().column()});
  } catch (const std::exception& e) {
    return fail({}, "invalid TOML: " + printable(e.what()));
  } catch (...) {
    return fail({}, "invalid TOML: the parser failed");
  }
  return read;
}

}  // namespace cutpilot::plans
