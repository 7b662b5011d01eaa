"""A missing secret is an error before anything runs (issue 13, item 5): `cutpilot run` and
`run --resume` refuse a plan whose unfinished steps name an unset password_env, with a
did-you-mean, write no journal and touch no host; `cutpilot check` only warns (the real binary)."""

import signal
import unittest
from pathlib import Path

from runcase import RunCase, wait_for


def db_step(step_id, variable, extra=""):
    """A db copy step on target whose source password comes from variable."""
    return f'''
[[steps]]
id = "{step_id}"
on = "target"
{extra}db = {{ engine = "postgres", from = {{ host = "source", database = "shop", password_env = "{variable}" }}, to = {{ database = "shop" }} }}
'''


class SecretsTest(RunCase):
    def marker_step(self, step_id, extra=""):
        self.markers = getattr(self, "markers", {})
        self.markers[step_id] = Path(self.dir, f"{step_id}-ran")
        return f'''
[[steps]]
id = "{step_id}"
on = "source"
{extra}exec = {{ run = ["touch", "{self.markers[step_id]}"] }}
'''

    def test_a_misspelt_secret_stops_the_run_before_anything_runs(self):
        plan = self.plan(self.marker_step("first") + db_step("copy", "CP_TEST_DB_PASSWORD",
                                                           'needs = ["first"]\n'))
        self.extra_env = {"CP_TEST_DB_PASSWORT": "hunter2-value"}
        self.drop_env = ("CP_TEST_DB_PASSWORD",)
        before = self.host_files()
        res = self.cutpilot("run", plan, "--headless", "--state-dir", self.state)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertRegex(res.stderr, r"plan\.toml:\d+:\d+: error: step 'copy': environment variable "
                                     r"'CP_TEST_DB_PASSWORD' .*is not set")
        self.assertIn("did you mean 'CP_TEST_DB_PASSWORT'?", res.stderr)
        self.assertNotIn("hunter2-value", res.stdout + res.stderr, "a secret was printed")
        self.assertFalse(Path(self.state).exists(), "a refused run created its state directory")
        self.assertFalse(self.markers["first"].exists(), "a step ran before the refusal")
        self.assertEqual(self.host_files(), before, "a refused run touched a host")
        # `check` is often run away from the cockpit's environment: there it is a warning.
        res = self.cutpilot("check", plan)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertRegex(res.stderr, r"warning: .*'CP_TEST_DB_PASSWORD' is not set")

    def test_resume_refuses_a_missing_secret_of_an_unfinished_step_only(self):
        plan = self.plan(self.marker_step("first")
                         + db_step("skipped", "CP_TEST_SKIPPED_PW",
                                   'needs = ["first"]\nwhen = "first.failed"\n')
                         + self.marker_step("gated", 'needs = ["first"]\ngate = "approve"\n')
                         + db_step("later", "CP_TEST_LATER_PW", 'needs = ["gated"]\n'))
        self.extra_env = {"CP_TEST_SKIPPED_PW": "a", "CP_TEST_LATER_PW": "b"}
        proc, _ = self.start("run", plan, "--headless", "--state-dir", self.state)
        journal = Path(self.state, "journal.jsonl")

        def states():
            if not journal.exists():
                return {}
            return {r["step"]: r["state"] for r in self.journal() if r["r"] == "step"}
        wait_for(lambda: states().get("gated") == "awaiting-approval"
                 and states().get("skipped") == "skipped", 60, "the gate, after the skipped step")
        # Every host reached (its agent installed and answering): a kill before that leaves an
        # install on its way, whose files would land after `before` below is taken.
        hosts = {p.name for p in Path(self.dir, "hosts").iterdir()}
        wait_for(lambda: {r["host"] for r in self.journal() if r["r"] == "host"} == hosts, 60,
                 "every host to be reached")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        recorded = journal.read_bytes()

        # The skipped step is finished (its secret may go); the later one is not.
        self.extra_env = {"CP_TEST_LATER_PWD": "b"}
        self.drop_env = ("CP_TEST_SKIPPED_PW", "CP_TEST_LATER_PW")
        before = self.host_files()
        res = self.cutpilot("run", plan, "--headless", "--resume", "--approve", "gated",
                            "--state-dir", self.state)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertRegex(res.stderr, r"error: step 'later': environment variable 'CP_TEST_LATER_PW'")
        self.assertIn("did you mean 'CP_TEST_LATER_PWD'?", res.stderr)
        self.assertNotRegex(res.stderr, r"error: .*CP_TEST_SKIPPED_PW",
                            "a finished (skipped) step's secret was required")
        self.assertEqual(journal.read_bytes(), recorded, "a refused resume wrote to the journal")
        self.assertFalse(self.markers["gated"].exists())
        self.assertEqual(self.host_files(), before, "a refused resume touched a host")

        # With the secret back (the skipped step's still unset), the resume goes on.
        self.extra_env = {"CP_TEST_LATER_PW": "b"}
        self.drop_env = ("CP_TEST_SKIPPED_PW",)
        proc, out = self.start("run", plan, "--headless", "--resume", "--state-dir", self.state)
        wait_for(lambda: any(r["r"] == "resume" for r in self.journal()), 60, "the resume record")
        proc.kill()
        proc.wait(10)


if __name__ == "__main__":
    unittest.main()
