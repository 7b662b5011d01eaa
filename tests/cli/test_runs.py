"""Runs you can look at afterwards (issue 13, item 6): `cutpilot status` reads a stopped or
finished run from its journal when no cockpit answers, and `cutpilot runs [PLAN]` lists runs
with their state, start and downtime (the real binary against the lab)."""

import json
import signal
import unittest
from pathlib import Path

from runcase import RFC3339, RunCase, wait_for

# stop (starts the downtime), gated (approve), healthy (ends it).
CUTOVER = '''
[[steps]]
id = "stop"
on = "source"
downtime = "start"
exec = { run = ["true"] }
[[steps]]
id = "gated"
on = "target"
needs = ["stop"]
gate = "approve"
exec = { run = ["true"] }
[[steps]]
id = "healthy"
on = "target"
needs = ["gated"]
downtime = "end"
exec = { run = ["true"] }
'''


class RunsTest(RunCase):
    def setUp(self):
        super().setUp()
        # Runs without --state-dir land under the default root: keep it inside the lab.
        self.root = Path(self.dir, "xdg")
        self.extra_env = {"XDG_STATE_HOME": str(self.root)}

    def status(self, *args):
        res = self.cutpilot("status", "--json", *args, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        return json.loads(res.stdout)

    def runs(self, *args):
        res = self.cutpilot("runs", "--json", *args, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        return [json.loads(line) for line in res.stdout.splitlines()]

    def test_status_of_a_finished_run_comes_from_its_journal(self):
        plan = self.plan(CUTOVER)
        res = self.cutpilot("run", plan, "--headless", "--approve", "gated", "--state-dir", self.state)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        status = self.status("--state-dir", self.state)
        self.assertIs(status["live"], False)
        self.assertEqual(status["plan"], "run test")
        self.assertEqual(status["state"], "succeeded")
        self.assertEqual([s["step"] for s in status["steps"]], ["stop", "gated", "healthy"])
        for step in status["steps"]:
            self.assertEqual(step["state"], "succeeded", step)
            self.assertEqual(step["attempt"], 1)
            self.assertRegex(step["started"], RFC3339)
            self.assertRegex(step["ended"], RFC3339)
            self.assertLessEqual(step["started"], step["ended"])
            self.assertEqual([r["host"] for r in step["results"]],
                             ["source" if step["step"] == "stop" else "target"])
            self.assertEqual(step["results"][0]["state"], "succeeded")
        gated = status["steps"][1]
        self.assertRegex(gated["approved_by"], r"\S+@\S+")
        self.assertEqual(gated["approved_how"], "--approve")
        self.assertIsNone(status["steps"][0]["approved_by"], "an ungated step shows no approval")
        self.assertEqual(status["awaiting_approval"], [])
        downtime = status["downtime"]
        self.assertEqual((downtime["started"], downtime["ended"]), (True, True))
        self.assertGreaterEqual(downtime["seconds"], 0)

        res = self.cutpilot("status", "--state-dir", self.state)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("read from its journal", res.stdout)
        self.assertRegex(res.stdout, r"gated +\S* +succeeded +1 .*\(--approve\)")
        self.assertIn("downtime ended after", res.stdout)

        # Damage is shown with its line number, never skipped without a word.
        journal = Path(self.state, "journal.jsonl")
        lines = len(journal.read_text().splitlines())
        with open(journal, "a") as f:
            f.write('{"r":"step","step":"healthy","sta\n')
        status = self.status("--state-dir", self.state)
        self.assertEqual(status["damaged_lines"], [lines + 1])
        self.assertIs(status["steps"][2]["damaged"], True)
        res = self.cutpilot("status", "--state-dir", self.state)
        self.assertIn(f"line {lines + 1} could not be read", res.stdout)

    def test_runs_lists_finished_live_and_stopped_runs(self):
        done = self.plan(CUTOVER, "done.toml")
        res = self.cutpilot("run", done, "--headless", "--approve", "gated")
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        waiting = self.plan(CUTOVER, "waiting.toml")
        proc, _ = self.start("run", waiting, "--headless")

        def live_run():
            rows = [r for r in self.runs() if r["plan_path"] == waiting]
            return rows and rows[0]["live"] and rows[0]
        live = wait_for(live_run, 60, "the live run in `cutpilot runs`")
        self.assertEqual(live["state"], "running")
        wait_for(lambda: self.status(waiting)["awaiting_approval"] == ["gated"], 60, "the gate")

        # A live cockpit answers `status` itself (the same shape, from the executor).
        self.assertEqual(self.status(waiting)["run"], live["run"])
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

        rows = {r["plan_path"]: r for r in self.runs()}
        self.assertEqual(set(rows), {done, waiting})
        self.assertEqual((rows[done]["state"], rows[done]["live"]), ("succeeded", False))
        self.assertEqual((rows[waiting]["state"], rows[waiting]["live"]), ("stopped", False))
        self.assertRegex(rows[done]["started"], RFC3339)
        self.assertLessEqual(rows[done]["started"], rows[waiting]["started"])
        self.assertIs(rows[done]["downtime"]["ended"], True)
        self.assertEqual((rows[waiting]["downtime"]["started"], rows[waiting]["downtime"]["ended"]),
                         (True, False), "the stopped run is still inside its downtime window")
        self.assertEqual([r["plan_path"] for r in self.runs(done)], [done])

        stopped = self.status(waiting)
        self.assertIs(stopped["live"], False)
        self.assertEqual(stopped["state"], "stopped")
        self.assertEqual(stopped["awaiting_approval"], ["gated"])
        self.assertEqual(self.status()["run"], rows[waiting]["run"], "the newest run by default")

        res = self.cutpilot("runs")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertRegex(res.stdout, r"succeeded +\S+ +\S+")
        self.assertIn("stopped", res.stdout)
        self.assertIn("running", res.stdout, "the stopped run's downtime is still running")


if __name__ == "__main__":
    unittest.main()
