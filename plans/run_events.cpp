#include "plans/run_events.h"

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
