// What the INI and YAML readers share: collecting groups, hosts, children and vars as the
// file names them, then resolving Ansible's precedence into typed hosts. Internal to inventory/.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "inventory/inventory.h"

namespace cutpilot::inventory {

// A host pattern after ranges: the names it stands for, and the port a "name:port" gives.
struct HostPattern {
  std::vector<std::string> names;
  std::optional<uint16_t> port;
};

// Expands "web[01:03].example.com:2222" into names and a port; nullopt with error set when
// the pattern is malformed or expands into more than kMaxRangeHosts names.
std::optional<HostPattern> expand_host_pattern(std::string_view pattern, std::string& error);

// Collects an inventory as a reader walks it, and resolves it at the end.
class Builder {
 public:
  // base_dir: where relative key files are resolved ("" = left as written).
  explicit Builder(std::string base_dir);

  // The group called name (created, with line, when new).
  size_t group(std::string_view name, uint32_t line);
  // Marks a group as declared by a section or a mapping of its own (not only referred to).
  void declare(size_t group) { groups_[group].declared = true; }
  // Whether a group was declared (an INI [name:vars] for an undeclared group is an error).
  bool declared(size_t group) const { return groups_[group].declared; }
  // The group's name.
  const std::string& group_name(size_t group) const { return groups_[group].name; }
  // Puts every host of a pattern into group (creating the hosts); the pattern's port becomes
  // each host's ansible_port. Returns the hosts' indexes (empty on error, which is recorded).
  std::vector<size_t> add_hosts(size_t group, std::string_view pattern, uint32_t line);
  // Makes child a child group of parent; a cycle is an error at line.
  void add_child(size_t parent, size_t child, uint32_t line);
  // Sets a group variable (a later setting of the same name wins).
  void group_var(size_t group, Var var);
  // Sets a host variable (a later setting of the same name wins).
  void host_var(size_t host, Var var);
  // Records an error at line.
  void error(uint32_t line, std::string message);

  // Resolves groups, precedence and connection settings into the result.
  ReadResult finish();

 private:
  struct GroupData {
    std::string name;
    uint32_t line = 0;
    bool declared = false;
    std::vector<size_t> hosts;
    std::vector<size_t> children;
    std::vector<size_t> parents;
    std::vector<Var> vars;
  };
  struct HostData {
    std::string name;
    uint32_t line = 0;
    std::vector<size_t> groups;
    std::vector<Var> vars;
  };

  bool reaches(size_t from, size_t to) const;
  std::vector<Var> resolve_vars(const HostData& host, const std::vector<int>& depth) const;
  Host connection(const HostData& data, std::vector<Var> vars);

  std::string base_dir_;
  std::vector<GroupData> groups_;
  std::map<std::string, size_t, std::less<>> group_index_;
  std::vector<HostData> hosts_;
  std::map<std::string, size_t, std::less<>> host_index_;
  std::vector<Error> errors_;
};

// A name or value from the inventory quoted for a message: control bytes as '?', long text
// shortened.
std::string shown(std::string_view text);

// Sets var in vars, replacing one of the same name.
void set_var(std::vector<Var>& vars, Var var);

}  // namespace cutpilot::inventory
