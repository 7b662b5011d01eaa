#include "inventory/builder.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <set>
#include <span>

namespace cutpilot::inventory {
namespace {

constexpr std::string_view kAll = "all";
constexpr std::string_view kUngrouped = "ungrouped";

// The variables a connection reads, each with its older ansible_ssh_* spelling.
constexpr std::string_view kHostVars[] = {"ansible_host", "ansible_ssh_host"};
constexpr std::string_view kPortVars[] = {"ansible_port", "ansible_ssh_port"};
constexpr std::string_view kUserVars[] = {"ansible_user", "ansible_ssh_user"};
constexpr std::string_view kKeyVars[] = {"ansible_ssh_private_key_file",
                                         "ansible_private_key_file"};
constexpr std::string_view kBecomeVars[] = {"ansible_become"};

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c));
  });
}

// Ansible's boolean(): yes/no, true/false, on/off, y/n, t/f, 1/0, in any case.
std::optional<bool> parse_bool(std::string_view text) {
  std::string lower;
  for (char c : text)
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (std::string_view yes : {"yes", "y", "true", "t", "on", "1", "1.0"})
    if (lower == yes) return true;
  for (std::string_view no : {"no", "n", "false", "f", "off", "0", "0.0"})
    if (lower == no) return false;
  return std::nullopt;
}

// Expands the first [a:b] or [a:b:step] range of pattern into out (recursing for later ones).
bool expand_ranges(const std::string& pattern, std::vector<std::string>& out, std::string& error) {
  const size_t open = pattern.find('[');
  if (open == std::string::npos) {
    out.push_back(pattern);
    return true;
  }
  const size_t close = pattern.find(']', open);
  if (close == std::string::npos) {
    error = "host pattern " + shown(pattern) + " has '[' without ']'";
    return false;
  }
  const std::string inside = pattern.substr(open + 1, close - open - 1);
  std::vector<std::string> parts;
  for (size_t at = 0;;) {
    const size_t colon = inside.find(':', at);
    parts.push_back(inside.substr(at, colon - at));
    if (colon == std::string::npos) break;
    at = colon + 1;
  }
  if (parts.size() < 2 || parts.size() > 3) {
    error = "host range " + shown(inside) + " must be [begin:end] or [begin:end:step]";
    return false;
  }
  std::string begin = parts[0].empty() ? "0" : parts[0];
  const std::string& end = parts[1];
  long step = 1;
  if (parts.size() == 3) {
    if (!all_digits(parts[2]) || (step = std::strtol(parts[2].c_str(), nullptr, 10)) < 1) {
      error = "host range " + shown(inside) + " has a step that is not a positive number";
      return false;
    }
  }
  const std::string head = pattern.substr(0, open), tail = pattern.substr(close + 1);
  std::vector<std::string> items;
  if (all_digits(begin) && all_digits(end)) {
    const bool padded = begin.size() > 1 && begin[0] == '0';
    if (padded && begin.size() != end.size()) {
      error = "host range " + shown(inside) + " pads its begin but not its end to one width";
      return false;
    }
    const long from = std::strtol(begin.c_str(), nullptr, 10);
    const long to = std::strtol(end.c_str(), nullptr, 10);
    if (to < from || begin.size() > 9 || end.size() > 9 ||
        static_cast<size_t>((to - from) / step) >= kMaxRangeHosts) {
      error = "host range " + shown(inside) + " is empty or longer than " +
              std::to_string(kMaxRangeHosts) + " hosts";
      return false;
    }
    for (long n = from; n <= to; n += step) {
      std::string number = std::to_string(n);
      if (padded && number.size() < begin.size())
        number.insert(0, begin.size() - number.size(), '0');
      items.push_back(std::move(number));
    }
  } else if (begin.size() == 1 && end.size() == 1 &&
             std::isalpha(static_cast<unsigned char>(begin[0])) &&
             std::isalpha(static_cast<unsigned char>(end[0])) && begin[0] <= end[0]) {
    for (int c = begin[0]; c <= end[0]; c += static_cast<int>(step))
      items.push_back(std::string(1, static_cast<char>(c)));
  } else {
    error = "host range " + shown(inside) + " must run from a number to a larger one, or " +
            "from a letter to a later one";
    return false;
  }
  for (const std::string& item : items) {
    if (!expand_ranges(head + item + tail, out, error)) return false;
    if (out.size() > kMaxRangeHosts) {
      error = "host pattern " + shown(pattern) + " expands to more than " +
              std::to_string(kMaxRangeHosts) + " hosts";
      return false;
    }
  }
  return true;
}

}  // namespace

std::string shown(std::string_view text) {
  std::string out = "'";
  for (char c : text.substr(0, 200))
    out += std::iscntrl(static_cast<unsigned char>(c)) ? '?' : c;
  return out + (text.size() > 200 ? "...'" : "'");
}

void set_var(std::vector<Var>& vars, Var var) {
  for (Var& existing : vars)
    if (existing.name == var.name) {
      existing = std::move(var);
      return;
    }
  vars.push_back(std::move(var));
}

std::optional<HostPattern> expand_host_pattern(std::string_view pattern, std::string& error) {
  HostPattern result;
  std::string name(pattern);
  // "name:port": the last ':' outside a range, followed by digits only.
  const size_t colon = name.rfind(':');
  if (colon != std::string::npos && name.find(']', colon) == std::string::npos &&
      std::count(name.begin(), name.end(), ':') - std::count(name.begin(), name.end(), '[') <= 1) {
    const std::string port = name.substr(colon + 1);
    const long number = all_digits(port) && port.size() <= 5 ? std::atol(port.c_str()) : 0;
    if (number < 1 || number > 65535) {
      error = "host " + shown(pattern) + " has a port that is not a number from 1 to 65535";
      return std::nullopt;
    }
    result.port = static_cast<uint16_t>(number);
    name.resize(colon);
  }
  if (name.empty()) {
    error = "a host line without a host name";
    return std::nullopt;
  }
  if (!expand_ranges(name, result.names, error)) return std::nullopt;
  return result;
}

Builder::Builder(std::string base_dir) : base_dir_(std::move(base_dir)) {
  declare(group(kAll, 0));
  declare(group(kUngrouped, 0));
}

size_t Builder::group(std::string_view name, uint32_t line) {
  if (const auto found = group_index_.find(name); found != group_index_.end()) return found->second;
  groups_.push_back({std::string(name), line});
  group_index_.emplace(std::string(name), groups_.size() - 1);
  return groups_.size() - 1;
}

std::vector<size_t> Builder::add_hosts(size_t group, std::string_view pattern, uint32_t line) {
  std::string why;
  const auto expanded = expand_host_pattern(pattern, why);
  if (!expanded) {
    error(line, why);
    return {};
  }
  std::vector<size_t> added;
  for (const std::string& name : expanded->names) {
    auto found = host_index_.find(name);
    if (found == host_index_.end()) {
      hosts_.push_back({name, line});
      found = host_index_.emplace(name, hosts_.size() - 1).first;
    }
    const size_t host = found->second;
    HostData& data = hosts_[host];
    if (std::find(data.groups.begin(), data.groups.end(), group) == data.groups.end()) {
      data.groups.push_back(group);
      groups_[group].hosts.push_back(host);
    }
    if (expanded->port)
      host_var(host, {"ansible_port", std::to_string(*expanded->port), true, line});
    added.push_back(host);
  }
  return added;
}

bool Builder::reaches(size_t from, size_t to) const {
  if (from == to) return true;
  for (size_t child : groups_[from].children)
    if (reaches(child, to)) return true;
  return false;
}

void Builder::add_child(size_t parent, size_t child, uint32_t line) {
  GroupData& p = groups_[parent];
  if (std::find(p.children.begin(), p.children.end(), child) != p.children.end()) return;
  if (groups_[child].name == kAll) {
    error(line, "group 'all' cannot be a child of " + shown(p.name) + " (it holds every group)");
    return;
  }
  if (reaches(child, parent)) {
    error(line, "group " + shown(groups_[child].name) + " is a child of " + shown(p.name) +
                    ", which is already inside it (groups may not contain each other in a cycle)");
    return;
  }
  p.children.push_back(child);
  groups_[child].parents.push_back(parent);
}

void Builder::group_var(size_t group, Var var) {
  set_var(groups_[group].vars, std::move(var));
}

void Builder::host_var(size_t host, Var var) {
  set_var(hosts_[host].vars, std::move(var));
}

void Builder::error(uint32_t line, std::string message) {
  for (const Error& e : errors_)
    if (e.line == line && e.message == message) return;  // a group var wrong for every host
  errors_.push_back({line, std::move(message)});
}

std::vector<Var> Builder::resolve_vars(const HostData& host, const std::vector<int>& depth) const {
  // Every group the host is in, directly or through children, applied from all down to
  // the deepest; groups of one depth by name (Ansible's order without group priorities).
  std::set<size_t> seen;
  std::vector<size_t> stack(host.groups.begin(), host.groups.end());
  stack.push_back(group_index_.find(kAll)->second);
  while (!stack.empty()) {
    const size_t g = stack.back();
    stack.pop_back();
    if (!seen.insert(g).second) continue;
    for (size_t parent : groups_[g].parents)
      stack.push_back(parent);
  }
  std::vector<size_t> order(seen.begin(), seen.end());
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return depth[a] != depth[b] ? depth[a] < depth[b] : groups_[a].name < groups_[b].name;
  });
  std::vector<Var> vars;
  for (size_t g : order)
    for (const Var& var : groups_[g].vars)
      set_var(vars, var);
  for (const Var& var : host.vars)
    set_var(vars, var);
  return vars;
}

Host Builder::connection(const HostData& data, std::vector<Var> vars) {
  Host host;
  host.name = data.name;
  host.line = data.line;
  // The first of names that is set, checked to be plain text a connection can use.
  const auto text = [&](std::span<const std::string_view> names) -> const Var* {
    for (std::string_view name : names)
      for (const Var& var : vars) {
        if (var.name != name) continue;
        if (!var.scalar) {
          error(var.line, var.name + " must be a single value, not a list or mapping");
          return nullptr;
        }
        if (var.value.find("{{") != std::string::npos ||
            var.value.find("{%") != std::string::npos) {
          error(var.line, var.name + " is a Jinja template (" + shown(var.value) +
                              "); cutpilot does not evaluate templates: write the value itself");
          return nullptr;
        }
        if (var.value.empty()) {
          error(var.line, var.name + " is empty");
          return nullptr;
        }
        return &var;
      }
    return nullptr;
  };
  if (const Var* v = text(kHostVars)) host.address = Setting<std::string>{v->value, v->line};
  if (const Var* v = text(kUserVars)) host.user = Setting<std::string>{v->value, v->line};
  if (const Var* v = text(kPortVars)) {
    const long port =
        all_digits(v->value) && v->value.size() <= 5 ? std::atol(v->value.c_str()) : 0;
    if (port < 1 || port > 65535)
      error(v->line, v->name + " must be a port number from 1 to 65535, not " + shown(v->value));
    else
      host.port = Setting<uint16_t>{static_cast<uint16_t>(port), v->line};
  }
  if (const Var* v = text(kKeyVars)) {
    std::string path = v->value;
    const char* home = std::getenv("HOME");
    if ((path == "~" || path.rfind("~/", 0) == 0) && home && *home)
      path = home + path.substr(1);
    else if (path[0] != '/' && path[0] != '~' && !base_dir_.empty())
      path = base_dir_ + "/" + path;
    host.identity_file = Setting<std::string>{path, v->line};
  }
  if (const Var* v = text(kBecomeVars)) {
    if (const auto become = parse_bool(v->value))
      host.become = Setting<bool>{*become, v->line};
    else
      error(v->line, v->name + " must be true or false (yes/no), not " + shown(v->value));
  }
  // cutpilot becomes root with sudo -n and nothing else: another user or method would be
  // carried out wrongly without a word, so it is refused.
  static constexpr std::string_view kBecomeUser[] = {"ansible_become_user", "ansible_sudo_user"};
  static constexpr std::string_view kBecomeMethod[] = {"ansible_become_method"};
  if (const Var* v = text(kBecomeUser); v && v->value != "root")
    error(v->line, v->name + " = " + shown(v->value) +
                       ": cutpilot's sudo runs commands as root only; a step that must run as " +
                       v->value + " says so itself (exec = { run = [\"sudo\", \"-u\", \"" +
                       v->value + "\", ...] })");
  if (const Var* v = text(kBecomeMethod); v && v->value != "sudo")
    error(v->line, v->name + " = " + shown(v->value) + ": cutpilot becomes root with sudo only");
  host.vars = std::move(vars);
  return host;
}

ReadResult Builder::finish() {
  const size_t all = group_index_.find(kAll)->second;
  const size_t ungrouped = group_index_.find(kUngrouped)->second;
  // Every group without a parent is a child of all; a host in no group but all is ungrouped.
  for (size_t g = 0; g < groups_.size(); ++g)
    if (g != all && groups_[g].parents.empty()) add_child(all, g, groups_[g].line);
  for (size_t h = 0; h < hosts_.size(); ++h) {
    std::vector<size_t>& in = hosts_[h].groups;
    const bool grouped =
        std::any_of(in.begin(), in.end(), [&](size_t g) { return g != all && g != ungrouped; });
    const bool listed = std::find(in.begin(), in.end(), ungrouped) != in.end();
    if (!grouped && !listed) {
      in.push_back(ungrouped);
      groups_[ungrouped].hosts.push_back(h);
    } else if (grouped && listed) {  // named before any section, and in a group later
      std::erase(in, ungrouped);
      std::erase(groups_[ungrouped].hosts, h);
    }
  }
  // A group's depth is its longest path from all: child group vars win over parent ones.
  std::vector<int> depth(groups_.size(), -1);
  const std::function<int(size_t)> depth_of = [&](size_t g) -> int {
    if (depth[g] >= 0) return depth[g];
    int deepest = 0;
    for (size_t parent : groups_[g].parents)
      deepest = std::max(deepest, depth_of(parent) + 1);
    return depth[g] = deepest;
  };
  for (size_t g = 0; g < groups_.size(); ++g)
    depth_of(g);

  ReadResult result;
  for (const HostData& data : hosts_)
    result.inventory.hosts.push_back(connection(data, resolve_vars(data, depth)));
  for (size_t g = 0; g < groups_.size(); ++g) {
    std::set<size_t> members;
    std::vector<size_t> stack = {g};
    std::set<size_t> visited;
    while (!stack.empty()) {
      const size_t at = stack.back();
      stack.pop_back();
      if (!visited.insert(at).second) continue;
      members.insert(groups_[at].hosts.begin(), groups_[at].hosts.end());
      stack.insert(stack.end(), groups_[at].children.begin(), groups_[at].children.end());
    }
    Group group{groups_[g].name, groups_[g].line, {}};
    for (size_t h : members)  // host indexes are inventory order
      group.hosts.push_back(hosts_[h].name);
    result.inventory.groups.push_back(std::move(group));
  }
  std::stable_sort(errors_.begin(), errors_.end(),
                   [](const Error& a, const Error& b) { return a.line < b.line; });
  result.errors = std::move(errors_);
  return result;
}

}  // namespace cutpilot::inventory
