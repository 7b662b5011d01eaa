#include "plans/hosts.h"

#include <algorithm>
#include <cctype>
#include <map>

namespace cutpilot::plans {
namespace {

// A host as read, with where its jump was written (for the jump checks).
struct HostFields {
  HostSpec spec;
  std::optional<SourcePos> jump_pos;
};

constexpr FieldSpec<HostFields> kHostFields[] = {
    {"address",
     [](Reader& r, const Entry& e, HostFields& h) {
       if (auto v = r.string(e)) h.spec.address = std::move(*v);
     }},
    {"user",
     [](Reader& r, const Entry& e, HostFields& h) {
       if (auto v = r.string(e)) h.spec.user = std::move(*v);
     }},
    {"port",
     [](Reader& r, const Entry& e, HostFields& h) {
       if (auto v = r.integer(e, 1, 65535)) h.spec.port = static_cast<uint16_t>(*v);
     }},
    {"jump",
     [](Reader& r, const Entry& e, HostFields& h) {
       h.jump_pos = r.source().pos_of(e.value);
       if (auto v = r.string(e)) h.spec.jump = std::move(*v);
     }},
    {"sudo",
     [](Reader& r, const Entry& e, HostFields& h) {
       if (auto v = r.boolean(e)) h.spec.sudo = *v;
     }},
    {"known_hosts",
     [](Reader& r, const Entry& e, HostFields& h) {
       if (auto v = r.path(e)) h.spec.known_hosts = std::move(*v);
     }},
    {"peer_address",
     [](Reader& r, const Entry& e, HostFields& h) {
       if (auto v = r.string(e)) h.spec.peer_address = std::move(*v);
     }},
    {"role",
     [](Reader& r, const Entry& e, HostFields& h) {
       if (auto v = r.string(e)) h.spec.role = std::move(*v);
     }},
    {"connect_timeout",
     [](Reader& r, const Entry& e, HostFields& h) {
       if (auto v = r.duration(e)) h.spec.connect_timeout = *v;
     }},
    {"identity_file",
     [](Reader& r, const Entry& e, HostFields& h) {
       if (auto v = r.path(e)) h.spec.identity_file = std::move(*v);
     }},
};

// The hops of an ssh ProxyJump value: "a,b" goes through a, then b.
std::vector<std::string_view> hops(std::string_view jump) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= jump.size()) {
    const size_t comma = std::min(jump.find(',', start), jump.size());
    parts.push_back(jump.substr(start, comma - start));
    start = comma + 1;
  }
  return parts;
}

// Jumps must not lead back to the host itself, directly or through other plan hosts.
void check_jumps(Reader& reader, const std::vector<HostFields>& hosts) {
  std::map<std::string_view, size_t> by_name;
  for (size_t i = 0; i < hosts.size(); ++i)
    by_name[hosts[i].spec.name] = i;
  const size_t none = hosts.size();
  std::vector<size_t> next(hosts.size(), none);  // the plan host each first hop leads to
  for (size_t i = 0; i < hosts.size(); ++i) {
    const HostSpec& host = hosts[i].spec;
    if (!host.jump) continue;
    const SourcePos at = hosts[i].jump_pos.value_or(host.pos);
    const std::vector<std::string_view> list = hops(*host.jump);
    const auto empty = std::find(list.begin(), list.end(), std::string_view());
    const auto self = std::find_if(list.begin(), list.end(), [&](std::string_view hop) {
      return hop == host.name || hop == host.address;
    });
    if (empty != list.end()) {
      reader.error(at, "'jump' in [hosts." + printable(host.name) + "] has an empty hop in " +
                           quote(*host.jump));
    } else if (self != list.end()) {
      reader.error(at, "host " + quote(host.name) +
                           " jumps through itself (jump = " + quote(*host.jump) + ")");
    } else if (const auto found = by_name.find(list.front()); found != by_name.end()) {
      next[i] = found->second;
    }
  }
  // Each host has at most one first hop, so one walk from every host not yet seen
  // finds each cycle once, in linear time.
  std::vector<size_t> walk_of(hosts.size(), none);
  for (size_t start = 0; start < hosts.size(); ++start) {
    std::vector<size_t> path;
    size_t at = start;
    while (at != none && walk_of[at] == none) {
      walk_of[at] = start;
      path.push_back(at);
      at = next[at];
    }
    if (at == none || walk_of[at] != start) continue;  // left the plan, or met an earlier walk
    std::vector<size_t> cycle(std::find(path.begin(), path.end(), at), path.end());
    // Name the cycle from the host that comes first in the file, and report it there.
    std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
    std::string names;
    constexpr size_t kNamed = 8;  // a longer cycle is named by its start and its length
    for (size_t i = 0; i < cycle.size() && i < kNamed; ++i)
      names += quote(hosts[cycle[i]].spec.name) + " -> ";
    if (cycle.size() > kNamed) names += "... (" + std::to_string(cycle.size()) + " hosts) -> ";
    const HostFields& first = hosts[cycle.front()];
    reader.error(first.jump_pos.value_or(first.spec.pos),
                 "hosts jump through each other in a cycle: " + names + quote(first.spec.name));
  }
}

}  // namespace

bool valid_host_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return false;
  return true;
}

std::vector<HostSpec> read_hosts(Reader& reader, const toml::value* hosts,
                                 const InventoryHosts& listed) {
  // The inventory's hosts first, in its order; a table of the same name merges into one.
  std::vector<HostFields> read;
  std::map<std::string_view, size_t> from_inventory;
  for (size_t i = 0; i < listed.hosts.size(); ++i) {
    read.push_back({listed.hosts[i], std::nullopt});
    from_inventory.emplace(listed.hosts[i].name, i);
  }
  const auto entries = hosts ? reader.source().entries_in_order(*hosts)
                             : std::vector<std::pair<const std::string*, const toml::value*>>();
  if (hosts && entries.empty() && listed.file.empty())
    reader.error(reader.source().pos_of(*hosts),
                 "[hosts] is empty (add a [hosts.NAME] table for each machine)");
  for (const auto& [name, value] : entries) {
    const SourcePos at = reader.source().key_pos(*value, *name);
    if (!value->is_table()) {
      reader.error(at, "host " + quote(*name) + " must be a table ([hosts." + printable(*name) +
                           "] with address = \"...\")");
      continue;
    }
    if (!valid_host_name(*name)) {
      reader.error(at,
                   "host name " + quote(*name) + " may use only letters, digits, '-', '_' and '.'");
      continue;
    }
    HostFields host;
    host.spec.name = *name;
    host.spec.pos = reader.source().pos_of(*value);
    const std::string section = "[hosts." + *name + "]";
    read_fields<HostFields>(reader, *value, section, kHostFields, host);
    if (const auto same = from_inventory.find(host.spec.name); same != from_inventory.end()) {
      HostFields& merged = read[same->second];
      merge_host(reader, *value, host.spec, listed.entries[same->second], listed.file, merged.spec);
      merged.jump_pos = host.jump_pos;
      continue;
    }
    if (host.spec.address.empty()) host.spec.address = host.spec.name;
    read.push_back(std::move(host));
  }
  check_jumps(reader, read);
  std::vector<HostSpec> specs;
  for (HostFields& host : read)
    specs.push_back(std::move(host.spec));
  return specs;
}

}  // namespace cutpilot::plans
