#include "plans/inventory_hosts.h"

#include "plans/hosts.h"

namespace cutpilot::plans {
namespace {

// "inventory.ini:12".
std::string at_line(const std::string& file, uint32_t line) {
  return file + ":" + std::to_string(line);
}

// The inventory's path for reading: relative paths are relative to the plan's directory.
std::string resolve(const std::string& inventory, const std::string& plan_path) {
  if (inventory.empty() || inventory[0] == '/') return inventory;
  const size_t slash = plan_path.rfind('/');
  if (slash == std::string::npos) return inventory;
  return plan_path.substr(0, slash + 1) + inventory;
}

HostSpec spec_of(const inventory::Host& entry, const std::string& file, SourcePos pos) {
  HostSpec spec;
  spec.name = entry.name;
  spec.address = entry.address ? entry.address->value : entry.name;
  if (entry.user) spec.user = entry.user->value;
  if (entry.port) spec.port = entry.port->value;
  if (entry.identity_file) spec.identity_file = entry.identity_file->value;
  spec.sudo = entry.become && entry.become->value;
  spec.pos = pos;
  spec.in_plan = false;
  spec.inventory_at = at_line(file, entry.line);
  return spec;
}

// The conflict message for one key: the plan's value against the inventory's.
template <typename T>
void compare(Reader& reader, const std::string& file, const HostSpec& plan, std::string_view key,
             const toml::value& value, const std::optional<T>& planned,
             const std::optional<inventory::Setting<T>>& listed, std::string_view var,
             std::string (*text)(const T&), T& merged) {
  if (!planned) return;  // the key's own error is reported already
  if (listed && !(listed->value == *planned)) {
    reader.error(reader.source().key_pos(value, key),
                 "'" + std::string(key) + "' in [hosts." + printable(plan.name) + "] is " +
                     quote(text(*planned)) + ", but " + at_line(file, listed->line) + " sets " +
                     std::string(var) + "=" + quote(text(listed->value)) + " for " +
                     quote(plan.name) + " (a setting comes from one place: drop one of them)");
    return;
  }
  merged = *planned;
}

std::string text_of(const std::string& s) {
  return s;
}
std::string port_text(const uint16_t& port) {
  return std::to_string(port);
}
std::string bool_text(const bool& b) {
  return b ? "true" : "false";
}

}  // namespace

InventoryHosts read_inventory_hosts(Reader& reader, const PlanSettings& settings,
                                    const std::string& plan_path) {
  InventoryHosts out;
  if (!settings.inventory) return out;
  out.file = *settings.inventory;
  const SourcePos at = settings.inventory_pos;
  const inventory::ReadResult read = inventory::read_inventory(resolve(out.file, plan_path));
  if (!read.ok()) {
    for (const inventory::Error& error : read.errors)
      reader.error(at, printable(inventory::format_error(out.file, error)));
    return out;
  }
  bool named_ok = true;
  for (const inventory::Host& entry : read.inventory.hosts) {
    if (!valid_host_name(entry.name)) {
      reader.error(at, at_line(out.file, entry.line) + ": host name " + quote(entry.name) +
                           " may use only letters, digits, '-', '_' and '.' (give it another " +
                           "name and ansible_host=ADDRESS)");
      named_ok = false;
      continue;
    }
    out.hosts.push_back(spec_of(entry, out.file, at));
    out.entries.push_back(entry);
  }
  if (!named_ok) return {};
  for (const inventory::Group& group : read.inventory.groups)
    out.groups.push_back({group.name, group.hosts});
  return out;
}

void merge_host(Reader& reader, const toml::value& table, const HostSpec& plan,
                const inventory::Host& entry, const std::string& file, HostSpec& merged) {
  merged.in_plan = true;
  merged.pos = plan.pos;
  for (const auto& [key, value] : reader.source().entries_in_order(table)) {
    const std::string_view k = *key;
    if (k == "address") {
      const std::optional<std::string> planned =
          plan.address.empty() ? std::nullopt : std::optional(plan.address);
      compare<std::string>(reader, file, plan, k, *value, planned, entry.address, "ansible_host",
                           text_of, merged.address);
    } else if (k == "user") {
      std::string user;
      compare<std::string>(reader, file, plan, k, *value, plan.user, entry.user, "ansible_user",
                           text_of, user);
      if (!user.empty()) merged.user = user;
    } else if (k == "port") {
      uint16_t port = 0;
      compare<uint16_t>(reader, file, plan, k, *value, plan.port, entry.port, "ansible_port",
                        port_text, port);
      if (port) merged.port = port;
    } else if (k == "sudo") {
      const std::optional<bool> planned =
          value->is_boolean() ? std::optional(plan.sudo) : std::nullopt;
      compare<bool>(reader, file, plan, k, *value, planned, entry.become, "ansible_become",
                    bool_text, merged.sudo);
    } else if (k == "identity_file") {
      std::string key_file;
      compare<std::string>(reader, file, plan, k, *value, plan.identity_file, entry.identity_file,
                           "ansible_ssh_private_key_file", text_of, key_file);
      if (!key_file.empty()) merged.identity_file = key_file;
    }
  }
  // Keys an inventory has no word for come from the table alone.
  merged.jump = plan.jump;
  merged.known_hosts = plan.known_hosts;
  merged.peer_address = plan.peer_address;
  merged.role = plan.role;
  merged.connect_timeout = plan.connect_timeout;
}

std::string HostSpec::origin() const {
  if (!inventory_at) return "plan";
  return *inventory_at + (in_plan ? "+plan" : "");
}

}  // namespace cutpilot::plans
