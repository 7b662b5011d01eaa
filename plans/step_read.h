// A [[steps]] table as read, with where each part was written: what the checks across
// steps (step_checks.cpp) need to put their messages at the right line and column.
// Internal to plans/.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "plans/kinds.h"

namespace cutpilot::plans {

// One step as read.
struct StepRead {
  Step step;
  std::string section;  // "step 'presync'" (or "step #3" without an id), for messages
  std::optional<SourcePos> id_pos;
  std::vector<Located> on;
  std::vector<Located> needs;
  std::optional<Located> when;  // the step a `when` names
  std::optional<SourcePos> downtime_pos, pnr_pos, confirm_pos, gate_pos;
  std::optional<SourcePos> action_pos;  // the first action key
  std::vector<HostRef> hosts;           // plan hosts its action and rollback name
  size_t actions = 0;                   // action keys seen (exactly one is right)
  std::string_view kind;                // the first action key (even when it did not read)
  bool action_ok = false;               // the action read without errors
  bool has_rollback = false;
  bool phase_set = false;
};

// The checks across steps and hosts (step_checks.cpp); errors and warnings go to reader.
void check_steps(Reader& reader, std::vector<StepRead>& steps, const std::vector<HostSpec>& hosts);

}  // namespace cutpilot::plans
