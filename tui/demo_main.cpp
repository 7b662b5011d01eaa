// tui_demo: the cockpit on a scripted run (no hosts, no agents), for the tmux tests and
// for trying the UI. tui_demo [--plan FILE] [--speed X] [--fail STEP] [--record FILE];
// tui_demo --print-plan prints the plan it plays when given none.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "plans/load.h"
#include "tui/cockpit.h"
#include "tui/synthetic.h"

int main(int argc, char** argv) {
  using namespace cutpilot;
  std::string plan_path;
  std::string record;
  tui::ScriptOptions script;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    if (arg == "--plan" && value) {
      plan_path = argv[++i];
    } else if (arg == "--speed" && value) {
      script.speed = std::atof(argv[++i]);
    } else if (arg == "--fail" && value) {
      script.fail_once.push_back(argv[++i]);
    } else if (arg == "--print-plan") {
      std::fputs(tui::demo_plan_text(), stdout);
      return 0;
    } else if (arg == "--record" && value) {
      record = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: tui_demo [--plan FILE] [--speed X] [--fail STEP] [--record FILE] | "
                   "--print-plan\n");
      return 2;
    }
  }
  const plans::LoadResult loaded = plan_path.empty()
                                       ? plans::load_plan_text(tui::demo_plan_text(), "demo.toml")
                                       : plans::load_plan(plan_path);
  if (!loaded.ok()) {
    for (const plans::Diagnostic& d : loaded.diagnostics)
      std::fprintf(stderr, "%s\n", plans::format_diagnostic(d).c_str());
    return 1;
  }
  plans::RunLink link;
  tui::block_resize_signal();  // before the run's thread starts, so it inherits the mask
  int code = 0;
  std::vector<plans::Command> received;
  {
    tui::ScriptedRun run(loaded.plan, link, script);
    code = tui::run_cockpit(loaded.plan, link);
    received = run.received();
  }
  if (!record.empty())
    if (std::FILE* out = std::fopen(record.c_str(), "w")) {
      for (const plans::Command& c : received)
        std::fprintf(out, "%s\t%s\t%s\t%s\n", plans::command_name(c.kind), c.step.c_str(),
                     c.by.c_str(), c.confirm.c_str());
      std::fprintf(out, "exit\t%d\n", code);
      std::fclose(out);
    }
  std::printf("cockpit: %s\n",
              code == tui::kCockpitLeft ? "left; the run's jobs keep going" : "the run ended");
  return code == tui::kCockpitLeft ? 0 : code;
}
