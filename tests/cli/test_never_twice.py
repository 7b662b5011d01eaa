"""Never twice, under faults, through the real `cutpilot` binary against lab hosts (issue 14):
a resume while the host is unreachable leaves the step's outcome unknown instead of failing it,
and the resume after the host is back follows the job that still runs instead of starting it
again; a job the agent never had is reported unknown, never started afresh."""

import json
import os
import shutil
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runcase import RunCase, wait_for  # noqa: E402

HEADER_HOSTS = ('[plan]\nname = "moving"\nssh_config = "${env:CUTPILOT_LAB}/ssh_config"\n'
                '[hosts.source]\n[hosts.target]\n[hosts.a]\n')


class NeverTwiceTest(RunCase):
    def status(self):
        res = self.cutpilot("status", "--json", "--state-dir", self.state, timeout=30)
        return json.loads(res.stdout) if res.returncode == 0 else None

    def step(self, step_id):
        status = self.status()
        return next((s for s in status["steps"] if s["step"] == step_id), None) if status else None

    def test_resume_while_the_host_is_unreachable_never_starts_the_job_twice(self):
        marker, release = Path(self.dir, "marker"), Path(self.dir, "release")
        plan = self.plan(f'''
[[steps]]
id = "two"
on = "source"
exec = {{ shell = "echo two-start >> {marker}; while [ ! -e {release} ]; do sleep 0.05; done; echo two-end >> {marker}" }}
''')
        proc, _ = self.start("run", plan, "--headless", "--state-dir", self.state)
        wait_for(lambda: marker.exists() and "two-start" in marker.read_text(), 60, "the job to start")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

        sshd = json.loads(Path(self.dir, "lab.json").read_text())["hosts"]["source"]["pid"]
        os.kill(sshd, signal.SIGSTOP)
        self.addCleanup(lambda: os.kill(sshd, signal.SIGCONT))
        stalled, out = self.start("run", plan, "--headless", "--resume", "--state-dir", self.state)

        def unknown():
            out.seek(0)
            return "may still be running there" in out.read()
        wait_for(unknown, 120, "the host to be given up on")
        step = self.step("two")
        self.assertEqual(step["state"], "running", "a job that may still run was called " + step["state"])
        self.assertIn("outcome unknown", step["detail"])
        stalled.send_signal(signal.SIGTERM)
        self.assertEqual(stalled.wait(30), 1)
        done = [r for r in self.journal() if r["r"] == "done"]
        self.assertEqual(done, [], "the journal recorded an outcome nobody knows")

        os.kill(sshd, signal.SIGCONT)
        resumed, out = self.start("run", plan, "--headless", "--resume", "--state-dir", self.state)
        wait_for(lambda: "re-attached to job" in (out.seek(0) or out.read()), 60, "the re-attach")
        release.touch()
        self.assertEqual(resumed.wait(60), 0)
        self.assertEqual(marker.read_text().split(), ["two-start", "two-end"],
                         "the job ran more than once")
        jobs = [r for r in self.journal() if r["r"] == "job"]
        self.assertEqual(len(jobs), 1)

    def test_a_job_the_agent_no_longer_knows_is_unknown_not_started_afresh(self):
        marker, release = Path(self.dir, "marker"), Path(self.dir, "release")
        plan = self.plan(f'''
[[steps]]
id = "once"
on = "source"
exec = {{ shell = "echo start >> {marker}; while [ ! -e {release} ]; do sleep 0.05; done" }}
''')
        proc, _ = self.start("run", plan, "--headless", "--state-dir", self.state)
        wait_for(lambda: marker.exists(), 60, "the job to start")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # The host loses the job and every trace of it (a reinstalled agent, a wiped cache).
        shell = [pid for pid in os.listdir("/proc") if pid.isdigit()
                 and str(release).encode() in self.cmdline(pid)]
        self.assertTrue(shell, "the job's shell was not found")
        for pid in shell:
            runner = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            for victim in (runner, int(pid)):
                try:
                    os.kill(victim, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        jobs = Path(self.dir, "hosts", "source", "home", ".cache", "cutpilot", "jobs")
        self.assertTrue(jobs.is_dir(), f"no spool root at {jobs}")
        shutil.rmtree(jobs)

        resumed, out = self.start("run", plan, "--headless", "--resume", "--state-dir", self.state)
        wait_for(lambda: (self.step("once") or {}).get("state") == "failed", 60, "the unknown job")
        out.seek(0)
        self.assertEqual(self.step("once")["detail"], "outcome unknown on source")
        self.assertIn("source has no job", out.read())
        self.assertEqual(marker.read_text(), "start\n", "a job the agent did not know was started afresh")
        self.assertEqual([r["state"] for r in self.journal() if r["r"] == "done"], ["unknown"])
        res = self.cutpilot("abort", "--state-dir", self.state)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(resumed.wait(60), 3)
        self.assertEqual(marker.read_text(), "start\n")

    def held_job(self, host_lines=""):
        """A plan whose step `held` runs on host a until release exists; returns plan, marker."""
        marker, release = Path(self.dir, "marker"), Path(self.dir, "release")
        body = (HEADER_HOSTS + host_lines + f'''
[[steps]]
id = "first"
on = "a"
exec = {{ shell = "echo first >> {marker}" }}
[[steps]]
id = "held"
on = "a"
needs = ["first"]
exec = {{ shell = "echo held-start >> {marker}; while [ ! -e {release} ]; do sleep 0.05; done; echo held-end >> {marker}" }}
''')
        return body, marker, release

    def write_plan(self, body):
        path = Path(self.dir, "moving.toml")
        path.write_text(body)
        return str(path)

    def crash_while_held(self, plan, marker):
        proc, _ = self.start("run", plan, "--headless", "--state-dir", self.state)
        wait_for(lambda: marker.exists() and "held-start" in marker.read_text(), 60, "held to start")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def test_a_resume_whose_host_now_resolves_elsewhere_is_refused(self):
        body, marker, release = self.held_job('address = "source"\n')
        plan = self.write_plan(body)
        self.crash_while_held(plan, marker)
        # The plan is edited between the crash and the resume: host a now points at target.
        self.write_plan(body.replace('address = "source"', 'address = "target"'))
        res = self.cutpilot("run", plan, "--headless", "--resume", "--state-dir", self.state)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("a now resolves to", res.stderr)
        self.assertIn("refusing to touch it", res.stderr)
        self.assertEqual(marker.read_text().split(), ["first", "held-start"])
        # Put back, the resume follows the job that still runs on source.
        self.write_plan(body)
        resumed, out = self.start("run", plan, "--headless", "--resume", "--state-dir", self.state)
        wait_for(lambda: "re-attached to job" in (out.seek(0) or out.read()), 60, "the re-attach")
        release.touch()
        self.assertEqual(resumed.wait(60), 0)
        self.assertEqual(marker.read_text().split(), ["first", "held-start", "held-end"])

    def test_a_damaged_journal_is_reported_by_line_and_nothing_runs_twice(self):
        body, marker, release = self.held_job('address = "source"\n')
        plan = self.write_plan(body)
        self.crash_while_held(plan, marker)
        journal = Path(self.state, "journal.jsonl")
        lines = journal.read_text().splitlines(keepends=True)
        # The record of held's job is garbled (without it, "running" with no job reads as
        # "nothing went out"), and the file ends in a torn line.
        hit = next(i for i, line in enumerate(lines)
                   if '"r":"job"' in line.replace(" ", "") and '"step":"held"' in line.replace(" ", ""))
        lines[hit] = "\x00\x00garbage\n"
        journal.write_text("".join(lines) + '{"r":"step","step":"held","sta')
        resumed, out = self.start("run", plan, "--headless", "--resume", "--state-dir", self.state)
        wait_for(lambda: "asking the agents whether it started" in (out.seek(0) or out.read()),
                 60, "the agents asked about held")
        wait_for(lambda: "re-attached to job" in (out.seek(0) or out.read()), 60, "the re-attach")
        release.touch()
        code = resumed.wait(60)
        out.seek(0)
        text = out.read()
        self.assertIn(f"journal.jsonl:{hit + 1}: unreadable record", text)
        self.assertEqual(code, 0, text)
        self.assertEqual(marker.read_text().split(), ["first", "held-start", "held-end"],
                         "a step whose record was unreadable ran again")

    @staticmethod
    def cmdline(pid):
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return b""


if __name__ == "__main__":
    import unittest
    unittest.main()
