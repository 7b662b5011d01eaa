// `cutpilot report`: the map of old -> new a run's image copies made (volume, hosts, paths, size,
// SHA-256), for the templates and inventories that boot the new instances; read from the journal.
#include <cstdio>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/runs.h"
#include "plans/diagnostic.h"
#include "plans/size.h"
#include "run/downtime.h"

namespace cutpilot::cli {
namespace {

constexpr const char* kReportUsage =
    "usage: cutpilot report [--csv | --json] [--state-dir DIR] [PLAN]";

// The columns of the map, in the order the CSV and the table give them.
constexpr const char* kColumns[] = {"step",     "volume",   "old_host", "old_path",
                                    "new_host", "new_path", "size",     "sha256"};

// One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text)
    out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// Every succeeded image copy of the status, one object per copy with kColumns' keys.
nlohmann::json image_rows(const nlohmann::json& status) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& step : status.value("steps", nlohmann::json::array()))
    for (const auto& done : step.value("results", nlohmann::json::array())) {
      const nlohmann::json& result = done.value("result", nlohmann::json());
      if (done.value("state", "") != "succeeded" || !result.is_object() ||
          !result.contains("sha256") || !result.contains("source_host"))
        continue;
      rows.push_back({{"step", step.value("step", "")},
                      {"volume", result.value("volume", "")},
                      {"old_host", result.value("source_host", "")},
                      {"old_path", result.value("from", "")},
                      {"new_host", done.value("host", "")},
                      {"new_path", result.value("to", "")},
                      {"size", result.value("size", uint64_t{0})},
                      {"sha256", result.value("sha256", "")}});
    }
  return rows;
}

// A value as text.
std::string cell(const nlohmann::json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

}  // namespace

int report(const std::vector<std::string>& args) {
  std::string state_dir, plan_path;
  bool json = false, csv = false;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      std::printf(
          "%s\nThe image copies of a run (its newest, or PLAN's), old -> new: step, volume, old "
          "host and path, new host and path, size and SHA-256, as a table, CSV or JSON.\n",
          kReportUsage);
      return kOk;
    }
    if (args[i] == "--state-dir" && i + 1 < args.size()) {
      state_dir = args[++i];
    } else if (args[i] == "--json") {
      json = true;
    } else if (args[i] == "--csv") {
      csv = true;
    } else if (plan_path.empty() && !args[i].empty() && args[i][0] != '-') {
      plan_path = args[i];
    } else {
      std::fprintf(stderr, "cutpilot report: unexpected '%s'\n%s\n", args[i].c_str(), kReportUsage);
      return kUsage;
    }
  }
  if (json && csv) {
    std::fprintf(stderr, "cutpilot report: --csv or --json, not both\n%s\n", kReportUsage);
    return kUsage;
  }
  std::string error;
  const std::string run_dir = status_run_dir(state_dir, plan_path, error);
  const auto status =
      run_dir.empty() ? std::nullopt : journal_status(run_dir, plans::unix_now(), error);
  if (!status) {
    std::fprintf(stderr, "cutpilot report: %s\n", error.c_str());
    return kFailed;
  }
  const nlohmann::json rows = image_rows(*status);
  if (json) {
    std::printf("%s\n", nlohmann::json{{"run", status->value("run", "")},
                                       {"plan", status->value("plan", "")},
                                       {"state", status->value("state", "")},
                                       {"images", rows}}
                            .dump()
                            .c_str());
    return kOk;
  }
  if (csv) {
    std::string line;
    for (const char* column : kColumns)
      line += (line.empty() ? "" : ",") + std::string(column);
    std::printf("%s\r\n", line.c_str());
    for (const auto& row : rows) {
      line.clear();
      for (const char* column : kColumns)
        line += (line.empty() ? "" : ",") + csv_field(cell(row[column]));
      std::printf("%s\r\n", line.c_str());
    }
    return kOk;
  }
  if (rows.empty()) {
    std::printf("run %s (%s) made no image copies\n", status->value("run", "").c_str(),
                status->value("state", "").c_str());
    return kOk;
  }
  Table table({"STEP", "VOLUME", "OLD", "NEW", "SIZE", "SHA256"});
  for (const auto& row : rows)
    table.add({plans::printable(cell(row["step"])), plans::printable(cell(row["volume"])),
               plans::printable(cell(row["old_host"]) + ":" + cell(row["old_path"])),
               plans::printable(cell(row["new_host"]) + ":" + cell(row["new_path"])),
               plans::format_size(row["size"].get<uint64_t>()), cell(row["sha256"])});
  std::printf("run %s (%s):\n", status->value("run", "").c_str(),
              status->value("state", "").c_str());
  table.print(stdout);
  return kOk;
}

}  // namespace cutpilot::cli
