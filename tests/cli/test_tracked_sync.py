"""Change tracking end to end (issue 18): a hot pre-sync with track_changes pulls from the lab
host `source`, a step on the source changes the tree in every way an application does while
the pre-sync's watch runs, and the final copy of the same from/to moves the watch's list alone
(its result says "scan": "tracked" and how many paths, in `cutpilot status --json`). A verify
of the whole tree then finds no difference. A cockpit killed with SIGKILL between the
pre-sync and the final copy resumes following the same watch (not a new one); a watch killed
on the source makes the final copy scan the whole tree and say why."""

import json
import os
import signal
from pathlib import Path

import test_run
from runcase import RunCase, wait_for

# Every kind of change the final copy must carry, made on the source while the watch runs.
CHANGES = " && ".join([
    "cd ${lab}/hosts/source/app",
    "echo appended >> logs/current",            # append
    "echo new > img/new-file",                  # write
    "rm img/f1",                                # delete
    "mv img/f2 docs/f2-renamed",                # rename across directories
    "mv docs/sub docs-moved",                   # a directory moves
    "echo after > docs-moved/after-the-move",   # ...and changes where it went
    "mkdir -p fresh/x/y && echo deep > fresh/x/y/z",  # new nested directories
    "ln img/f3 img/f3-link",                    # a hard link
    "chmod 600 img/f4",                         # chmod
    "rm img/f5 && ln -s f6 img/f5",             # a file becomes a symlink
    "rm -r old-dir",                            # a tree goes
    "rm -r logs && echo now-a-file > logs",     # a non-empty directory becomes a file
])


class TrackedSyncTest(RunCase):
    status = test_run.RunTest.status
    step_state = test_run.RunTest.step_state
    def setUp(self):
        super().setUp()
        app = Path(self.dir, "hosts", "source", "app")
        for d in ("img", "docs/sub", "logs", "old-dir/inner", "untouched"):
            (app / d).mkdir(parents=True, exist_ok=True)
        for i in range(1, 301):
            (app / "img" / f"f{i}").write_text(f"image {i}\n")
            (app / "untouched" / f"u{i}").write_text(f"never changes {i}\n")
        for i in range(20):
            (app / "docs" / "sub" / f"d{i}").write_text("doc\n" * 100)
        (app / "logs" / "current").write_text("line\n")
        (app / "old-dir" / "inner" / "x").write_text("x\n")

    def tracked_plan(self, between=CHANGES):
        src, dst = "source:${lab}/hosts/source/app/", "${lab}/hosts/target/app/"
        return self.plan(f'''
[[steps]]
id = "presync"
on = "target"
sync = {{ from = "{src}", to = "{dst}", track_changes = true }}

[[steps]]
id = "writes"
needs = ["presync"]
on = "source"
exec = {{ shell = "{between}" }}

[[steps]]
id = "final"
needs = ["writes"]
on = "target"
gate = "approve"
sync = {{ from = "{src}", to = "{dst}", delete = true }}

[[steps]]
id = "verify"
needs = ["final"]
on = "target"
sync = {{ from = "{src}", to = "{dst}", mode = "verify" }}
''')

    def result_of(self, step):
        for s in self.status()["steps"]:
            if s["step"] == step:
                return s["results"][0]["result"]
        return None

    def test_the_final_copy_moves_what_changed_and_nothing_else(self):
        plan = self.tracked_plan()
        res = self.cutpilot("run", plan, "--headless", "--approve-all", "--state-dir", self.state,
                            timeout=300)
        self.assertEqual(res.returncode, 0, res.stdout[-4000:] + res.stderr[-2000:])
        final = self.result_of("final")
        self.assertEqual(final["scan"], "tracked", final)
        # What changed and the directories it sits in: a few dozen paths, never the 640 entries.
        self.assertLess(final["paths"], 60, final)
        self.assertGreater(final["paths"], 10, final)
        self.assertIn("source and target are identical", res.stdout)
        target = Path(self.dir, "hosts", "target", "app")
        self.assertEqual((target / "docs-moved" / "after-the-move").read_text(), "after\n")
        self.assertTrue((target / "img" / "f5").is_symlink())
        self.assertFalse((target / "old-dir").exists())
        self.assertFalse((target / "docs" / "sub").exists())
        self.assertEqual((target / "logs").read_text(), "now-a-file\n")
        # The watch ended with the run: nothing of it left on the source.
        jobs = Path(self.dir, "hosts", "source", "home", ".cache", "cutpilot", "jobs")
        self.assertEqual([p.name for p in jobs.iterdir() if "track" in p.name], [])

    def test_a_resumed_cockpit_follows_the_watch_and_a_killed_watch_makes_the_copy_scan(self):
        plan = self.tracked_plan()
        proc, out = self.start("run", plan, "--headless", "--state-dir", self.state)
        wait_for(lambda: self.step_state("final", live=True) == "awaiting-approval", 120,
                 "the final copy's gate")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc, out = self.start("run", plan, "--headless", "--resume", "--state-dir", self.state)
        wait_for(lambda: self.step_state("final", live=True) == "awaiting-approval", 120,
                 "the resumed run's gate")
        starts = [r for r in self.journal() if r.get("r") == "track" and "key" in r]
        self.assertEqual(len(starts), 1, starts)  # followed, not started again
        # Kill the watch on the source (its runner: the process holding its spool's lock).
        jobs = Path(self.dir, "hosts", "source", "home", ".cache", "cutpilot", "jobs")
        spool = next(p for p in jobs.iterdir() if "track" in p.name)
        try:
            note = os.getxattr(str(spool), "user.cutpilot.runner").decode()
        except OSError:  # a file system without user attributes: the note is a file
            note = (spool / "runner").read_text()
        pid = int(note.split()[0])
        os.kill(pid, signal.SIGKILL)
        Path(self.dir, "hosts", "source", "app", "untouched", "after-the-kill").write_text("x\n")
        res = self.cutpilot("approve", "final", "--state-dir", self.state)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(proc.wait(300), 0)
        out.seek(0)
        log = out.read()
        final = self.result_of("final")
        self.assertEqual(final["scan"], "full", final)
        self.assertIn("change tracking was lost", final.get("scan_reason", ""))
        self.assertIn("source and target are identical", log)
        self.assertTrue(Path(self.dir, "hosts", "target", "app", "untouched", "after-the-kill").exists())
