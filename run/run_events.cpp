#include "run/run_events.h"

namespace cutpilot::plans {
namespace {

constexpr const char* kStateNames[] = {"pending", "awaiting-approval", "running",    "succeeded",
                                       "failed",  "skipped",           "rolled-back"};

}  // namespace

const char* state_name(StepState state) {
  return kStateNames[static_cast<int>(state)];
}

std::optional<StepState> parse_state(std::string_view name) {
  for (int i = 0; i < static_cast<int>(std::size(kStateNames)); ++i)
    if (name == kStateNames[i]) return static_cast<StepState>(i);
  return std::nullopt;
}

bool stderr_is_notice(std::string_view line) {
  // A db job's query says which side it ran on first ("[source] -- Retrieving ...").
  for (std::string_view side : {"[source] ", "[target] "})
    if (line.starts_with(side)) {
      line.remove_prefix(side.size());
      if (line.starts_with("NOTICE:")) return true;  // a server's NOTICE through psql
      break;
    }
  for (std::string_view tool : {"pg_dump: ", "pg_restore: ", "pg_dumpall: "}) {
    if (!line.starts_with(tool)) continue;
    const std::string_view rest = line.substr(tool.size());
    // Trouble, and the lines that come with it, say so in their first word.
    for (std::string_view word : {"error", "warning", "fatal", "detail", "hint", "while ",
                                  "from TOC", "[archiver", "could not", "FATAL", "ERROR"})
      if (rest.starts_with(word)) return false;
    return true;
  }
  if (line.starts_with("-- ")) return true;  // mysqldump --verbose
  if (line.starts_with("nginx: ")) {
    const std::string_view rest = line.substr(7);
    return rest.starts_with("[notice]") || rest.starts_with("[info]") ||
           (rest.find("configuration file") != std::string_view::npos &&
            (rest.ends_with("syntax is ok") || rest.ends_with("test is successful")));
  }
  return false;
}

bool is_final(StepState state) {
  return state == StepState::kSucceeded || state == StepState::kSkipped ||
         state == StepState::kRolledBack;
}

bool is_settled(StepState state) {
  return is_final(state) || state == StepState::kFailed;
}

const char* command_name(CommandKind kind) {
  switch (kind) {
    case CommandKind::kApprove:
      return "approve";
    case CommandKind::kSkip:
      return "skip";
    case CommandKind::kRetry:
      return "retry";
    case CommandKind::kAbort:
      return "abort";
    case CommandKind::kRevoke:
      return "revoke";
  }
  return "?";
}

}  // namespace cutpilot::plans
