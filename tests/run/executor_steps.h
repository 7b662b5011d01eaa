// Plan text builders for the executor tests.
#pragma once

#include <string>

#include "tests/run/executor_harness.h"

namespace cutpilot::plans::test {

// A plan header with two hosts, source and target (and optional [plan] lines).
inline std::string plan_head(const std::string& plan_lines = "") {
  return "[plan]\nname = \"exec\"\n" + plan_lines + "[hosts.source]\n[hosts.target]\n";
}

// One [[steps]] table running `do-ID` on on (a host name, or a TOML array), plus extra lines.
inline std::string exec_step(const std::string& id, const std::string& on,
                             const std::string& extra = "") {
  const std::string hosts = !on.empty() && on[0] == '[' ? on : "\"" + on + "\"";
  return "[[steps]]\nid = \"" + id + "\"\non = " + hosts + "\nexec = { run = [\"do-" + id +
         "\"] }\n" + extra;
}

// The rollback line of a step that runs `undo-ID`.
inline std::string undo(const std::string& id) {
  return "rollback = { exec = { run = [\"undo-" + id + "\"] } }\n";
}

// A needs line.
inline std::string needs(const std::string& list) {
  return "needs = [" + list + "]\n";
}

// A plan with one gated step g after a, and a gated step h that needs confirmation text.
inline std::string gated_plan() {
  return plan_head() + exec_step("a", "source") +
         exec_step("g", "target", needs("\"a\"") + "gate = \"approve\"\n") +
         exec_step("h", "target", "gate = \"approve\"\nconfirm = \"DROP shop\"\n");
}

// Three chained steps with rollbacks, a fourth gated one that keeps the run open.
inline std::string rollback_plan(const std::string& b_extra = "") {
  return plan_head() + exec_step("a", "source", undo("a")) +
         exec_step("b", "target", needs("\"a\"") + undo("b") + b_extra) +
         exec_step("c", "source", needs("\"b\"") + undo("c")) +
         exec_step("d", "target", needs("\"c\"") + "gate = \"approve\"\n");
}

// Runs a, b and c of rollback_plan() to success.
inline void run_three(Bench& b) {
  b.begin();
  b.finish("r1/a/source/1");
  b.finish("r1/b/target/1");
  b.finish("r1/c/source/1");
}

}  // namespace cutpilot::plans::test
