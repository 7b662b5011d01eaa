"""The lab's WAN relay (lablib/relay.py): delay, order, window and half-close on its own, then
`lab up --rtt` and `lab rtt` with real sshd hosts.

Every timing assertion is a lower bound (a delay the relay must add), never an upper bound,
so a loaded machine cannot fail them."""

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from labcase import LabCase, proc_start  # noqa: E402
from lablib import relay  # noqa: E402

RELAY = Path(__file__).resolve().parent / "lablib" / "relay.py"


class Server:
    """A TCP server behind the relay. Each connection gets one line: "echo" answers every
    chunk at once; "sink" reads to EOF and answers the SHA-256 of what it read; "source N SEED"
    sends N pseudo-random bytes and closes."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _serve(conn):
        with conn:
            f = conn.makefile("rb")
            words = f.readline().split()
            if words == [b"echo"]:
                while True:
                    data = f.read1(65536)
                    if not data:
                        return
                    conn.sendall(data)
            elif words == [b"sink"]:
                h = hashlib.sha256()
                while True:
                    data = f.read1(1 << 20)
                    if not data:
                        break
                    h.update(data)
                conn.sendall(h.hexdigest().encode())  # after our peer's EOF: the half-close
            elif words[:1] == [b"source"]:
                conn.sendall(pseudo_random(int(words[1]), int(words[2])))

    def close(self):
        self.sock.close()


def pseudo_random(n: int, seed: int) -> bytes:
    """n reproducible bytes that a reordering or a lost chunk would change."""
    out, block = bytearray(), hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


class RelayTest(unittest.TestCase):
    """relay.py in front of a plain TCP server."""

    def start(self, rtt_ms: float, window: int = relay.DEFAULT_WINDOW) -> int:
        """Start a relay to a fresh server; return the relay's port."""
        server = Server()
        self.addCleanup(server.close)
        d = Path(tempfile.mkdtemp(prefix="cp-relay-"))
        conf, ready = d / "relay.json", d / "relay.port"
        conf.write_text(json.dumps({"rtt_ms": rtt_ms, "window": window}))
        proc = subprocess.Popen([sys.executable, str(RELAY), "--to", str(server.port), "--conf", str(conf),
                                 "--ready", str(ready)], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(proc.stderr.close)
        self.addCleanup(proc.wait, 30)
        self.addCleanup(proc.terminate)
        self.proc, self.conf = proc, conf
        deadline = time.monotonic() + 30
        while not ready.exists():
            self.assertIsNone(proc.poll(), "the relay exited before it listened")
            self.assertLess(time.monotonic(), deadline, "the relay did not listen within 30 s")
            time.sleep(0.01)
        return int(ready.read_text())

    @staticmethod
    def connect(port: int, hello: bytes) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.sendall(hello)
        return s

    @staticmethod
    def read_all(s: socket.socket) -> bytes:
        chunks = []
        while True:
            data = s.recv(1 << 20)
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def test_each_round_trip_takes_the_rtt(self):
        """The first answer comes after the handshake's round trip and one more; each later
        request's answer after one round trip."""
        port = self.start(rtt_ms=150)
        start = time.monotonic()
        with self.connect(port, b"echo\n") as s:
            s.sendall(b"ping")
            self.assertEqual(s.recv(64), b"ping")
            first = time.monotonic() - start
            later = []
            for i in range(3):
                t = time.monotonic()
                s.sendall(b"ping%d" % i)
                self.assertEqual(s.recv(64), b"ping%d" % i)
                later.append(time.monotonic() - t)
        self.assertGreaterEqual(first, 0.300, "the connection's first round trip did not pay the handshake")
        self.assertGreaterEqual(min(later), 0.150, f"a round trip took less than the RTT: {later}")

    def test_bytes_arrive_whole_and_in_order_both_ways(self):
        """8 MiB each way, in chunks of many sizes: what arrives is what was sent."""
        port = self.start(rtt_ms=20)
        data = pseudo_random(8 << 20, 1)
        with self.connect(port, b"sink\n") as s:
            pos, size = 0, 1
            while pos < len(data):
                s.sendall(data[pos:pos + size])
                pos, size = pos + size, size * 3 % 200_003 + 1
            s.shutdown(socket.SHUT_WR)  # the half-close: the answer still comes back
            self.assertEqual(self.read_all(s).decode(), hashlib.sha256(data).hexdigest())
        with self.connect(port, b"source %d 2\n" % (8 << 20)) as s:
            self.assertEqual(self.read_all(s), pseudo_random(8 << 20, 2))

    def test_the_window_caps_one_connection(self):
        """With a 64 KiB window and 100 ms, 1 MiB cannot arrive before 15 round trips:
        window / RTT is the most one connection moves."""
        port = self.start(rtt_ms=100, window=64 << 10)
        start = time.monotonic()
        with self.connect(port, b"source %d 3\n" % (1 << 20)) as s:
            got = self.read_all(s)
        self.assertEqual(got, pseudo_random(1 << 20, 3))
        self.assertGreaterEqual(time.monotonic() - start, 1.5)

    def test_sighup_changes_the_rtt_of_new_connections(self):
        """A new RTT from the conf file applies to the connections after the SIGHUP."""
        port = self.start(rtt_ms=0)
        self.conf.write_text(json.dumps({"rtt_ms": 400, "window": relay.DEFAULT_WINDOW}))
        self.proc.send_signal(1)
        line = b""
        while b"rtt 400 ms" not in line:
            line = self.proc.stderr.readline()
            self.assertTrue(line, "the relay never said it read the new RTT")
        start = time.monotonic()
        with self.connect(port, b"echo\n") as s:
            s.sendall(b"x")
            self.assertEqual(s.recv(8), b"x")
        self.assertGreaterEqual(time.monotonic() - start, 0.8)

    def test_parse_rtt(self):
        self.assertEqual(relay.parse_rtt("40ms"), 40)
        self.assertEqual(relay.parse_rtt("0.04s"), 40)
        self.assertEqual(relay.parse_rtt("25"), 25)
        for bad in ("fast", "-1ms", "40 m", "11s"):
            with self.assertRaises(ValueError, msg=bad):
                relay.parse_rtt(bad)


class LabRelayTest(LabCase):
    """lab up --rtt: every way into the host crosses the relay."""

    def test_up_with_rtt_puts_every_way_in_behind_the_relay(self):
        d = self.make_lab_dir()
        out = self.lab("up", "--dir", d, "--rtt", "100ms", "a", "b").stdout
        state = self.state(d)
        for name in ("a", "b"):
            h = state["hosts"][name]
            self.assertEqual(h["relay"]["rtt_ms"], 100)
            self.assertEqual(h["port"], int(Path(d, "hosts", name, "relay.port").read_text()))
            self.assertNotEqual(h["port"], h["sshd_port"])
            self.assertIn(f"Port {h['sshd_port']}\n", Path(h["sshd_config"]).read_text())
            self.assertIn(f"127.0.0.1:{h['port']}", out)
            # ssh (and so the cockpit, and the other hosts) resolve the relay's port
            g = subprocess.run(["ssh", "-G", "-F", f"{d}/ssh_config", name], capture_output=True,
                               text=True, check=True).stdout
            self.assertIn(f"\nport {h['port']}\n", g)
        start = time.monotonic()
        res = self.ssh(d, "b", f"ssh -F {d}/ssh_config a 'echo $CUTPILOT_LAB_HOST'")
        self.assertEqual(res.stdout.strip(), "a")
        # two logins, each at least its handshake, banners, key exchange, auth and channel: 5 round trips
        self.assertGreaterEqual(time.monotonic() - start, 1.0)
        # every login a's sshd took came through a's relay (it names the port it came from)
        relayed = set(re.findall(r"reaches sshd from port (\d+)", Path(d, "hosts", "a", "relay.log").read_text()))
        logins = re.findall(r"Accepted publickey for \S+ from 127\.0\.0\.1 port (\d+)",
                            Path(d, "hosts", "a", "sshd.log").read_text())
        self.assertTrue(logins, "a's sshd logged no login")
        self.assertLessEqual(set(logins), relayed, "a login reached a's sshd around its relay")
        starts = {state["hosts"][n]["relay"]["pid"]: proc_start(state["hosts"][n]["relay"]["pid"])
                  for n in ("a", "b")}
        self.lab("down", "--dir", d)
        self.assert_gone(starts, "relay")

    def test_rtt_changes_a_relayed_host_and_refuses_the_rest(self):
        d = self.make_lab_dir()
        self.lab("up", "--dir", d, "--rtt", "0ms", "wan")
        self.lab("up", "--dir", d, "lan")
        out = self.lab("rtt", "--dir", d, "wan", "300ms", "--window", "64K").stdout
        self.assertIn("lab host wan: rtt 300 ms, window 65536 bytes", out)
        r = self.state(d)["hosts"]["wan"]["relay"]
        self.assertEqual((r["rtt_ms"], r["window"]), (300, 65536))
        self.assertEqual(json.loads(Path(r["conf"]).read_text()), {"rtt_ms": 300, "window": 65536})
        log = Path(r["log"])
        deadline = time.monotonic() + 30
        while "rtt 300 ms" not in log.read_text():
            self.assertLess(time.monotonic(), deadline, f"the relay never read the new RTT:\n{log.read_text()}")
            time.sleep(0.02)
        start = time.monotonic()
        self.ssh(d, "wan", "true")
        self.assertGreaterEqual(time.monotonic() - start, 1.5)  # at least 5 round trips of 300 ms
        res = self.lab("rtt", "--dir", d, "lan", "40ms", check=False)
        self.assertEqual(res.returncode, 1)
        self.assertIn("lab host 'lan' has no relay: start it with `lab up --rtt RTT lan`", res.stderr)
        self.assertNotIn("relay", self.state(d)["hosts"]["lan"])

    def test_bad_rtt_or_window_changes_nothing(self):
        d = os.path.join(self.make_lab_dir(), "new")
        for args, said in ((["--rtt", "fast"], "bad RTT 'fast'"),
                           (["--rtt", "40ms", "--window", "tiny"], "bad window 'tiny'"),
                           (["--window", "4M"], "--window needs --rtt")):
            res = self.lab("up", "--dir", d, *args, "a", check=False)
            self.assertEqual(res.returncode, 1, args)
            self.assertIn(said, res.stderr)
            self.assertFalse(os.path.exists(d), f"lab up {args} created {d}")


if __name__ == "__main__":
    unittest.main()
