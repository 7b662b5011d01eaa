// Ansible's YAML inventory format, as its yaml plugin reads it: top-level groups (usually
// `all:`), each a mapping of `hosts`, `children` and `vars`. Parsed with yaml-cpp.
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <string>

#include "inventory/builder.h"

namespace cutpilot::inventory {
namespace {

// Groups may nest this deep; deeper is a runaway document, not an inventory.
constexpr int kMaxDepth = 64;

uint32_t line_of(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return mark.line < 0 ? 0 : static_cast<uint32_t>(mark.line + 1);
}

class YamlReader {
 public:
  explicit YamlReader(const std::string& base_dir) : builder_(base_dir) {}

  ReadResult read(std::string_view text) {
    YAML::Node root;
    try {
      root = YAML::Load(std::string(text));
    } catch (const YAML::ParserException& e) {
      ReadResult result;
      result.errors.push_back({static_cast<uint32_t>(e.mark.line + 1), "not valid YAML: " + e.msg});
      return result;
    }
    if (root.IsNull()) return builder_.finish();  // an empty file: no hosts
    if (!root.IsMap()) {
      builder_.error(line_of(root), "the inventory must be a mapping of groups (all: ...)");
      return builder_.finish();
    }
    for (const auto& entry : root) {
      const std::string name = entry.first.as<std::string>("");
      if (!key_ok(entry.first, "a group name")) continue;
      const size_t g = builder_.group(name, line_of(entry.first));
      builder_.declare(g);
      group(g, entry.second, 0);
    }
    return builder_.finish();
  }

 private:
  bool key_ok(const YAML::Node& key, std::string_view what) {
    if (key.IsScalar() && !key.Scalar().empty()) return true;
    builder_.error(line_of(key), std::string(what) + " must be a plain name");
    return false;
  }

  void group(size_t g, const YAML::Node& node, int depth) {
    const std::string& name = builder_.group_name(g);
    if (node.IsNull()) return;
    if (!node.IsMap()) {
      builder_.error(line_of(node),
                     "group " + shown(name) + " must be a mapping with hosts, children or vars");
      return;
    }
    if (depth > kMaxDepth) {
      builder_.error(line_of(node), "groups nest deeper than " + std::to_string(kMaxDepth));
      return;
    }
    for (const auto& entry : node) {
      if (!key_ok(entry.first, "a key in group " + shown(name))) continue;
      const std::string key = entry.first.Scalar();
      const YAML::Node& value = entry.second;
      if (value.IsNull()) continue;
      if (key == "hosts") {
        hosts(g, value);
      } else if (key == "vars") {
        if (!value.IsMap()) {
          builder_.error(line_of(value), "vars of group " + shown(name) + " must be a mapping");
          continue;
        }
        for (const auto& var : value)
          if (auto read = variable(var.first, var.second)) builder_.group_var(g, std::move(*read));
      } else if (key == "children") {
        if (!value.IsMap()) {
          builder_.error(line_of(value),
                         "children of group " + shown(name) + " must be a mapping of groups");
          continue;
        }
        for (const auto& child : value) {
          if (!key_ok(child.first, "a child group name")) continue;
          const size_t c = builder_.group(child.first.Scalar(), line_of(child.first));
          builder_.declare(c);
          builder_.add_child(g, c, line_of(child.first));
          group(c, child.second, depth + 1);
        }
      } else {
        // Ansible skips such a key with a warning; a misspelt `hosts` would lose hosts silently.
        builder_.error(line_of(entry.first), "unknown key " + shown(key) + " in group " +
                                                 shown(name) + " (hosts, children or vars)");
      }
    }
  }

  void hosts(size_t g, const YAML::Node& value) {
    if (!value.IsMap()) {
      builder_.error(line_of(value), "hosts of group " + shown(builder_.group_name(g)) +
                                         " must be a mapping (NAME: or NAME: {vars})");
      return;
    }
    for (const auto& entry : value) {
      if (!key_ok(entry.first, "a host name")) continue;
      const uint32_t line = line_of(entry.first);
      const YAML::Node& vars = entry.second;
      if (!vars.IsNull() && !vars.IsMap()) {
        builder_.error(line_of(vars), "host " + shown(entry.first.Scalar()) +
                                          " must map to its vars (a mapping) or nothing");
        continue;
      }
      std::vector<Var> read;
      if (vars.IsMap())
        for (const auto& var : vars)
          if (auto one = variable(var.first, var.second)) read.push_back(std::move(*one));
      for (size_t host : builder_.add_hosts(g, entry.first.Scalar(), line))
        for (const Var& var : read)
          builder_.host_var(host, var);
    }
  }

  // One variable; a null value is as if unset.
  std::optional<Var> variable(const YAML::Node& key, const YAML::Node& value) {
    if (!key_ok(key, "a variable name")) return std::nullopt;
    if (value.IsNull()) return std::nullopt;
    Var var{key.Scalar(), "", value.IsScalar(), line_of(key)};
    if (value.IsScalar()) var.value = value.Scalar();
    return var;
  }

  Builder builder_;
};

}  // namespace

ReadResult parse_yaml(std::string_view text, const std::string& base_dir) {
  try {
    return YamlReader(base_dir).read(text);
  } catch (const YAML::Exception& e) {
    ReadResult result;
    result.errors.push_back({static_cast<uint32_t>(e.mark.line + 1), "cannot read: " + e.msg});
    return result;
  }
}

}  // namespace cutpilot::inventory
