#include "plans/load.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "plans/fields.h"
#include "plans/hosts.h"
#include "plans/inventory_hosts.h"
#include "plans/steps.h"
#include "plans/toml_read.h"
#include "transport/sha256.h"

namespace cutpilot::plans {
namespace {

// The top-level tables, found before any of them is read (vars come first).
struct TopLevel {
  const toml::value* plan = nullptr;
  const toml::value* vars = nullptr;
  const toml::value* hosts = nullptr;
  const toml::value* steps = nullptr;
};

void take_table(Reader& reader, const Entry& entry, const toml::value*& slot) {
  if (!entry.value.is_table()) {
    reader.error(reader.source().key_pos(entry.value, entry.key),
                 quote(entry.key) + " must be a table ([" + std::string(entry.key) + "])");
    return;
  }
  slot = &entry.value;
}

constexpr FieldSpec<TopLevel> kTopLevelFields[] = {
    {"plan", [](Reader& r, const Entry& e, TopLevel& t) { take_table(r, e, t.plan); }},
    {"vars", [](Reader& r, const Entry& e, TopLevel& t) { take_table(r, e, t.vars); }},
    {"hosts", [](Reader& r, const Entry& e, TopLevel& t) { take_table(r, e, t.hosts); }},
    {"steps",
     [](Reader& r, const Entry& e, TopLevel& t) {
       const bool tables =
           e.value.is_array() && std::all_of(e.value.as_array().begin(), e.value.as_array().end(),
                                             [](const toml::value& v) { return v.is_table(); });
       if (!tables) {
         r.error(r.source().key_pos(e.value, e.key),
                 "'steps' must be an array of tables ([[steps]])");
         return;
       }
       t.steps = &e.value;
     }},
};

constexpr FieldSpec<PlanSettings> kPlanFields[] = {
    {"name",
     [](Reader& r, const Entry& e, PlanSettings& p) {
       if (auto v = r.string(e)) p.name = std::move(*v);
     }},
    {"description",
     [](Reader& r, const Entry& e, PlanSettings& p) {
       if (auto v = r.string(e, /*allow_empty=*/true)) p.description = std::move(*v);
     }},
    {"downtime_budget",
     [](Reader& r, const Entry& e, PlanSettings& p) {
       const auto budget = r.duration(e);
       if (!budget) return;
       if (*budget % std::chrono::seconds(1) != std::chrono::milliseconds(0)) {
         r.value_error(e, "must be a whole number of seconds");
         return;
       }
       p.downtime_budget = std::chrono::duration_cast<std::chrono::seconds>(*budget);
     }},
    {"approval_time",
     [](Reader& r, const Entry& e, PlanSettings& p) {
       if (auto v = r.duration(e)) p.approval_time = *v;
     }},
    {"ssh_config",
     [](Reader& r, const Entry& e, PlanSettings& p) {
       if (r.expands_to_nothing(e)) return;  // as if absent: ssh's own files
       p.ssh_config_set = true;
       if (auto v = r.path(e)) p.ssh_config = std::move(*v);
     }},
    {"known_hosts",
     [](Reader& r, const Entry& e, PlanSettings& p) {
       if (r.expands_to_nothing(e)) return;  // as if absent: ssh's own files
       p.known_hosts_set = true;
       if (auto v = r.path(e)) p.known_hosts = std::move(*v);
     }},
    {"inventory",
     [](Reader& r, const Entry& e, PlanSettings& p) {
       p.inventory_pos = r.source().pos_of(e.value);
       if (auto v = r.path(e)) p.inventory = std::move(*v);
     }},
};

// A default path: "~/" expanded when HOME is set, else left for the SSH layer to expand.
std::string default_path(Expander& expander, std::string_view path) {
  Expansion expansion = expander.expand_path(path);
  return expansion.ok() ? expansion.text : std::string(path);
}

PlanSettings read_settings(Reader& reader, const toml::value& table) {
  PlanSettings settings;
  read_fields<PlanSettings>(reader, table, "[plan]", kPlanFields, settings);
  if (!table.contains("name"))
    reader.error(reader.source().pos_of(table),
                 "[plan] has no 'name' (name = \"...\" names the plan)");
  if (!settings.ssh_config_set)
    settings.ssh_config = default_path(reader.expander(), kDefaultSshConfig);
  if (!settings.known_hosts_set)
    settings.known_hosts = default_path(reader.expander(), kDefaultKnownHosts);
  return settings;
}

// Reads [vars]: each value is a string, an integer or a boolean; strings may use
// ${env:NAME} and other variables.
ResolvedVars read_vars(Reader& reader, const toml::value* table, const EnvLookup& env) {
  Vars raw;
  std::map<std::string, SourcePos, std::less<>> where;
  std::vector<std::string> wrong_type;
  if (table) {
    for (const auto& [key, value] : reader.source().entries_in_order(*table)) {
      where[*key] = reader.source().pos_of(*value);
      if (value->is_string()) {
        raw[*key] = value->as_string().str;
      } else if (value->is_integer()) {
        raw[*key] = std::to_string(value->as_integer());
      } else if (value->is_boolean()) {
        raw[*key] = value->as_boolean() ? "true" : "false";
      } else {
        reader.error(reader.source().pos_of(*value),
                     quote(*key) + " in [vars] must be a string, an integer or a boolean");
        raw[*key] = "";  // so that uses of it are not also "unknown variable" errors
        wrong_type.push_back(*key);
      }
    }
  }
  ResolvedVars resolved = resolve_vars(raw, env);
  for (const std::string& name : wrong_type) {
    resolved.vars.erase(name);
    resolved.broken.insert(name);
  }
  for (const VarError& error : resolved.errors) {
    const auto at = where.find(error.name);
    reader.error(at == where.end() ? SourcePos{} : at->second,
                 quote(error.name) + " in [vars]: " + error.message);
  }
  return resolved;
}

// Reads the whole document; the caller has already parsed it.
class PlanLoader {
 public:
  PlanLoader(const std::string& path, const EnvLookup& env) : path_(path), env_(env) {}

  LoadResult load(const toml::value& root, std::string_view text) {
    LoadResult result;
    result.plan.path = path_;
    result.plan.sha256 = transport::sha256_hex(text);

    const SourceMap source(text);
    Expander bootstrap({}, env_);
    Reader top(path_, source, bootstrap);
    TopLevel tables;
    read_fields<TopLevel>(top, root, "the top level of the plan", kTopLevelFields, tables);
    std::vector<Diagnostic> diagnostics = std::move(top.diagnostics());

    ResolvedVars vars = read_vars(top, tables.vars, env_);
    append(diagnostics, top.diagnostics());
    Expander expander(vars.vars, env_, vars.broken);
    Reader reader(path_, source, expander);
    result.plan.vars = std::move(vars.vars);

    if (tables.plan) {
      result.plan.settings = read_settings(reader, *tables.plan);
    } else if (!root.contains("plan")) {
      reader.error({}, "the plan has no [plan] table (it needs at least [plan] name = \"...\")");
    }
    const InventoryHosts listed = read_inventory_hosts(reader, result.plan.settings, path_);
    if (tables.hosts || result.plan.settings.inventory) {
      result.plan.hosts = read_hosts(reader, tables.hosts, listed);
    } else if (!root.contains("hosts")) {
      reader.error({}, "the plan has no hosts (add a [hosts.NAME] table for each machine)");
    }
    result.plan.groups = listed.groups;
    if (tables.steps)
      result.plan.steps = read_steps(reader, *tables.steps, result.plan.hosts, result.plan.groups);
    append(diagnostics, reader.diagnostics());
    std::stable_sort(
        diagnostics.begin(), diagnostics.end(), [](const Diagnostic& a, const Diagnostic& b) {
          return a.pos.line != b.pos.line ? a.pos.line < b.pos.line : a.pos.column < b.pos.column;
        });
    result.diagnostics = std::move(diagnostics);
    return result;
  }

 private:
  static void append(std::vector<Diagnostic>& to, std::vector<Diagnostic>& from) {
    to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
    from.clear();
  }

  const std::string& path_;
  const EnvLookup& env_;
};

LoadResult failed(const std::string& path, std::string message) {
  LoadResult result;
  result.plan.path = path;
  result.diagnostics.push_back({path, {}, Severity::kError, std::move(message)});
  return result;
}

}  // namespace

const HostSpec* Plan::find_host(std::string_view name) const {
  for (const HostSpec& host : hosts)
    if (host.name == name) return &host;
  return nullptr;
}

LoadResult load_plan_text(std::string_view text, const std::string& display_path,
                          const EnvLookup& env) {
  try {
    TomlRead read =
        read_toml(text, display_path, {kMaxPlanBytes, kMaxPlanLineBytes, kMaxPlanNesting});
    if (!read.root) {
      LoadResult result;
      result.plan.path = display_path;
      result.plan.sha256 = transport::sha256_hex(text);
      if (read.error) result.diagnostics.push_back(std::move(*read.error));
      return result;
    }
    return PlanLoader(display_path, env).load(*read.root, text);
  } catch (const std::exception& e) {
    return failed(display_path, std::string("cannot load the plan: ") + printable(e.what()));
  } catch (...) {
    return failed(display_path, "cannot load the plan");
  }
}

LoadResult load_plan(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return failed(path, std::string("cannot open the plan: ") + std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) == 0 && S_ISDIR(info.st_mode)) {
    ::close(fd);
    return failed(path, "cannot read the plan: it is a directory");
  }
  // Read one byte past the limit, so an oversize plan is refused without reading it all.
  std::string text;
  char buffer[64 * 1024];
  while (text.size() <= kMaxPlanBytes) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int saved = errno;
      ::close(fd);
      return failed(path, std::string("cannot read the plan: ") + std::strerror(saved));
    }
    if (got == 0) break;
    text.append(buffer, static_cast<size_t>(got));
  }
  ::close(fd);
  return load_plan_text(text, path, process_environment());
}

}  // namespace cutpilot::plans
