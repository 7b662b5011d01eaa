"""Guard rails through the real `cutpilot` binary against lab hosts: no approval reaches a step
by accident (issue 13.2), a failure inside the downtime window never leaves the service down
with nobody at the controls (13.3), and a plan is never run twice by accident (14.1)."""

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runcase import RunCase, check_schema, wait_for  # noqa: E402


class GuardRailTest(RunCase):
    def status(self, check=True):
        res = self.cutpilot("status", "--json", "--state-dir", self.state, timeout=30)
        if check:
            self.assertEqual(res.returncode, 0, res.stderr)
        return json.loads(res.stdout) if res.returncode == 0 else {"steps": []}

    def steps(self, check=False):
        """Each step's status by id ({} while the run has not begun)."""
        return {s["step"]: s for s in self.status(check)["steps"]}

    def state_of(self, step):
        return self.steps().get(step, {}).get("state")

    def audit(self):
        return Path(self.state, "audit.log").read_text()

    def held_plan(self, flag, marker):
        """first runs until flag exists; g (gated) and h (confirm text) touch marker-g/-h."""
        return self.plan(f'''
[[steps]]
id = "first"
on = "source"
exec = {{ shell = "while [ ! -e {flag} ]; do sleep 0.05; done" }}
[[steps]]
id = "g"
on = "target"
needs = ["first"]
gate = "approve"
exec = {{ run = ["touch", "{marker}-g"] }}
[[steps]]
id = "h"
on = "target"
needs = ["g"]
confirm = "replace shop"
exec = {{ run = ["touch", "{marker}-h"] }}
''')

    def test_an_approval_for_a_step_not_waiting_is_refused_ahead_is_explicit_and_revocable(self):
        flag, marker = Path(self.dir, "go"), Path(self.dir, "ran")
        plan = self.held_plan(flag, marker)
        proc, out = self.start("run", plan, "--json", "--state-dir", self.state)
        wait_for(lambda: self.state_of("first") == "running", 60, "first running")

        res = self.cutpilot("approve", "g", "--state-dir", self.state)
        self.assertEqual(res.returncode, 1)
        self.assertIn("g is not waiting for approval: it is pending", res.stderr)
        self.assertFalse(self.steps()["g"]["approved"], "a refused approval armed the step")

        res = self.cutpilot("approve", "h", "--ahead", "--state-dir", self.state)
        self.assertEqual(res.returncode, 1, "a confirm text cannot be bypassed by naming the step")
        self.assertIn("typed exactly", res.stderr)

        res = self.cutpilot("approve", "g", "--ahead", "--state-dir", self.state)
        self.assertEqual(res.returncode, 0, res.stderr)
        status = self.status()
        self.assertEqual(status["pre_approved"], ["g"])
        self.assertIn("approve step=g by=", self.audit())
        self.assertIn("(ahead)", self.audit())

        res = self.cutpilot("revoke", "g", "--state-dir", self.state)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(self.status()["pre_approved"], [])
        self.assertIn("revoke step=g", self.audit())

        flag.touch()
        wait_for(lambda: self.state_of("g") == "awaiting-approval", 60, "g's gate")
        self.assertFalse(Path(f"{marker}-g").exists(), "a revoked approval still let g run")
        self.assertEqual(self.cutpilot("approve", "g", "--state-dir", self.state).returncode, 0)
        wait_for(lambda: self.state_of("h") == "awaiting-approval", 60, "h's gate")
        res = self.cutpilot("approve", "h", "--confirm", "replace shop", "--state-dir", self.state)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(proc.wait(60), 0)
        self.assertTrue(Path(f"{marker}-h").exists())
        out.seek(0)
        check_schema(self, out.read().splitlines())

    def test_run_approve_of_a_confirm_step_needs_its_text_and_approve_all_says_so(self):
        flag, marker = Path(self.dir, "go"), Path(self.dir, "ran")
        flag.touch()
        plan = self.held_plan(flag, marker)
        res = self.cutpilot("run", plan, "--headless", "--approve", "g", "--approve", "h",
                            "--state-dir", self.state)
        self.assertEqual(res.returncode, 1)
        self.assertIn("--approve 'h=replace shop'", res.stderr)
        self.assertFalse(Path(self.state, "journal.jsonl").exists(), "a refused run left a journal")

        res = self.cutpilot("run", plan, "--headless", "--approve", "g",
                            "--approve", "h=replace shop", "--state-dir", self.state)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertTrue(Path(f"{marker}-h").exists())
        self.assertIn("approve step=h by=", self.audit())

        other = str(Path(self.dir, "state2"))
        res = self.cutpilot("run", plan, "--headless", "--approve-all", "--state-dir", other)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("--approve-all: every gate is approved", res.stderr)
        audit = Path(other, "audit.log").read_text()
        self.assertIn("approve step=g", audit)
        self.assertIn("approve step=h", audit)
        self.assertEqual(audit.count("(--approve-all)"), 2)

    def downtime_plan(self, log, flag):
        """stop (downtime start, rollback restarts) -> cut (fails until flag) -> up (end)."""
        return self.plan(f'''
[[steps]]
id = "stop"
on = "source"
downtime = "start"
exec = {{ shell = "echo stop >> {log}" }}
rollback = {{ exec = {{ shell = "echo restart >> {log}" }} }}
[[steps]]
id = "cut"
on = "target"
needs = ["stop"]
gate = "approve"
exec = {{ run = ["test", "-e", "{flag}"] }}
[[steps]]
id = "up"
on = "target"
needs = ["cut"]
downtime = "end"
exec = {{ run = ["true"] }}
''')

    def test_a_failure_in_the_downtime_window_waits_and_says_how_to_go_on(self):
        log, flag = Path(self.dir, "log"), Path(self.dir, "flag")
        plan = self.downtime_plan(log, flag)
        proc, out = self.start("run", plan, "--headless", "--approve", "cut",
                               "--state-dir", self.state)
        wait_for(lambda: self.state_of("cut") == "failed", 60, "cut to fail")

        def hint():
            out.seek(0)
            return "cutpilot retry cut --state-dir " + self.state in out.read()
        wait_for(hint, 30, "the retry/skip/abort commands")
        self.assertIsNone(proc.poll(), "a failure ended a run that waits by default")
        self.assertFalse(self.steps()["cut"]["approved"],
                         "an approval given before the failure carried over to the retry")
        res = self.cutpilot("retry", "cut", "--state-dir", self.state)
        self.assertEqual(res.returncode, 0, res.stderr)
        wait_for(lambda: self.state_of("cut") == "awaiting-approval", 60, "cut's gate again")
        res = self.cutpilot("abort", "--state-dir", self.state)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(proc.wait(60), 3)
        self.assertEqual(log.read_text(), "stop\nrestart\n")
        out.seek(0)
        text = out.read()
        self.assertIn("downtime ended by rollback after", text)
        self.assertNotIn("never ended", text)
        self.assertIn("Rolled back: stop", text)

    def test_abort_takes_up_a_run_whose_cockpit_is_gone(self):
        log, flag = Path(self.dir, "log"), Path(self.dir, "flag")
        plan = self.downtime_plan(log, flag)
        res = self.cutpilot("run", plan, "--headless", "--approve", "cut", "--on-failure", "exit",
                            "--state-dir", self.state)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertEqual(log.read_text(), "stop\n")
        res = self.cutpilot("abort", "--state-dir", self.state, timeout=120)
        self.assertEqual(res.returncode, 3, res.stdout + res.stderr)
        self.assertIn("no cockpit holds run", res.stderr)
        self.assertEqual(log.read_text(), "stop\nrestart\n")
        self.assertIn("downtime ended by rollback", res.stdout)
        records = self.journal()
        self.assertEqual([r["state"] for r in records if r["r"] == "end"], ["failed", "aborted"])
        self.assertEqual(self.cutpilot("abort", "--state-dir", self.state).returncode, 1,
                         "an ended run is not aborted twice")

    def test_on_failure_rollback_rolls_back_and_ends(self):
        log, flag = Path(self.dir, "log"), Path(self.dir, "flag")
        plan = self.downtime_plan(log, flag)
        res = self.cutpilot("run", plan, "--headless", "--approve", "cut",
                            "--on-failure", "rollback", "--state-dir", self.state)
        self.assertEqual(res.returncode, 3, res.stdout + res.stderr)
        self.assertEqual(log.read_text(), "stop\nrestart\n")

    def test_a_plan_is_not_run_again_by_accident(self):
        marker = Path(self.dir, "count")
        plan = self.plan(f'''
[plan.x]
[[steps]]
id = "switch"
on = "source"
point_of_no_return = true
exec = {{ shell = "echo x >> {marker}" }}
'''.replace("[plan.x]\n", ""))
        res = self.cutpilot("run", plan, "--headless")
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        for extra in ([], ["--new-run"], ["--new-run=wrong name"]):
            res = self.cutpilot("run", plan, "--headless", *extra)
            self.assertEqual(res.returncode, 1, extra)
            self.assertIn("refusing a new run", res.stderr)
            self.assertIn("point of no return (switch)", res.stderr)
            self.assertIn("--new-run='run test'", res.stderr)
        self.assertEqual(marker.read_text(), "x\n", "a refused run touched a host")
        res = self.cutpilot("run", plan, "--headless", "--new-run=run test")
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(marker.read_text(), "x\nx\n")

    def test_an_unfinished_run_and_a_live_cockpit_refuse_a_new_run(self):
        flag, marker = Path(self.dir, "go"), Path(self.dir, "ran")
        plan = self.held_plan(flag, marker)
        proc, _ = self.start("run", plan, "--headless", "--state-dir", self.state)
        wait_for(lambda: self.state_of("first") == "running", 60, "first running")
        res = self.cutpilot("run", plan, "--headless", "--new-run")
        self.assertEqual(res.returncode, 1)
        self.assertIn("another cockpit is running this plan", res.stderr)
        # A frozen cockpit still holds its run: a resume must not take it over.
        proc.send_signal(signal.SIGSTOP)
        self.addCleanup(lambda: proc.poll() is None and proc.send_signal(signal.SIGCONT))
        res = self.cutpilot("run", plan, "--headless", "--resume", "--state-dir", self.state)
        self.assertEqual(res.returncode, 1)
        self.assertIn("another cockpit is running this plan", res.stderr)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        res = self.cutpilot("run", plan, "--headless")
        self.assertEqual(res.returncode, 1)
        self.assertIn("stopped unfinished", res.stderr)
        self.assertIn(self.state, res.stderr)

    def test_two_plans_of_the_same_file_name_never_share_a_run(self):
        one, two = Path(self.dir, "one"), Path(self.dir, "two")
        for d in (one, two):
            d.mkdir()
        body = '[[steps]]\nid = "s"\non = "source"\nexec = {{ shell = "echo {0} >> {1}" }}\n'
        log = Path(self.dir, "log")
        plan_one = self.plan(body.format("one", log), "one/plan.toml")
        plan_two = self.plan(body.format("two", log), "two/plan.toml")
        self.assertEqual(self.cutpilot("run", plan_one, "--headless", "--on-failure", "exit").returncode, 0)
        res = self.cutpilot("run", plan_two, "--headless")
        self.assertEqual(res.returncode, 0, res.stderr)
        res = self.cutpilot("run", plan_two, "--resume", "--headless")
        self.assertEqual(res.returncode, 1)
        self.assertIn("already ended (succeeded)", res.stderr)
        self.assertEqual(log.read_text(), "one\ntwo\n")


if __name__ == "__main__":
    import unittest
    unittest.main()
