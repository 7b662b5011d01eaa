"""A lab case for `cutpilot run` tests outside test_run.py: two lab hosts (source, target) and
test_run.RunTest's helpers, borrowed without its tests."""

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from labcase import LabCase  # noqa: E402
from test_run import CUTPILOT, RFC3339, RunTest, check_schema, wait_for  # noqa: E402,F401


class RunCase(LabCase):
    """Hosts source and target in a fresh lab; self.state is the run's --state-dir."""

    setUp = RunTest.setUp
    plan = RunTest.plan
    cutpilot = RunTest.cutpilot
    start = RunTest.start
    journal = RunTest.journal

    # The environment the binary runs in: the lab, plus extra, without the names in drop.
    extra_env: dict = {}
    drop_env: tuple = ()

    def env(self):
        env = dict(os.environ, CUTPILOT_LAB=self.dir, **self.extra_env)
        for name in self.drop_env:
            env.pop(name, None)
        return env

    def ended(self, proc, out, seconds):
        """The run's exit code; if it is still running after seconds, the test fails showing the
        run's output and the journal's last records (a hang says where it stopped)."""
        try:
            return proc.wait(seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            tail = "\n".join(str(r) for r in self.journal()[-15:])
            self.fail(f"the run was still running after {seconds} s\n"
                      f"{Path(out.name).read_text()[-6000:]}\n-- journal --\n{tail}")

    def host_files(self):
        """Every path under the lab hosts' home directories (where a run leaves its traces)."""
        found = set()
        for home in Path(self.dir, "hosts").glob("*/home"):
            found.update(str(p) for p in home.rglob("*"))
        return found
