// The wait action kind: a pause in the cockpit (`wait = "30s"`); no agent job.
#include "plans/duration.h"
#include "plans/kinds.h"

namespace cutpilot::plans {
namespace {

constexpr FieldSpec<WaitAction> kWaitFields[] = {
    {"for",
     [](Reader& r, const Entry& e, WaitAction& w) {
       if (auto v = r.duration(e)) w.duration = *v;
     }},
};

}  // namespace

std::optional<Action> read_wait_action(ActionInput& input) {
  Reader& reader = input.reader;
  const size_t before = reader.diagnostics().size();
  WaitAction wait;
  if (input.entry.value.is_table()) {
    read_fields<WaitAction>(reader, input.entry.value, input.section, kWaitFields, wait);
    if (!input.entry.value.contains("for"))
      reader.error(reader.source().pos_of(input.entry.value),
                   input.section + " needs 'for' (wait = { for = \"30s\" }, or wait = \"30s\")");
  } else if (auto duration = reader.duration(input.entry)) {
    wait.duration = *duration;
  }
  if (errors_since(reader, before)) return std::nullopt;
  return Action(wait);
}

std::string describe_wait(const WaitAction& wait, const DescribeInput&) {
  return "pause " + format_duration(wait.duration) + " (in the cockpit, no job)";
}

}  // namespace cutpilot::plans
