// Reading an inventory file: its size, its format by name, and lookups in the result.
#include <sys/stat.h>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "inventory/inventory.h"

namespace cutpilot::inventory {

const Host* Inventory::find_host(std::string_view name) const {
  for (const Host& host : hosts)
    if (host.name == name) return &host;
  return nullptr;
}

const Group* Inventory::find_group(std::string_view name) const {
  for (const Group& group : groups)
    if (group.name == name) return &group;
  return nullptr;
}

Format format_of(std::string_view path) {
  for (std::string_view ext : {".yml", ".yaml", ".json"})
    if (path.size() >= ext.size() && path.substr(path.size() - ext.size()) == ext)
      return Format::kYaml;
  return Format::kIni;
}

ReadResult read_inventory(const std::string& path) {
  const auto fail = [](std::string message) {
    ReadResult result;
    result.errors.push_back({0, std::move(message)});
    return result;
  };
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0)
    return fail(std::string("cannot read the inventory: ") + std::strerror(errno));
  if (S_ISDIR(info.st_mode))
    return fail("cannot read the inventory: it is a directory (name the inventory file)");
  // A device or a pipe could be read forever (/dev/zero); an inventory is a file.
  if (!S_ISREG(info.st_mode)) return fail("cannot read the inventory: it is not a regular file");
  if (static_cast<size_t>(info.st_size) > kMaxInventoryBytes)
    return fail("the inventory is larger than " + std::to_string(kMaxInventoryBytes >> 20) +
                " MiB");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (!in || !(text << in.rdbuf()))
    return fail(std::string("cannot read the inventory: ") + std::strerror(errno));
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  const std::string body = text.str();
  if (body.find('\0') != std::string::npos)
    return fail("the inventory is not text (it holds a NUL byte)");
  return format_of(path) == Format::kYaml ? parse_yaml(body, dir) : parse_ini(body, dir);
}

std::string format_error(std::string_view file, const Error& error) {
  std::string out(file);
  if (error.line > 0) out += ":" + std::to_string(error.line);
  return out + ": " + error.message;
}

}  // namespace cutpilot::inventory
