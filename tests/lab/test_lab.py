"""End-to-end tests of the lab's hosts: real sshd, real ssh client, lab up/down/status."""

import concurrent.futures
import os
import re
import signal
import socket
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from labcase import LabCase, descendants, marked_pids, proc_start  # noqa: E402


class LabTest(LabCase):
    """lab up / down / status with real sshd hosts on 127.0.0.1."""

    def test_ssh_three_hosts(self):
        """The real ssh client reaches three hosts; each has its own HOME and known port."""
        d = self.make_lab_dir()
        out = self.lab("up", "--dir", d, "a", "b", "c").stdout
        state = self.state(d)
        homes = set()
        for name in ("a", "b", "c"):
            port = state["hosts"][name]["port"]
            self.assertRegex(out, rf"\b{name}\s+127\.0\.0\.1:{port}\s+ssh -F {re.escape(d)}/ssh_config {name}")
            self.ssh(d, name, "true")
            res = self.ssh(d, name, 'echo "$HOME|$CUTPILOT_LAB_HOST|$CUTPILOT_LAB_DIR"')
            self.assertEqual(res.stdout.strip(), f"{d}/hosts/{name}/home|{name}|{d}")
            homes.add(res.stdout.split("|")[0])
        self.assertEqual(len(homes), 3, "each lab host must have its own home")
        known = Path(d, "known_hosts").read_text().splitlines()
        self.assertEqual(sorted(line.split()[0] for line in known),
                         sorted(f"[127.0.0.1]:{h['port']}" for h in state["hosts"].values()))

    def test_proxyjump(self):
        """ProxyJump through one lab host to another works (AllowTcpForwarding)."""
        d = self.make_lab_dir()
        self.lab("up", "--dir", d, "jump", "inner")
        log = Path(d, "hosts", "jump", "sshd.log")
        before = log.read_text().count("Accepted publickey")
        res = self.ssh(d, "inner", "echo $CUTPILOT_LAB_HOST", "-J", "jump")
        self.assertEqual(res.stdout.strip(), "inner")
        self.assertEqual(log.read_text().count("Accepted publickey"), before + 1,
                         "the connection to 'inner' did not go through 'jump'")

    def test_wrong_known_hosts(self):
        """ssh refuses a host key that is wrong or unknown (strict checking)."""
        d = self.make_lab_dir()
        self.lab("up", "--dir", d, "a", "b")
        state = self.state(d)
        port_a, key_b = state["hosts"]["a"]["port"], state["hosts"]["b"]["host_key"]
        swapped = Path(d, "swapped_known_hosts")
        swapped.write_text(f"[127.0.0.1]:{port_a} {key_b}\n")
        empty = Path(d, "empty_known_hosts")
        empty.write_text("")
        self.ssh(d, "a", "true")  # the right known_hosts works, so the failures below are the keys
        for bad, expect in ((swapped, "REMOTE HOST IDENTIFICATION HAS CHANGED"),
                            (empty, "No ED25519 host key is known")):
            res = self.ssh(d, "a", "echo reached", "-o", f"UserKnownHostsFile={bad}", check=False)
            self.assertNotEqual(res.returncode, 0, f"ssh accepted a wrong known_hosts ({bad.name})")
            self.assertNotIn("reached", res.stdout)
            self.assertIn("Host key verification failed", res.stderr)
            self.assertIn(expect, res.stderr)

    def test_down_stops_everything(self):
        """lab down stops recorded PIDs, per-connection sshd children and detached jobs."""
        d = self.make_lab_dir()
        self.lab("up", "--dir", d, "a", "b")
        job = int(self.ssh(d, "a", "nohup sleep 300 >/dev/null 2>&1 & echo $!").stdout.strip())
        session = subprocess.Popen(["ssh", "-F", f"{d}/ssh_config", "b", "sleep 300"],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        self.addCleanup(session.wait, 30)
        state = self.state(d)
        recorded = [r["pid"] for r in state["pids"]]
        sshd_pids = [h["pid"] for h in state["hosts"].values()]
        deadline = time.monotonic() + 10
        while len(descendants([sshd_pids[1]])) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # wait for b's per-connection sshd and its `sleep 300`
        pids = set(recorded) | {job} | set(descendants(sshd_pids))
        starts = {pid: proc_start(pid) for pid in pids}
        self.assertNotIn(None, starts.values(), f"a lab process was not running before down: {starts}")
        self.assertGreaterEqual(len(starts), len(recorded) + 3)  # + job, b's sshd child and its sleep
        self.assertIn(job, marked_pids(d), "the detached job should carry the lab marker")
        self.lab("down", "--dir", d)
        self.assert_gone(starts, "lab processes")
        self.assertEqual(marked_pids(d), [], "processes with this lab's marker remain")
        self.assertNotEqual(session.wait(30), 0, "the ssh session should have been cut by lab down")

    def test_twenty_hosts_fast(self):
        """20 hosts come up in well under 10 s and all answer ssh."""
        d = self.make_lab_dir()
        names = [f"h{i:02d}" for i in range(20)]
        t0 = time.monotonic()
        self.lab("up", "--dir", d, *names)
        seconds = time.monotonic() - t0
        sys.stderr.write(f"\n[lab up of 20 hosts took {seconds:.2f} s] ")
        self.assertLess(seconds, 10.0)
        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(lambda n: self.ssh(d, n, "echo $CUTPILOT_LAB_HOST", check=False), names))
        self.assertEqual([r.stdout.strip() for r in results], names,
                         [r.stderr for r in results if r.returncode])

    def test_hundred_hosts(self):
        """100 hosts come up on distinct ports, answer, and all stop."""
        d = self.make_lab_dir()
        names = [f"n{i:03d}" for i in range(100)]
        t0 = time.monotonic()
        self.lab("up", "--dir", d, *names)
        seconds = time.monotonic() - t0
        sys.stderr.write(f"\n[lab up of 100 hosts took {seconds:.2f} s] ")
        self.assertLess(seconds, 30.0)
        state = self.state(d)
        self.assertEqual(len({h["port"] for h in state["hosts"].values()}), 100, "ports must be distinct")
        for name in names:  # every sshd answers on its port; a real login on every tenth host
            with socket.create_connection(("127.0.0.1", state["hosts"][name]["port"]), timeout=10) as s:
                self.assertTrue(s.recv(64).startswith(b"SSH-2.0-"), name)
        sample = names[::10] + [names[-1]]
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(sample)) as pool:
            results = list(pool.map(lambda n: self.ssh(d, n, "echo $CUTPILOT_LAB_HOST", check=False), sample))
        self.assertEqual([r.stdout.strip() for r in results], sample,
                         [r.stderr for r in results if r.returncode][:3])
        starts = {h["pid"]: proc_start(h["pid"]) for h in state["hosts"].values()}
        t0 = time.monotonic()
        self.lab("down", "--dir", d)
        sys.stderr.write(f"[lab down of 100 hosts took {time.monotonic() - t0:.2f} s] ")
        self.assert_gone(starts, "sshd")

    def test_down_idempotent(self):
        """lab down succeeds on running, stopped, half-started and never-started labs."""
        d = self.make_lab_dir()
        self.lab("up", "--dir", d, "a")
        pid = self.state(d)["hosts"]["a"]["pid"]
        self.lab("down", "--dir", d)
        self.assertIsNone(proc_start(pid))
        self.lab("down", "--dir", d)
        self.assertIn("a: 127.0.0.1", self.lab("status", "--dir", d).stdout)
        # A half-started lab: lab.json cut short, one marked process running.
        Path(d, "lab.json").write_text('{"hosts": {')
        env = dict(os.environ, CUTPILOT_LAB_DIR=d)
        stray = subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)
        self.addCleanup(stray.wait, 10)
        res = self.lab("down", "--dir", d)
        self.assertIn("warning", res.stdout)
        self.assertIsNotNone(stray.wait(10), "the marked process survived lab down")
        self.assertEqual(stray.returncode, -signal.SIGTERM)
        # A directory that never held a lab.
        self.lab("down", "--dir", os.path.join(d, "never-started"))

    def test_duplicate_name(self):
        """lab up with a name that exists (or is given twice) fails clearly and changes nothing."""
        d = self.make_lab_dir()
        self.lab("up", "--dir", d, "a", "b")
        before = {f: Path(d, f).read_bytes() for f in ("lab.json", "ssh_config", "known_hosts")}
        res = self.lab("up", "--dir", d, "b", "c", check=False)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("'b' already exists", res.stderr)
        self.assertEqual({f: Path(d, f).read_bytes() for f in before}, before, "a failed up changed files")
        res = self.lab("up", "--dir", d, "x", "x", check=False)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("'x' is given twice", res.stderr)
        self.assertEqual(sorted(self.state(d)["hosts"]), ["a", "b"])

    def test_up_adds_hosts(self):
        """A second lab up adds hosts and keeps the client key and the first hosts."""
        d = self.make_lab_dir()
        self.lab("up", "--dir", d, "a")
        key = Path(d, "id_ed25519").read_bytes()
        port_a = self.state(d)["hosts"]["a"]["port"]
        self.lab("up", "--dir", d, "b")
        self.assertEqual(Path(d, "id_ed25519").read_bytes(), key, "a second up replaced the client key")
        self.assertEqual(self.state(d)["hosts"]["a"]["port"], port_a)
        self.assertEqual(len(Path(d, "known_hosts").read_text().splitlines()), 2)
        for name in ("a", "b"):
            self.assertEqual(self.ssh(d, name, "echo $CUTPILOT_LAB_HOST").stdout.strip(), name)

    def test_down_spares_other_lab(self):
        """lab down of one lab leaves another lab's processes alone."""
        d1, d2 = self.make_lab_dir(), self.make_lab_dir()
        self.lab("up", "--dir", d1, "a")
        self.lab("up", "--dir", d2, "a")
        jobs = {d: int(self.ssh(d, "a", "nohup sleep 300 >/dev/null 2>&1 & echo $!").stdout) for d in (d1, d2)}
        sshd = {d: self.state(d)["hosts"]["a"]["pid"] for d in (d1, d2)}
        starts2 = {p: proc_start(p) for p in (jobs[d2], sshd[d2])}
        self.lab("down", "--dir", d1)
        self.assertIsNone(proc_start(jobs[d1]))
        self.assertIsNone(proc_start(sshd[d1]))
        for pid, start in starts2.items():
            self.assertEqual(proc_start(pid), start, f"lab down of {d1} killed {pid} of {d2}")
        self.assertEqual(self.ssh(d2, "a", "echo alive").stdout.strip(), "alive")

    def test_status(self):
        """lab status tells which PIDs are alive."""
        d = self.make_lab_dir()
        self.lab("up", "--dir", d, "a")
        pid = self.state(d)["hosts"]["a"]["pid"]
        self.assertRegex(self.lab("status", "--dir", d).stdout, rf"a: 127\.0\.0\.1:\d+ sshd pid {pid} alive")
        self.lab("down", "--dir", d)
        self.assertRegex(self.lab("status", "--dir", d).stdout, rf"a: 127\.0\.0\.1:\d+ sshd pid {pid} dead")
        res = self.lab("status", "--dir", os.path.join(d, "nothing"), check=False)
        self.assertEqual(res.returncode, 1)
        self.assertIn("no lab in", res.stderr)

    def test_up_failure_cleans_up(self):
        """A host whose sshd cannot start fails `up` with its log; the other hosts are stopped."""
        d = self.make_lab_dir()
        bad = Path(d, "hosts", "bad")
        bad.mkdir(parents=True)
        (bad / "ssh_host_ed25519_key").write_text("not a key\n")
        (bad / "ssh_host_ed25519_key.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBogus bad\n")
        res = self.lab("up", "--dir", d, "good", "bad", check=False)
        self.assertEqual(res.returncode, 1, res.stdout)
        self.assertIn("lab host 'bad': sshd exited", res.stderr)
        self.assertIn(f"{bad}/sshd.log", res.stderr)
        self.assertRegex(res.stderr, r"(?i)host key|hostkeys")  # the tail of sshd.log says why
        self.assertEqual(self.state(d)["hosts"], {}, "a failed up must not keep its hosts")
        good_log = Path(d, "hosts", "good", "sshd.log").read_text()
        self.assertIn("Received signal 15", good_log, "the good host's sshd was not stopped")
        self.lab("up", "--dir", d, "good")  # the names are free again
        self.assertEqual(self.ssh(d, "good", "echo $CUTPILOT_LAB_HOST").stdout.strip(), "good")

    def test_bind_race_retry(self):
        """An sshd that loses its port to another process is restarted on a fresh port."""
        from lablib import core, sshd
        d = self.make_lab_dir()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            taken = busy.getsockname()[1]
            lab = core.Lab.create(d)
            fresh, handed = lab.free_port, iter([taken])
            lab.free_port = lambda: next(handed, None) or fresh()
            hosts = sshd.add_hosts(lab, ["a"])
        self.assertNotEqual(hosts[0]["port"], taken)
        self.assertIn("Address already in use", Path(d, "hosts", "a", "sshd.log").read_text())
        self.assertEqual(self.ssh(d, "a", "echo ok").stdout.strip(), "ok")


if __name__ == "__main__":
    unittest.main()
