// The file action kind: replace a file atomically keeping a backup, or put the backup back.
#include "plans/kinds.h"
#include "plans/size.h"

namespace cutpilot::plans {
namespace {

using Json = nlohmann::json;

// The largest content a write takes (agents/file_job.h kMaxFileContentBytes).
constexpr size_t kMaxContentBytes = 512 * 1024;

// A file table as read, with which of write and restore it had.
struct FileRead : FileAction {
  int ops = 0;
  bool has_content = false;
  const toml::value* validate_table = nullptr;  // read once the rest is known
};

void read_path(Reader& r, const Entry& e, FileRead& x, FileOp op) {
  ++x.ops;
  x.op = op;
  auto v = r.string(e);
  if (!v) return;
  if (v->front() != '/') r.value_error(e, "must be an absolute path");
  x.path = std::move(*v);
}

constexpr FieldSpec<FileRead> kFileFields[] = {
    {"write", [](Reader& r, const Entry& e, FileRead& x) { read_path(r, e, x, FileOp::kWrite); }},
    {"restore",
     [](Reader& r, const Entry& e, FileRead& x) { read_path(r, e, x, FileOp::kRestore); }},
    {"content",
     [](Reader& r, const Entry& e, FileRead& x) {
       x.has_content = true;
       auto v = r.string(e, /*allow_empty=*/true);
       if (v && v->size() > kMaxContentBytes)
         r.value_error(e, "is " + format_size(v->size()) + "; a file write takes at most " +
                              format_size(kMaxContentBytes));
       if (v) x.content = std::move(*v);
     }},
    {"mode",
     [](Reader& r, const Entry& e, FileRead& x) {
       auto v = r.string(e);
       if (v && (v->size() < 3 || v->size() > 4 ||
                 v->find_first_not_of("01234567") != std::string::npos))
         r.value_error(e, "must be an octal mode like \"0644\"");
       if (v) x.mode = std::move(*v);
     }},
    {"owner", read_text<FileRead, &FileAction::owner>},
    {"group", read_text<FileRead, &FileAction::group>},
    {"backup", read_flag<FileRead, &FileAction::backup>},
    {"validate", [](Reader&, const Entry& e, FileRead& x) { x.validate_table = &e.value; }},
};

}  // namespace

std::optional<Action> read_file_action(ActionInput& input) {
  Reader& reader = input.reader;
  const toml::value& table = input.entry.value;
  const size_t before = reader.diagnostics().size();
  const size_t unknown = reader.unknown_keys();
  FileRead read;
  if (!read_action_table<FileRead>(
          input, kFileFields, read,
          "{ write = \"/path\", content = \"...\" } or { restore = \"/path\" }"))
    return std::nullopt;
  const SourcePos at = reader.source().pos_of(table);
  // None, with a misspelt key (`wirte`), is that key's error alone.
  if (read.ops > 1 || (read.ops == 0 && reader.unknown_keys() == unknown))
    reader.error(at, input.section + " needs exactly one of 'write' or 'restore' (the path)");
  if (read.ops == 1 && read.op == FileOp::kWrite && !read.has_content)
    reader.error(at, input.section + " writes " + quote(read.path) +
                         " but has no 'content' (content = \"\" for an empty file)");
  if (read.ops == 1 && read.op == FileOp::kRestore) {
    const bool extra =
        read.has_content || read.mode || read.owner || read.group || read.validate_table;
    if (extra)
      reader.error(at, input.section +
                           " restores a file: it takes only 'restore' (content, mode, owner, "
                           "group and validate belong to a write)");
  }
  if (read.validate_table) {
    auto validate = read_exec(reader, *read.validate_table, "'validate' in " + input.section);
    if (validate) read.validate = std::move(*validate);
  }
  if (errors_since(reader, before)) return std::nullopt;
  return Action(std::move(static_cast<FileAction&>(read)));
}

Translation file_job(const FileAction& file, const JobInput& input) {
  if (file.op == FileOp::kRestore)
    return make_job("file", {{"action", "restore"}, {"path", file.path}});
  Json spec = {{"action", "write"}, {"path", file.path}, {"content", file.content}};
  if (file.mode) spec["mode"] = *file.mode;
  if (file.owner) spec["owner"] = *file.owner;
  if (file.group) spec["group"] = *file.group;
  if (!file.backup) spec["backup"] = false;
  if (file.validate)
    spec["validate"] = exec_spec(*file.validate, input.host.sudo,
                                 file.validate->timeout ? file.validate->timeout->count() : 0);
  return make_job("file", spec);
}

std::string describe_file(const FileAction& file, const DescribeInput& input) {
  if (file.op == FileOp::kRestore)
    return "restore " + shell_quote(file.path) + " as it was before the run's first write";
  std::string line = "write " + shell_quote(file.path) + " (" + format_size(file.content.size());
  if (file.mode) line += ", mode " + *file.mode;
  if (file.owner || file.group)
    line += ", owner " + file.owner.value_or("") + (file.group ? ":" + *file.group : "");
  line += file.backup ? ", backup kept)" : ", no backup)";
  if (file.validate) line += ", then check: " + describe_exec(*file.validate, input);
  return line;
}

}  // namespace cutpilot::plans
