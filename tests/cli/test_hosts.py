"""`cutpilot hosts` and `cutpilot trust` against real lab hosts (the real binary)."""

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from labcase import LabCase  # noqa: E402

CUTPILOT = os.environ.get("CUTPILOT_BIN", str(Path(__file__).resolve().parents[2] / "build/bin/cutpilot"))
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def frame(kind, *fields):
    """One protocol frame (transport/codec.cpp): big-endian length, type byte, fields in order
    (u32 as little-endian, strings as a little-endian u32 length and the bytes)."""
    body = bytes([kind])
    for f in fields:
        body += struct.pack("<I", f) if isinstance(f, int) else struct.pack("<I", len(f)) + f.encode()
    return struct.pack(">I", len(body)) + body


def run_jobs_unacknowledged(home, *argvs):
    """Runs each argv as an exec job to its end with the built agent, as a cockpit that died
    before acknowledging them would leave them: finished spools under HOME."""
    agent = Path(CUTPILOT).parent / "cutpilot-agent"
    with subprocess.Popen([str(agent), "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          env=dict(os.environ, HOME=str(home))) as proc:
        ready = proc.stdout.readline().decode()
        protocol = int(re.search(r"protocol=(\d+)", ready).group(1))
        proc.stdin.write(frame(1, protocol, "test"))  # Hello
        for i, argv in enumerate(argvs):
            proc.stdin.write(frame(2, f"dead-cockpit/step{i}@h1", "exec", json.dumps({"argv": argv})))
        proc.stdin.flush()
        finished = 0
        while finished < len(argvs):
            size = struct.unpack(">I", proc.stdout.read(4))[0]
            body = proc.stdout.read(size)
            finished += body[0] == 68  # JobFinished
            assert body[0] != 71, f"the agent refused a job: {body!r}"  # Error
        proc.stdin.close()
        proc.wait(10)


def meminfo_total():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


class HostsTest(LabCase):
    def setUp(self):
        self.dir = self.make_lab_dir()

    def up(self, *names):
        self.lab("up", "--dir", self.dir, *names)

    def plan(self, body, name="plan.toml"):
        path = Path(self.dir, name)
        path.write_text('[plan]\nname = "hosts test"\nssh_config = "${env:CUTPILOT_LAB}/ssh_config"\n'
                        + body)
        return str(path)

    def cutpilot(self, *args, stdin=subprocess.DEVNULL):
        env = dict(os.environ, CUTPILOT_LAB=self.dir)
        return subprocess.run([CUTPILOT, *args], capture_output=True, text=True, timeout=120,
                              stdin=stdin, env=env)

    def test_table_shows_every_host_ready_with_facts(self):
        self.up("web", "db", "cache")
        plan = self.plan("[hosts.web]\n[hosts.db]\n[hosts.cache]\n")
        res = self.cutpilot("hosts", plan)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        rows = {line.split()[0]: line for line in res.stdout.splitlines()[1:] if line.strip()}
        for host in ("web", "db", "cache"):
            self.assertIn(host, rows)
            self.assertIn(" ready ", rows[host])
            self.assertIn("rsync", rows[host])
        self.assertIn("3 of 3 hosts ready", res.stdout)
        # Which memory figure is which: available of total, not a bare "22.7/23.5".
        header = res.stdout.splitlines()[0]
        self.assertIn("MEM AVAIL/TOTAL GiB", header)
        self.assertIn("DISK FREE GiB", header)

    def test_json_follows_the_schema_and_matches_this_machine(self):
        self.up("h1", "h2")
        plan = self.plan("[hosts.h1]\n[hosts.h2]\n")
        res = self.cutpilot("hosts", plan, "--json")
        self.assertEqual(res.returncode, 0, res.stderr)
        lines = [json.loads(line) for line in res.stdout.splitlines()]
        self.assertEqual([j["host"] for j in lines], ["h1", "h2"])
        root = shutil.disk_usage("/")
        for j in lines:
            self.assertRegex(j["t"], RFC3339)
            self.assertEqual(j["type"], "host")
            self.assertEqual(j["state"], "ready")
            self.assertIsNone(j["error"])
            self.assertEqual(j["cores"], os.cpu_count())
            self.assertEqual(j["mem_total"], meminfo_total())
            self.assertEqual(j["disks"][0]["path"], "/")
            self.assertLess(abs(j["disks"][0]["free"] - root.free), root.total * 0.05)
            self.assertIn("psql", j["tools"])
            self.assertEqual(j["arch"], "x86_64")

    def test_finished_spools_nobody_acknowledged_are_counted_per_host(self):
        self.up("h1", "h2")
        run_jobs_unacknowledged(Path(self.dir, "hosts/h1/home"), ["true"], ["false"])
        plan = self.plan("[hosts.h1]\n[hosts.h2]\n")
        res = self.cutpilot("hosts", plan, "--json")
        self.assertEqual(res.returncode, 0, res.stderr)
        kept = {j["host"]: j["kept_spools"] for j in map(json.loads, res.stdout.splitlines())}
        self.assertEqual(kept, {"h1": 2, "h2": 0})
        res = self.cutpilot("hosts", plan)
        self.assertEqual(res.returncode, 0, res.stderr)
        header, *rows = res.stdout.splitlines()
        self.assertEqual(header.split()[:5], ["HOST", "ADDRESS", "STATE", "AGENT", "SPOOLS"])
        cells = {row.split()[0]: row.split() for row in rows if " ready " in row}
        self.assertEqual((cells["h1"][4], cells["h2"][4]), ("2", "0"))
        self.assertIn("h1 keeps the spools of 2 finished jobs that no cockpit acknowledged",
                      res.stdout)
        self.assertNotIn("h2 keeps", res.stdout)

    def test_one_dead_host_fails_the_command_but_not_the_others(self):
        self.up("good")
        plan = self.plan("[hosts.good]\n[hosts.gone]\naddress = \"good\"\nport = 1\n")
        res = self.cutpilot("hosts", plan, "--json")
        self.assertEqual(res.returncode, 1)
        by_host = {j["host"]: j for j in map(json.loads, res.stdout.splitlines())}
        self.assertEqual(by_host["good"]["state"], "ready")
        self.assertEqual(by_host["gone"]["state"], "failed")
        self.assertIn("gone: cannot connect to 127.0.0.1:1", by_host["gone"]["error"])

    def test_unknown_key_is_refused_then_trusted_with_confirmation(self):
        self.up("h1")
        empty = Path(self.dir, "operator_known_hosts")
        empty.write_text("")
        plan = self.plan(f'known_hosts = "{empty}"\n[hosts.h1]\n')
        fingerprint = subprocess.run(
            ["ssh-keygen", "-lf", f"{self.dir}/hosts/h1/ssh_host_ed25519_key.pub"],
            capture_output=True, text=True).stdout.split()[1]
        res = self.cutpilot("hosts", plan)
        self.assertEqual(res.returncode, 1)
        self.assertIn(f"unknown host key for 127.0.0.1:", res.stdout)
        self.assertIn(f"ssh-ed25519 {fingerprint}", res.stdout)
        self.assertIn("cutpilot trust h1", res.stdout)
        # Without a terminal and without --yes, nothing is added.
        res = self.cutpilot("trust", "h1", "--plan", plan)
        self.assertEqual(res.returncode, 1)
        self.assertIn(fingerprint, res.stdout)
        self.assertEqual(empty.read_text(), "")
        res = self.cutpilot("trust", "h1", "--plan", plan, "--yes")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn(f"added to {empty}", res.stdout)
        self.assertEqual(self.cutpilot("hosts", plan).returncode, 0)
        again = self.cutpilot("trust", "h1", "--plan", plan, "--yes")
        self.assertIn("already trusted", again.stdout)
        self.assertEqual(len(empty.read_text().splitlines()), 1)

    def test_changed_key_is_refused_and_trust_does_not_replace_it(self):
        self.up("h1", "h2")
        port = json.loads(Path(self.dir, "lab.json").read_text())["hosts"]["h1"]["port"]
        h2_key = " ".join(Path(self.dir, "hosts/h2/ssh_host_ed25519_key.pub").read_text().split()[:2])
        swapped = Path(self.dir, "swapped_known_hosts")
        swapped.write_text(f"[127.0.0.1]:{port} {h2_key}\n")
        before = swapped.read_text()
        plan = self.plan(f'known_hosts = "{swapped}"\n[hosts.h1]\n')
        res = self.cutpilot("hosts", plan)
        self.assertEqual(res.returncode, 1)
        self.assertIn("HOST KEY CHANGED", res.stdout)
        res = self.cutpilot("trust", "h1", "--plan", plan, "--yes")
        self.assertEqual(res.returncode, 1)
        self.assertIn("Refusing to replace it", res.stderr)
        self.assertEqual(swapped.read_text(), before)

    def test_bad_plan_names_file_line_and_column_and_connects_nothing(self):
        self.up("h1")
        plan = self.plan("[hosts.h1]\nprot = 22\n")
        res = self.cutpilot("hosts", plan)
        self.assertEqual(res.returncode, 1)
        self.assertRegex(res.stderr, re.escape(plan) + r":5:1: error: unknown key 'prot'")
        self.assertFalse(Path(self.dir, "hosts/h1/home/.cache/cutpilot").exists(),
                         "nothing may be deployed from a bad plan")
