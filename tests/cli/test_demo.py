"""`cutpilot demo --headless --json --approve-all`: the demo plan runs on a fresh lab and
moves the files, the database and the page; every line follows the --json schema; the
lab is gone afterwards (the real binary)."""

import json
import os
import re
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from labcase import marked_pids  # noqa: E402
from test_run import check_schema  # noqa: E402

CUTPILOT = os.environ.get("CUTPILOT_BIN", str(Path(__file__).resolve().parents[2] / "build/bin/cutpilot"))


class DemoTest(unittest.TestCase):
    def test_demo_runs_the_plan_on_the_lab_and_cleans_up(self):
        res = subprocess.run([CUTPILOT, "demo", "--headless", "--json", "--approve-all"],
                             capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        self.assertEqual(res.returncode, 0, res.stdout[-3000:] + res.stderr[-3000:])
        events = check_schema(self, res.stdout.splitlines())
        final = {e["step"]: e["state"] for e in events if e["type"] == "step"}
        for step in ("presync", "replicate-db", "catch-up-db", "final-sync", "verify-files", "smoke", "old-db-idle"):
            self.assertEqual(final.get(step), "succeeded", step)
        if final.get("seed-container") == "succeeded":  # podman works here
            self.assertEqual(final.get("start-container"), "succeeded")
            self.assertTrue(any(e["type"] == "health" and e["target"] == "shop-web" for e in events))
        else:
            self.assertEqual(final.get("start-container"), "skipped")
        logs = [e for e in events if e["type"] == "log"]
        self.assertTrue(any(e["step"] == "catch-up-db" and "row counts equal in 4 tables" in e["line"]
                            for e in logs), "the replica was not verified")
        self.assertTrue(any(e["step"] == "replicate-db" and "the replica streams" in e["line"] for e in logs))
        self.assertTrue(any(e["step"] == "verify-files" and "identical" in e["line"] for e in logs))
        self.assertTrue(any(e["type"] == "health" and e["status"] == "ok" for e in events))
        downtime = [e["state"] for e in events if e["type"] == "downtime"]
        self.assertEqual(downtime, ["started", "ended"])
        ended = [e for e in events if e["type"] == "downtime" and e["state"] == "ended"][0]
        self.assertIsNotNone(ended["predicted_s"], "no prediction before the window")
        # Issue 21: every step of the window has a source on a first run (the demo gives its
        # steps what the predictor needs: a rehearsal, a pre-sync, `expect`). How close the
        # prediction comes is timing, which a busy machine changes: bench/RESULTS.md measures
        # it on an idle one; here only what load cannot break.
        said = "\n".join(e["line"] for e in logs if e["step"] is None)
        self.assertIn("predicted: catch-up-db", said)
        self.assertNotIn(" unknown", said, "a step of the demo's window has no source")
        self.assertGreater(ended["predicted_s"], 0)
        self.assertEqual((events[-1]["type"], events[-1]["state"]), ("run", "succeeded"))
        lab = re.search(r"starting the lab in (\S+)", res.stderr).group(1)
        self.assertFalse(Path(lab).exists(), f"the demo left {lab} behind")
        self.assertEqual(marked_pids(lab), [], "the demo left lab processes running")


if __name__ == "__main__":
    unittest.main()
