// The exec action kind: a command as an argument vector (or a shell line) on the host.
#include "plans/duration.h"
#include "plans/kinds.h"

namespace cutpilot::plans {
namespace {

using Json = nlohmann::json;

// An exec table as read, with which of run and shell it had.
struct ExecRead : ExecAction {
  bool has_run = false;
  bool has_shell = false;
};

constexpr FieldSpec<ExecRead> kExecFields[] = {
    {"run",
     [](Reader& r, const Entry& e, ExecRead& x) {
       x.has_run = true;
       if (auto v = r.strings(e, /*single=*/false, /*allow_empty=*/false)) x.run = *v;
     }},
    {"shell",
     [](Reader& r, const Entry& e, ExecRead& x) {
       x.has_shell = true;
       if (auto v = r.string(e)) x.shell = std::move(*v);
     }},
    {"env",
     [](Reader& r, const Entry& e, ExecRead& x) {
       auto v = r.string_map(e);
       if (!v) return;
       for (const auto& [name, value] : *v)
         if (name.empty() || name.find('=') != std::string::npos)
           r.value_error(e, "has a variable name with '=' in it: " + quote(name));
       x.env = std::move(*v);
     }},
    {"cwd",
     [](Reader& r, const Entry& e, ExecRead& x) {
       auto v = r.string(e);
       if (v && v->front() != '/') r.value_error(e, "must be an absolute path");
       if (v) x.cwd = std::move(*v);
     }},
    {"sudo", read_flag<ExecRead, &ExecAction::sudo>},
    {"timeout", read_time<ExecRead, &ExecAction::timeout>},
};

}  // namespace

std::optional<ExecAction> read_exec(Reader& reader, const toml::value& table,
                                    const std::string& section) {
  if (!table.is_table()) {
    reader.error(reader.source().pos_of(table),
                 section + " must be a table: { run = [\"argv\", ...] } or { shell = \"...\" }");
    return std::nullopt;
  }
  ExecRead read;
  const size_t before = reader.diagnostics().size();
  const size_t unknown = reader.unknown_keys();
  read_fields<ExecRead>(reader, table, section, kExecFields, read);
  // Neither, with a misspelt key (`runn`), is that key's error alone.
  const bool misspelt = !read.has_run && !read.has_shell && reader.unknown_keys() != unknown;
  if (read.has_run == read.has_shell && !misspelt)
    reader.error(reader.source().pos_of(table),
                 section + " needs exactly one of 'run' (an argument vector) or 'shell'");
  if (errors_since(reader, before)) return std::nullopt;
  return std::move(static_cast<ExecAction&>(read));
}

std::optional<Action> read_exec_action(ActionInput& input) {
  auto exec = read_exec(input.reader, input.entry.value, input.section);
  if (!exec) return std::nullopt;
  return Action(std::move(*exec));
}

Json exec_spec(const ExecAction& exec, bool host_sudo, uint64_t timeout) {
  Json spec = Json::object();
  if (exec.shell)
    spec["shell"] = *exec.shell;
  else
    spec["argv"] = exec.run;
  if (!exec.env.empty()) spec["env"] = exec.env;
  if (exec.cwd) spec["cwd"] = *exec.cwd;
  if (timeout) spec["timeout_ms"] = timeout;
  if (exec.sudo.value_or(host_sudo)) spec["sudo"] = true;
  return spec;
}

Translation exec_job(const ExecAction& exec, const JobInput& input) {
  return make_job("exec", exec_spec(exec, input.host.sudo, timeout_ms(exec.timeout, input)));
}

std::string describe_exec(const ExecAction& exec, const DescribeInput& input) {
  std::vector<std::string> argv;
  if (exec.sudo.value_or(input.host.sudo)) argv = {"sudo", "-n", "--"};
  if (!exec.env.empty()) {
    argv.push_back("env");
    for (const auto& [name, value] : exec.env)
      argv.push_back(name + "=" + value);
  }
  if (exec.shell)
    argv.insert(argv.end(), {"/bin/sh", "-c", *exec.shell});
  else
    argv.insert(argv.end(), exec.run.begin(), exec.run.end());
  std::string line = shell_join(argv);
  if (exec.cwd) line = "cd " + shell_quote(*exec.cwd) + " && " + line;
  if (exec.timeout) line += "   (timeout " + format_duration(*exec.timeout) + ")";
  return line;
}

}  // namespace cutpilot::plans
