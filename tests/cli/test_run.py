"""`cutpilot run` end to end against lab hosts: gates, the control socket, SIGKILL and
--resume, abort with rollbacks, failures, and the --json schema (the real binary)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from labcase import LabCase  # noqa: E402

CUTPILOT = os.environ.get("CUTPILOT_BIN", str(Path(__file__).resolve().parents[2] / "build/bin/cutpilot"))
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
STATES = {"pending", "awaiting-approval", "running", "succeeded", "failed", "skipped", "rolled-back"}
# Each --json type and the fields DESIGN.md gives it (besides "t" and "type").
SCHEMA = {
    "step": {"step", "state"},
    "progress": {"step", "host", "bytes", "total", "rate", "eta_s"},
    "log": {"step", "host", "stream", "line"},
    "health": {"host", "target", "status"},
    "host": {"host", "state", "error"},
    "downtime": {"state", "seconds", "predicted_s"},
    "run": {"state", "seconds"},
}
HEADER = '[plan]\nname = "run test"\nssh_config = "${env:CUTPILOT_LAB}/ssh_config"\n' \
         '[vars]\nlab = "${env:CUTPILOT_LAB}"\n'


def wait_for(predicate, seconds, what):
    """Polls predicate until it returns something true, or fails after seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def check_schema(test, lines):
    """Every line is one JSON object of a schema type with exactly its fields."""
    events = []
    for line in lines:
        j = json.loads(line)
        test.assertRegex(j["t"], RFC3339)
        test.assertIn(j["type"], SCHEMA, line)
        needed = SCHEMA[j["type"]]
        test.assertTrue(needed <= set(j), f"{line} lacks {needed - set(j)}")
        extra = set(j) - needed - {"t", "type", "files", "files_total"}
        test.assertFalse(extra, f"{line} has fields outside the schema: {extra}")
        if j["type"] == "step":
            test.assertIn(j["state"], STATES)
        events.append(j)
    return events


class RunTest(LabCase):
    def setUp(self):
        self.dir = self.make_lab_dir()
        self.lab("up", "--dir", self.dir, "source", "target")
        self.state = str(Path(self.dir, "state"))

    def plan(self, body, name="plan.toml"):
        path = Path(self.dir, name)
        path.write_text(HEADER + '[hosts.source]\n[hosts.target]\n' + body)
        return str(path)

    def env(self):
        return dict(os.environ, CUTPILOT_LAB=self.dir)

    def cutpilot(self, *args, timeout=120):
        return subprocess.run([CUTPILOT, *args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=self.env())

    def start(self, *args):
        """Starts cutpilot in the background; its stdout goes to a file the test reads."""
        out = open(Path(self.dir, f"out-{time.monotonic_ns()}.txt"), "w+")
        proc = subprocess.Popen([CUTPILOT, *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=self.env())
        self.addCleanup(out.close)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc, out

    def status(self):
        res = self.cutpilot("status", "--json", "--state-dir", self.state, timeout=15)
        return json.loads(res.stdout) if res.returncode == 0 else None

    def step_state(self, step, live=False):
        """step's state in `status --json`; with live, only as a running cockpit reports it."""
        status = self.status()
        if not status or (live and not status.get("live")):
            return None
        return {s["step"]: s["state"] for s in status["steps"]}.get(step)

    def journal(self):
        return [json.loads(line) for line in Path(self.state, "journal.jsonl").read_text().splitlines()]

    def test_gate_waits_until_approve_arrives_from_another_process(self):
        marker = Path(self.dir, "gated-ran")
        plan = self.plan(f'''
[[steps]]
id = "first"
on = "source"
exec = {{ run = ["true"] }}
[[steps]]
id = "gated"
on = "target"
needs = ["first"]
gate = "approve"
exec = {{ run = ["touch", "{marker}"] }}
''')
        proc, out = self.start("run", plan, "--json", "--state-dir", self.state)
        wait_for(lambda: self.step_state("gated") == "awaiting-approval", 60, "the gate")
        time.sleep(1)
        self.assertFalse(marker.exists(), "a gated step ran without approval")
        self.assertIsNone(proc.poll(), "the run ended while its gate waited")
        wrong = self.cutpilot("approve", "no-such-step", "--state-dir", self.state)
        self.assertEqual(wrong.returncode, 1)
        self.assertIn('no step "no-such-step"', wrong.stderr)
        res = self.cutpilot("approve", "gated", "--state-dir", self.state)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(proc.wait(60), 0)
        self.assertTrue(marker.exists())
        out.seek(0)
        events = check_schema(self, out.read().splitlines())
        states = [e["state"] for e in events if e["type"] == "step" and e["step"] == "gated"]
        self.assertIn("awaiting-approval", states)
        self.assertEqual(states[-1], "succeeded")
        self.assertLess(states.index("awaiting-approval"), states.index("running"))
        self.assertEqual(events[-1]["type"], "run")
        self.assertEqual(events[-1]["state"], "succeeded")
        audit = Path(self.state, "audit.log").read_text()
        self.assertRegex(audit, r"approve step=gated by=\S+@\S+ plan=sha256:[0-9a-f]{64}")

    def test_sigkill_during_a_long_sync_resumes_and_the_job_starts_once(self):
        data = Path(self.dir, "hosts", "source", "home", "data")
        data.mkdir(parents=True)
        for i in range(30):
            (data / f"f{i}").write_bytes(os.urandom(100_000))
        plan = self.plan(f'''
[[steps]]
id = "copy"
on = "target"
sync = {{ from = "source:{data}/", to = "${{lab}}/hosts/target/home/copy/", bwlimit = "1MiB" }}
[[steps]]
id = "after"
on = "target"
needs = ["copy"]
exec = {{ run = ["true"] }}
''')
        proc, out = self.start("run", plan, "--json", "--state-dir", self.state)

        def progressing():
            out.seek(0)
            return any('"progress"' in line and '"bytes":0,' not in line for line in out)
        wait_for(progressing, 60, "the sync's progress")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        res = self.cutpilot("run", plan, "--json", "--resume", "--state-dir", self.state)
        self.assertEqual(res.returncode, 0, res.stdout[-2000:] + res.stderr)
        events = check_schema(self, res.stdout.splitlines())
        self.assertTrue(any(e["type"] == "log" and "re-attached to job" in e["line"] for e in events),
                        "the resumed run did not re-attach")
        jobs = [r for r in self.journal() if r["r"] == "job" and r["step"] == "copy"]
        self.assertEqual(len(jobs), 1, "the sync job was started more than once")
        copy = Path(self.dir, "hosts", "target", "home", "copy")
        for i in range(30):
            self.assertEqual((copy / f"f{i}").read_bytes(), (data / f"f{i}").read_bytes())
        shown = [e["bytes"] for e in events if e["type"] == "progress"]
        self.assertEqual(shown, sorted(shown), "progress went backwards")

    def test_abort_after_three_steps_rolls_them_back_in_reverse_order(self):
        log = Path(self.dir, "order.log")
        body = ""
        for i, name in enumerate(["one", "two", "three"]):
            needs = f'needs = ["{["one", "two"][i - 1]}"]\n' if i else ""
            body += f'''
[[steps]]
id = "{name}"
on = "source"
{needs}exec = {{ shell = "echo do {name} >> {log}" }}
rollback = {{ exec = {{ shell = "echo undo {name} >> {log}" }} }}
'''
        body += '[[steps]]\nid = "four"\non = "source"\nneeds = ["three"]\ngate = "approve"\n' \
                'exec = { run = ["true"] }\n'
        plan = self.plan(body)
        proc, out = self.start("run", plan, "--json", "--state-dir", self.state)
        wait_for(lambda: self.step_state("four") == "awaiting-approval", 60, "step four's gate")
        res = self.cutpilot("abort", "--state-dir", self.state)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(proc.wait(60), 3, "an aborted run exits 3")
        self.assertEqual(log.read_text().split("\n")[:-1],
                         ["do one", "do two", "do three", "undo three", "undo two", "undo one"])
        out.seek(0)
        events = check_schema(self, out.read().splitlines())
        final = {e["step"]: e["state"] for e in events if e["type"] == "step"}
        self.assertEqual([final[s] for s in ("one", "two", "three")], ["rolled-back"] * 3)
        self.assertEqual((events[-1]["type"], events[-1]["state"]), ("run", "aborted"))
        self.assertIn("abort by=", Path(self.state, "audit.log").read_text())

    def retry_in_background(self, plan, step):
        """Resumes the run (it waits at the failed step), retries step from another process, and
        returns the resumed run's exit code."""
        proc, out = self.start("run", plan, "--headless", "--resume", "--state-dir", self.state)
        # The journal says "failed" before the resumed run listens; a retry sent then finds no
        # run to take it. Wait for the live run's own word.
        wait_for(lambda: self.step_state(step, live=True) == "failed", 60,
                 f"{step} shown failed by the live run")
        self.assertIsNone(proc.poll(), "the resumed run did not wait for the operator")
        res = self.cutpilot("retry", step, "--state-dir", self.state)
        self.assertEqual(res.returncode, 0, res.stderr)
        code = proc.wait(60)
        out.seek(0)
        return code, out.read()

    def test_failed_step_with_on_failure_exit_ends_the_run_and_resume_waits_for_retry(self):
        flag, count = Path(self.dir, "flag"), Path(self.dir, "count")
        plan = self.plan(f'''
[[steps]]
id = "counted"
on = "source"
exec = {{ shell = "echo x >> {count}" }}
[[steps]]
id = "needs-flag"
on = "target"
needs = ["counted"]
exec = {{ run = ["test", "-e", "{flag}"] }}
''')
        res = self.cutpilot("run", plan, "--headless", "--on-failure", "exit", "--state-dir", self.state)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertRegex(res.stdout, r"\d\d:\d\d:\d\d target needs-flag: failed")
        self.assertRegex(res.stdout, r"cockpit needs-flag: failed")
        flag.touch()
        code, text = self.retry_in_background(plan, "needs-flag")
        self.assertEqual(code, 0, text)
        self.assertEqual(count.read_text(), "x\n", "a succeeded step ran again on resume")
        jobs = [r["job"] for r in self.journal() if r["r"] == "job" and r["step"] == "needs-flag"]
        self.assertEqual(len(jobs), 2, "one attempt before the resume, one for the retry")

    def test_resume_refuses_a_plan_changed_in_a_step_that_already_ran(self):
        body = '[[steps]]\nid = "done-step"\non = "source"\nexec = {{ run = ["{0}"] }}\n' \
               '[[steps]]\nid = "failing"\non = "source"\nneeds = ["done-step"]\n' \
               'exec = {{ run = ["{1}"] }}\n'
        plan = self.plan(body.format("true", "false"))
        res = self.cutpilot("run", plan, "--headless", "--on-failure", "exit", "--state-dir", self.state)
        self.assertEqual(res.returncode, 1)
        self.plan(body.format("echo", "false"))
        res = self.cutpilot("run", plan, "--headless", "--resume", "--state-dir", self.state)
        self.assertEqual(res.returncode, 1)
        self.assertIn("the plan changed in steps that already ran: done-step", res.stderr)
        self.plan(body.format("true", "true"))  # only the failed step changed
        code, text = self.retry_in_background(plan, "failing")
        self.assertEqual(code, 0, text)

    def test_bad_plan_and_a_used_state_dir_are_refused_before_anything_runs(self):
        plan = self.plan('[[steps]]\nid = "x"\non = "nowhere"\nexec = { run = ["true"] }\n')
        res = self.cutpilot("run", plan, "--headless", "--state-dir", self.state)
        self.assertEqual(res.returncode, 1)
        self.assertRegex(res.stderr, r"plan\.toml:\d+:\d+: error: .*nowhere")
        self.assertFalse(Path(self.state).exists(), "a refused plan created its state directory")
        good = self.plan('[[steps]]\nid = "x"\non = "source"\nexec = { run = ["true"] }\n', "good.toml")
        self.assertEqual(self.cutpilot("run", good, "--headless", "--state-dir", self.state).returncode, 0)
        res = self.cutpilot("run", good, "--headless", "--new-run", "--state-dir", self.state)
        self.assertEqual(res.returncode, 1)
        self.assertIn("already holds a run", res.stderr)
        self.assertIn("start this one in another --state-dir", res.stderr)
        # The ended run cannot be resumed either: the way out is named, not a loop of refusals.
        res = self.cutpilot("run", good, "--headless", "--resume", "--state-dir", self.state)
        self.assertEqual(res.returncode, 1)
        self.assertIn("already ended (succeeded); start a new run (in another --state-dir",
                      res.stderr)
        res = self.cutpilot("approve", "x", "--state-dir", self.state)
        self.assertEqual(res.returncode, 1)
        self.assertIn("no cockpit answers", res.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
