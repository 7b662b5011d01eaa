"""The downtime prediction learns from the plan's earlier runs (issue 21): a second run of a
plan predicts each step of its window from the first run's time of the same step, and its
gate from how long the operator took; the window's steps that run side by side count once;
`cutpilot runs` and `status` show predicted against actual (the real binary on the lab)."""

import json
import unittest
from pathlib import Path

from runcase import RunCase, wait_for

# stop opens the window; gated (approve) and side run side by side; up closes it. No expect:
# a first run has no source for any of them.
CUTOVER = '''
[[steps]]
id = "stop"
on = "source"
downtime = "start"
exec = { run = ["sleep", "0.3"] }
[[steps]]
id = "gated"
on = "target"
needs = ["stop"]
gate = "approve"
exec = { run = ["sleep", "1"] }
[[steps]]
id = "side"
on = "source"
needs = ["stop"]
exec = { run = ["sleep", "2"] }
[[steps]]
id = "up"
on = "target"
needs = ["gated", "side"]
downtime = "end"
exec = { run = ["sleep", "0.5"] }
'''


class PredictionTest(RunCase):
    def setUp(self):
        super().setUp()
        self.root = Path(self.dir, "xdg")  # runs land under the default root, kept in the lab
        self.extra_env = {"XDG_STATE_HOME": str(self.root)}

    def json_of(self, *args):
        res = self.cutpilot(*args, "--json", timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        return [json.loads(line) for line in res.stdout.splitlines()]

    def gate_waits(self, plan):
        """Whether the plan's live run waits at its gate (False before the run exists)."""
        res = self.cutpilot("status", plan, "--json", timeout=30)
        return res.returncode == 0 and json.loads(res.stdout)["awaiting_approval"] == ["gated"]

    def test_a_second_run_predicts_its_window_from_the_first(self):
        plan = self.plan(CUTOVER)
        # First run: nothing to go on; the gate is approved from another process.
        proc, out = self.start("run", plan, "--headless")
        wait_for(lambda: self.gate_waits(plan), 60,
                 "the gate")
        approved = self.cutpilot("approve", "gated", "--state-dir",
                                     self.json_of("runs", plan)[-1]["state_dir"])
        self.assertEqual(approved.returncode, 0, approved.stderr)
        self.assertEqual(proc.wait(120), 0)
        out.seek(0)
        first = out.read()
        self.assertIn("predicted: side unknown", first)
        self.assertIn("predicted: gated unknown, its approval unknown", first)
        self.assertNotIn("downtime predicted", first, "a first run has no source at all")
        run1 = self.json_of("runs", plan)[0]["run"]
        # `cutpilot plan` predicts the next window from it, before any run.
        shown = self.cutpilot("plan", plan)
        self.assertEqual(shown.returncode, 0, shown.stderr)
        self.assertIn("downtime window, predicted before the run (from 1 earlier run and expect)",
                      shown.stdout)
        self.assertRegex(shown.stdout, rf"  side: 2\.\ds \(earlier run {run1}\)")
        self.assertRegex(shown.stdout, rf"  gated: 1\.\ds \(earlier run {run1}\), approval "
                                       rf"[0-9.]+s \(earlier run {run1}\)")

        # Second run: every step and the gate from the first; the gate approved ahead.
        res = self.cutpilot("run", plan, "--headless", "--json", "--approve", "gated", timeout=120)
        self.assertEqual(res.returncode, 0, res.stdout[-2000:] + res.stderr[-2000:])
        events = [json.loads(line) for line in res.stdout.splitlines()]
        said = "\n".join(e["line"] for e in events if e["type"] == "log" and e["step"] is None)
        for step in ("stop", "gated", "side", "up"):
            self.assertRegex(said, rf"predicted: {step} [0-9.]+s \(earlier run {run1}\)")
        self.assertIn("its approval 0.0s (approved ahead)", said)
        ended = [e for e in events if e["type"] == "downtime" and e["state"] == "ended"][0]
        # Side by side: 0.3 + max(1, 2) + 0.5 s of sleeps, not their 3.8 s sum.
        self.assertLess(ended["predicted_s"], 3.8, said)
        self.assertLessEqual(abs(ended["predicted_s"] - ended["seconds"]), 0.2 * ended["seconds"],
                             said)
        self.assertRegex(said, r"the window's steps took \(predicted\): stop [0-9.]+s \([0-9.]+s\)")

        rows = self.json_of("runs", plan)
        self.assertEqual(len(rows), 2)
        second = rows[-1]["downtime"]
        self.assertEqual(second["predicted_s"], ended["predicted_s"])
        self.assertAlmostEqual(second["error_pct"],
                               (second["predicted_s"] - second["seconds"]) / second["seconds"] * 100)
        self.assertNotIn("predicted_s", rows[0]["downtime"], "the first run predicted nothing")
        text = self.cutpilot("runs", plan)
        self.assertRegex(text.stdout, r"predicted [0-9.]+s \(\d+% (short|over)\)|\(spot on\)")
        status = self.cutpilot("status", plan)
        self.assertRegex(status.stdout, r"downtime predicted [0-9.]+s \(([0-9]+% (short|over)|spot on)\) when it started")

    def test_a_gate_inside_the_window_is_predicted_from_the_operators_earlier_wait(self):
        plan = self.plan(CUTOVER)
        for n in (1, 2):
            proc, out = self.start("run", plan, "--headless")
            wait_for(lambda: self.gate_waits(plan), 60,
                     "the gate")
            out.seek(0)
            said = out.read()
            approved = self.cutpilot("approve", "gated", "--state-dir",
                                     self.json_of("runs", plan)[-1]["state_dir"])
            self.assertEqual(approved.returncode, 0, approved.stderr)
            self.assertEqual(proc.wait(120), 0)
        run1 = self.json_of("runs", plan)[0]["run"]
        self.assertRegex(said, rf"predicted: gated [0-9.]+s \(earlier run {run1}\), its approval "
                               rf"[0-9.]+s \(earlier run {run1}\)")
        self.assertRegex(said, r"downtime predicted ~[0-9.]+s \(machine [0-9.]+s \+ approvals ~[0-9.]+s\)")


if __name__ == "__main__":
    unittest.main()
