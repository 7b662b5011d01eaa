"""The control socket of a running cockpit under clients that misbehave: none of them may end
the cockpit (the real binary against lab hosts)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from labcase import LabCase  # noqa: E402

from test_run import CUTPILOT, HEADER, wait_for  # noqa: E402

# One gated step: the cockpit waits at the gate while the clients come and go.
PLAN = HEADER + '''[hosts.source]
[[steps]]
id = "gated"
on = "source"
gate = "approve"
exec = { run = ["touch", "MARKER"] }
'''


class ControlFaultsTest(LabCase):
    def setUp(self):
        self.dir = self.make_lab_dir()
        self.lab("up", "--dir", self.dir, "source")
        self.state = str(Path(self.dir, "state"))
        self.marker = Path(self.dir, "gated-ran")
        self.plan = Path(self.dir, "plan.toml")
        self.plan.write_text(PLAN.replace("MARKER", str(self.marker)))

    def cutpilot(self, *args):
        return subprocess.run([CUTPILOT, *args], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, env=dict(os.environ, CUTPILOT_LAB=self.dir))

    def gate_state(self):
        res = self.cutpilot("status", "--json", "--state-dir", self.state)
        if res.returncode != 0:
            return None
        return {s["step"]: s["state"] for s in json.loads(res.stdout)["steps"]}.get("gated")

    def test_clients_that_hang_up_before_the_answer_do_not_end_the_cockpit(self):
        out = open(Path(self.dir, "run.out"), "w+")
        self.addCleanup(out.close)
        proc = subprocess.Popen([CUTPILOT, "run", str(self.plan), "--headless", "--json",
                                 "--state-dir", self.state],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=dict(os.environ, CUTPILOT_LAB=self.dir))
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        wait_for(lambda: self.gate_state() == "awaiting-approval", 60, "the gate")

        sock_path = str(Path(self.state, "control.sock"))
        for i in range(50):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                try:
                    client.connect(sock_path)
                    client.sendall(b'{"cmd":"status"}\n')
                except OSError as e:
                    self.fail(f"client {i}: {e}; the cockpit ended (exit {proc.wait(10)})")
            # Closed at once: the cockpit's answer goes to a socket nobody reads any more.
        # Each of those was answered (or found gone) before this one is read: one loop, in order.
        self.assertEqual(self.gate_state(), "awaiting-approval",
                         f"the cockpit stopped answering (exit {proc.poll()})")
        self.assertIsNone(proc.poll(), "the cockpit ended")

        res = self.cutpilot("approve", "gated", "--state-dir", self.state)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(proc.wait(60), 0)
        self.assertTrue(self.marker.exists())
        out.seek(0)
        last = json.loads(out.read().splitlines()[-1])
        self.assertEqual((last["type"], last["state"]), ("run", "succeeded"))


if __name__ == "__main__":
    import unittest
    unittest.main()
