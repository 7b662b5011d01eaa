// Ansible inventories (INI and YAML) read into typed hosts and groups, so a plan can take
// its hosts from where they already live.
//
// What is honoured: hosts, groups, children, group and host vars with Ansible's precedence
// (all < parent group < child group < host; groups of one depth by name), the implicit
// `all` and `ungrouped`, `host:port` and ranges (`web[01:03]`, `db-[a:c]`). What a host's
// connection needs is picked out of its vars: ansible_host, ansible_port, ansible_user,
// ansible_ssh_private_key_file, ansible_become. Jinja templates are not evaluated: one in a
// connection var is an error, never passed on as text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cutpilot::inventory {

// A value the inventory sets, with the line it is set on (for messages and conflicts).
template <typename T>
struct Setting {
  T value;
  uint32_t line = 0;
};

// One variable as it applies to a host after precedence: its text and where it was set.
struct Var {
  std::string name;
  std::string value;   // the scalar's text ("" for a list or mapping)
  bool scalar = true;  // false for a YAML list or mapping
  uint32_t line = 0;
};

// One inventory host: how to reach it, from its vars after group and host precedence.
struct Host {
  std::string name;                             // as the inventory names it; steps use this name
  uint32_t line = 0;                            // where the inventory first names it
  std::optional<Setting<std::string>> address;  // ansible_host
  std::optional<Setting<uint16_t>> port;        // ansible_port (or name:port)
  std::optional<Setting<std::string>> user;     // ansible_user
  std::optional<Setting<std::string>> identity_file;  // ansible_ssh_private_key_file, absolute
  std::optional<Setting<bool>> become;                // ansible_become
  std::vector<Var> vars;                              // every variable that applies, by name
};

// One group: every host in it or in its children (recursively), in inventory order.
struct Group {
  std::string name;
  uint32_t line = 0;  // where it is first named (0 for the implicit all and ungrouped)
  std::vector<std::string> hosts;
};

// A whole inventory: hosts in the order the file first names them, groups likewise.
struct Inventory {
  std::vector<Host> hosts;
  std::vector<Group> groups;  // includes all and ungrouped

  // The host called name, or nullptr.
  const Host* find_host(std::string_view name) const;
  // The group called name, or nullptr.
  const Group* find_group(std::string_view name) const;
};

// One thing wrong with an inventory file, at a line (0 when it is about the whole file).
struct Error {
  uint32_t line = 0;
  std::string message;
};

// An inventory and everything found wrong with it; usable only when errors is empty.
struct ReadResult {
  Inventory inventory;
  std::vector<Error> errors;

  // True when the inventory read without errors.
  bool ok() const { return errors.empty(); }
};

// Inventory files larger than this are refused before parsing.
inline constexpr size_t kMaxInventoryBytes = 8 * 1024 * 1024;
// Ranges may not expand a single host pattern into more hosts than this.
inline constexpr size_t kMaxRangeHosts = 10000;

// The format of an inventory file: YAML for .yml, .yaml and .json (as Ansible's yaml
// plugin decides), INI for anything else.
enum class Format { kIni, kYaml };

// The format Ansible would read path in, by its name.
Format format_of(std::string_view path);

// Reads the inventory file at path; relative key files resolve against its directory.
ReadResult read_inventory(const std::string& path);

// Reads INI inventory text; base_dir resolves relative key files ("" = as written).
ReadResult parse_ini(std::string_view text, const std::string& base_dir = "");

// Reads YAML inventory text; base_dir resolves relative key files ("" = as written).
ReadResult parse_yaml(std::string_view text, const std::string& base_dir = "");

// "FILE:LINE: message" (or "FILE: message" for line 0).
std::string format_error(std::string_view file, const Error& error);

}  // namespace cutpilot::inventory
