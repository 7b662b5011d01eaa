"""The real `cutpilot run` in its TUI, in tmux, against lab hosts: a sync's bar, a gate
approved with its confirmation text, the downtime clock, resizes, and `q` leaving the
agents' jobs running until `--resume` shows them again."""

import os
import re
import signal
import subprocess
import sys
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[0] / "lab"))
from labcase import LabCase  # noqa: E402
from test_cockpit_tmux import Tmux  # noqa: E402

CUTPILOT = os.environ.get("CUTPILOT_BIN", str(HERE.parents[1] / "build/bin/cutpilot"))
WAIT = 60.0

PLAN = '''[plan]
name = "tui run"
ssh_config = "${env:CUTPILOT_LAB}/ssh_config"
[vars]
lab = "${env:CUTPILOT_LAB}"
[hosts.source]
[hosts.target]

[[steps]]
id = "presync"
on = "target"
sync = { from = "source:${lab}/hosts/source/home/data/", to = "${lab}/hosts/target/home/copy/", bwlimit = "1MiB" }

[[steps]]
id = "stop-app"
needs = ["presync"]
on = "source"
gate = "approve"
confirm = "stop"
downtime = "start"
exec = { run = ["true"] }

[[steps]]
id = "slow"
needs = ["stop-app"]
on = "target"
exec = { run = ["sleep", "__SLEEP__"] }

[[steps]]
id = "done"
needs = ["slow"]
on = "target"
downtime = "end"
exec = { run = ["true"] }
'''


class CockpitRunTest(LabCase):
    def setUp(self):
        self.dir = self.make_lab_dir()
        self.lab("up", "--dir", self.dir, "source", "target")
        data = Path(self.dir, "hosts", "source", "home", "data")
        data.mkdir(parents=True)
        for i in range(40):
            (data / f"f{i}").write_bytes(os.urandom(100_000))
        # A sleep nobody else runs, so the test can find the agent's job by it.
        self.sleep = f"{7 + (os.getpid() % 100) / 1000:.3f}"
        self.plan = Path(self.dir, "plan.toml")
        self.plan.write_text(PLAN.replace("__SLEEP__", self.sleep))
        self.state = str(Path(self.dir, "state"))

    def cockpit(self, *args, cols=80, rows=24):
        env = {"TERM": "tmux-256color", "LANG": "C.UTF-8", "CUTPILOT_LAB": self.dir}
        t = Tmux([CUTPILOT, "run", str(self.plan), "--state-dir", self.state, *args], cols, rows, env)
        self.addCleanup(t.kill)
        return t

    def wait(self, t, pattern, timeout=WAIT):
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = t.screen()
            found = re.search(pattern, screen, re.M)
            if found:
                return found, screen
            time.sleep(0.1)
        self.fail(f"no {pattern!r} within {timeout} s; the screen:\n{screen}")

    def wait_dead(self, t, what, timeout=WAIT):
        """Waits until the cockpit in pane t has exited (a sanitizer build takes a while to
        leave after its last words)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if t.dead():
                return
            time.sleep(0.1)
        self.fail(f"the cockpit still runs {timeout} s after {what}")

    def assert_clean(self, t, cols, rows):
        screen = t.screen()
        lines = screen.split("\n")
        self.assertLessEqual(len(lines), rows + 1, screen)
        for line in lines:
            self.assertLessEqual(len(line), cols, f"a line wider than {cols}:\n{screen}")
        self.assertIn("tui run", lines[0], f"no top bar after a resize:\n{screen}")
        self.assertIn("Steps (4)", lines[1], f"no steps pane after a resize:\n{screen}")
        self.assertEqual(sum("Steps (" in line for line in lines), 1, f"a pane drawn twice:\n{screen}")

    def wait_clean(self, t, cols, rows, timeout=WAIT):
        """Waits until the cockpit has redrawn itself cleanly at cols x rows after a resize."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.assert_clean(t, cols, rows)
                lines = t.screen().split("\n")
                if cols > 80 and max(len(line) for line in lines) <= 80:
                    raise AssertionError("not redrawn at the new width yet")
                return
            except AssertionError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def sleeping(self):
        res = subprocess.run(["pgrep", "-f", f"^sleep {self.sleep}$"], capture_output=True, text=True)
        return res.returncode == 0

    def test_gate_bar_clock_resize_and_leaving_with_q(self):
        t = self.cockpit()
        # Each host's facts from its agent, beside its state.
        self.wait(t, r"source\s+ready\s+agent \d")  # the pane cuts the rest at 80 columns
        # The sync's bar advances and reaches 100 %.
        seen = set()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and 100 not in seen:
            for pct in re.findall(r"presync@target\s*\[[^\]]*\]\s*(\d+)%", t.screen()):
                seen.add(int(pct))
            time.sleep(0.1)
        self.assertIn(100, seen, "the sync's bar never reached 100 %")
        self.assertTrue(any(p < 100 for p in seen), f"the bar never showed progress: {seen}")
        # The gate waits; no downtime clock before its start.
        _, screen = self.wait(t, r"stop-app\s+APPROVE\?")
        self.assertNotIn("DOWNTIME", screen.split("\n")[0], "the downtime clock runs before its start")
        t.keys("Down")
        t.keys("a")
        self.wait(t, r'type "stop"')
        t.keys("stpo", literal=True)
        t.keys("Enter")
        self.wait(t, r"the text does not match: not approved")
        self.assertRegex(t.screen(), r"stop-app\s+APPROVE\?", "a wrong confirmation approved")
        t.keys("a")
        self.wait(t, r'type "stop"')
        t.keys("stop", literal=True)
        t.keys("Enter")
        # The downtime clock appears once the window starts.
        self.wait(t, r"DOWNTIME \d+:\d\d")
        self.wait(t, r"slow\s+(running|\S+\s+\d+:\d\d)")
        for cols, rows in ((200, 60), (80, 24)):
            t.resize(cols, rows)
            self.wait_clean(t, cols, rows)
        # q leaves the cockpit; the agent's job goes on without it.
        self.assertTrue(self.sleeping(), "the slow step's job is not running")
        # Inside the downtime window q asks first.
        t.keys("q")
        self.wait(t, r"The downtime window is open")
        t.keys("y")
        # What cutpilot says after the cockpit closed (long lines wrap at 80 columns).
        self.wait(t, r"--resume --state-dir")
        self.assertTrue(self.sleeping(), "leaving the cockpit stopped the agent's job")
        # --resume shows the job again, and the run finishes.
        again = self.cockpit("--resume")
        self.wait(again, r"slow\s+running")
        # The resumed cockpit shows the clock that kept running, as status does.
        self.wait(again, r"DOWNTIME \d+:\d\d")
        self.wait(again, r"succeeded", timeout=WAIT)
        self.wait(again, r"done\s+ok")
        again.keys("q")

    def cockpit_pid(self):
        """The pid of the cutpilot process running this test's plan."""
        res = subprocess.run(["pgrep", "-f", str(self.plan)], capture_output=True, text=True)
        for pid in map(int, res.stdout.split()):
            try:
                if os.readlink(f"/proc/{pid}/exe") == os.path.realpath(CUTPILOT):
                    return pid
            except OSError:
                continue
        return None

    def test_a_hangup_or_a_term_leaves_the_cockpit_as_q_does(self):
        """A closed tmux pane (SIGHUP) or a SIGTERM while a step runs: the cockpit leaves as q
        does, says how to come back, the agent's job goes on, and --resume finishes the run."""
        # Long enough for two cockpits to come and go while it runs, on a busy machine too.
        self.sleep = f"{30 + (os.getpid() % 100) / 1000:.3f}"
        self.plan.write_text(PLAN.replace("__SLEEP__", self.sleep))
        t = self.cockpit("--approve", "stop-app=stop")
        for sig in (signal.SIGHUP, signal.SIGTERM):
            self.wait(t, r"slow\s+running")
            self.assertTrue(self.sleeping(), "the slow step's job is not running")
            pid = self.cockpit_pid()
            self.assertIsNotNone(pid, "no cockpit process")
            os.kill(pid, sig)
            self.wait(t, r"--resume --state-dir")
            self.wait_dead(t, sig.name)
            self.assertTrue(self.sleeping(), f"{sig.name} to the cockpit stopped the agent's job")
            t = self.cockpit("--resume")
        self.wait(t, r"succeeded", timeout=WAIT)
        self.wait(t, r"done\s+ok")
        t.keys("q")


if __name__ == "__main__":
    unittest.main()
