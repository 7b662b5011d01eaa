// Ansible's INI inventory format, as its ini plugin reads it: [group], [group:vars],
// [group:children], host lines with inline key=value vars, hosts before any section ungrouped.
#include <cctype>
#include <utility>

#include "inventory/builder.h"

namespace cutpilot::inventory {
namespace {

enum class Section { kHosts, kVars, kChildren };

bool blank(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && blank(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && blank(text.back()))
    text.remove_suffix(1);
  return text;
}

// A value as Ansible's literal_eval leaves it: one pair of matching outer quotes removed.
std::string unquote(std::string_view value) {
  value = trim(value);
  if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
      value.back() == value.front())
    return std::string(value.substr(1, value.size() - 2));
  return std::string(value);
}

// Splits a host line as Python's shlex does (posix, with comments): blanks separate words,
// quotes group, a backslash escapes, and '#' at the start of a word ends the line.
bool split_words(std::string_view line, std::vector<std::string>& words, std::string& error) {
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quote) {
      if (c == quote) {
        quote = 0;
      } else if (c == '\\' && quote == '"' && i + 1 < line.size() &&
                 (line[i + 1] == '"' || line[i + 1] == '\\')) {
        word += line[++i];
      } else {
        word += c;
      }
    } else if (blank(c)) {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else if (c == '#' && !in_word) {
      break;
    } else if (c == '"' || c == '\'') {
      quote = c;
      in_word = true;
    } else if (c == '\\' && i + 1 < line.size()) {
      word += line[++i];
      in_word = true;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (quote) {
    error = "a quote (" + std::string(1, quote) + ") that is never closed";
    return false;
  }
  if (in_word) words.push_back(std::move(word));
  return true;
}

// "[name]" or "[name:kind]", with an optional comment after it.
bool parse_header(std::string_view line, std::string& name, std::string& kind) {
  const size_t close = line.find(']');
  if (close == std::string_view::npos) return false;
  const std::string_view rest = trim(line.substr(close + 1));
  if (!rest.empty() && rest.front() != '#' && rest.front() != ';') return false;
  const std::string_view inside = line.substr(1, close - 1);
  const size_t colon = inside.find(':');
  name = std::string(inside.substr(0, colon));
  kind = colon == std::string_view::npos ? "" : std::string(inside.substr(colon + 1));
  const auto bad = [](char c) { return blank(c) || c == ':' || c == '[' || c == '#'; };
  for (char c : name)
    if (bad(c)) return false;
  return !name.empty();
}

class IniReader {
 public:
  explicit IniReader(const std::string& base_dir) : builder_(base_dir) {}

  ReadResult read(std::string_view text) {
    uint32_t number = 0;
    size_t group = builder_.group("ungrouped", 0);
    Section section = Section::kHosts;
    for (size_t at = 0; at <= text.size();) {
      const size_t end = std::min(text.find('\n', at), text.size());
      const std::string_view line = trim(text.substr(at, end - at));
      at = end + 1;
      ++number;
      if (line.empty() || line.front() == '#' || line.front() == ';') continue;
      if (line.front() == '[') {
        header(line, number, group, section);
        continue;
      }
      switch (section) {
        case Section::kHosts:
          host_line(line, number, group);
          break;
        case Section::kVars:
          var_line(line, number, group);
          break;
        case Section::kChildren:
          child_line(line, number, group);
          break;
      }
    }
    // As Ansible: vars for a group nobody declares, or a child nobody declares, is an error.
    for (const auto& [g, line] : pending_vars_)
      if (!builder_.declared(g))
        builder_.error(line, "[" + builder_.group_name(g) + ":vars] is for a group that the " +
                                 "inventory never declares ([" + builder_.group_name(g) + "])");
    for (const auto& [g, line] : pending_children_)
      if (!builder_.declared(g))
        builder_.error(line, "group " + shown(builder_.group_name(g)) +
                                 " is named as a child but never declared ([" +
                                 builder_.group_name(g) + "])");
    return builder_.finish();
  }

 private:
  void header(std::string_view line, uint32_t number, size_t& group, Section& section) {
    std::string name, kind;
    if (!parse_header(line, name, kind)) {
      builder_.error(number, "not a section header ([group], [group:vars] or " +
                                 std::string("[group:children]): ") + shown(line));
      // Lines until the next valid header would land in the wrong group: drop them.
      group = builder_.group("ungrouped", 0);
      section = Section::kVars;
      skipping_ = true;
      return;
    }
    skipping_ = false;
    group = builder_.group(name, number);
    if (kind.empty() || kind == "hosts") {
      section = Section::kHosts;
      builder_.declare(group);
    } else if (kind == "children") {
      section = Section::kChildren;
      builder_.declare(group);
    } else if (kind == "vars") {
      section = Section::kVars;
      pending_vars_.emplace_back(group, number);
    } else {
      builder_.error(number, "section [" + name + ":" + kind + "] has an unknown kind " +
                                 shown(kind) + " (hosts, vars or children)");
      skipping_ = true;
    }
  }

  void host_line(std::string_view line, uint32_t number, size_t group) {
    if (skipping_) return;
    std::vector<std::string> words;
    std::string error;
    if (!split_words(line, words, error)) {
      builder_.error(number, error);
      return;
    }
    if (words.empty()) return;
    std::vector<Var> vars;
    for (size_t i = 1; i < words.size(); ++i) {
      const size_t eq = words[i].find('=');
      if (eq == std::string::npos || eq == 0) {
        builder_.error(number, "expected key=value after the host, got " + shown(words[i]));
        return;
      }
      vars.push_back({words[i].substr(0, eq), unquote(words[i].substr(eq + 1)), true, number});
    }
    for (size_t host : builder_.add_hosts(group, words[0], number))
      for (const Var& var : vars)
        builder_.host_var(host, var);
  }

  void var_line(std::string_view line, uint32_t number, size_t group) {
    if (skipping_) return;
    const size_t eq = line.find('=');
    const std::string_view key = eq == std::string_view::npos ? line : trim(line.substr(0, eq));
    if (eq == std::string_view::npos || key.empty()) {
      builder_.error(number, "expected key=value in [" + builder_.group_name(group) +
                                 ":vars], got " + shown(line));
      return;
    }
    builder_.group_var(group, {std::string(key), unquote(line.substr(eq + 1)), true, number});
  }

  void child_line(std::string_view line, uint32_t number, size_t group) {
    if (skipping_) return;
    std::vector<std::string> words;
    std::string error;
    if (!split_words(line, words, error) || words.size() != 1) {
      builder_.error(number, "expected one group name in [" + builder_.group_name(group) +
                                 ":children], got " + shown(line));
      return;
    }
    const size_t child = builder_.group(words[0], number);
    builder_.add_child(group, child, number);
    pending_children_.emplace_back(child, number);
  }

  Builder builder_;
  bool skipping_ = false;
  std::vector<std::pair<size_t, uint32_t>> pending_vars_;
  std::vector<std::pair<size_t, uint32_t>> pending_children_;
};

}  // namespace

ReadResult parse_ini(std::string_view text, const std::string& base_dir) {
  return IniReader(base_dir).read(text);
}

}  // namespace cutpilot::inventory
