"""A write-up's world on lab hosts, and its example plan run against it (ctest label `scenario`).

Each scenario builds the world of one write-up in ../shared/writeups/ on real lab hosts
(tests/lab/lab: sshd, `lab ops` users with sudo, podman as the Docker API, databases),
runs the unchanged example plan from plans/examples/ through the real cutpilot binary, made
to point at the lab by the ${env:NAME:-DEFAULT} values the plan gives for that, and asserts
the end state the write-up wanted."""

import json
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
sys.path.insert(0, str(ROOT / "tests" / "cli"))
from labcase import LabCase, read_env_file  # noqa: E402
from test_run import RunTest, wait_for  # noqa: E402,F401

EXAMPLES = ROOT / "plans" / "examples"


class ScenarioCase(LabCase):
    """A fresh lab per test; self.state is the run's --state-dir, self.plan_env the plan's ${env:}."""

    def setUp(self):
        self.dir = self.make_lab_dir()
        self.state = str(Path(self.dir, "state"))
        self.plan_env = {}

    def env(self):
        # The plan's runs are recorded (and locked) under XDG_STATE_HOME: each test its own,
        # so two scenarios of one plan may run side by side and earlier runs stay theirs.
        return dict(os.environ, CUTPILOT_LAB=self.dir, XDG_STATE_HOME=f"{self.dir}/xdg-state",
                    **self.plan_env)

    def host_env(self, host, service):
        """The values an add-on wrote for host (DIR/hosts/HOST/SERVICE.env)."""
        return read_env_file(Path(self.dir, "hosts", host, f"{service}.env"))

    def docker(self, host, *args, check=True):
        """The host's docker (its podman, as Debian's podman-docker), as root on that host."""
        res = subprocess.run([str(Path(self.dir, "hosts", host, "bin", "docker")), *args],
                             capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if check:
            self.assertEqual(res.returncode, 0, f"docker {' '.join(args)} on {host}: {res.stderr}")
        return res

    CONTAINERS = ()  # the world's containers on each host, for inspect() and all_healthy()

    def inspect(self, host):
        """name -> (state, health) of the world's containers on host."""
        res = self.docker(host, "inspect", *self.CONTAINERS)
        return {c["Name"].lstrip("/"): (c["State"]["Status"], (c["State"].get("Health") or {}).get("Status"))
                for c in json.loads(res.stdout)}

    def all_healthy(self, host):
        return all(v == ("running", "healthy") for v in self.inspect(host).values())

    PLAN = ""  # the example plan the scenario runs

    def run_args(self, *extra):
        return ["run", self.PLAN, "--headless", "--state-dir", self.state, *extra]

    def run_until_gate(self, step, *approved):
        """Start the run with approved gates ("STEP" or "STEP=CONFIRM TEXT") and wait until step
        awaits its approval; return the process and its output file."""
        approvals = []
        for a in approved:
            approvals += ["--approve", a]
        proc, out = self.start(*self.run_args(*approvals))
        wait_for(lambda: self.state_of(step) == "awaiting-approval" or proc.poll() is not None,
                 600, f"the run to wait at {step}'s gate")
        if proc.poll() is not None:
            out.seek(0)
            self.fail(f"the run ended ({proc.returncode}) before {step}:\n{out.read()[-5000:]}")
        return proc, out

    def abort_run(self, proc, out):
        """`cutpilot abort` the run; return what it printed (it must exit 3: aborted)."""
        res = self.cutpilot("abort", "--state-dir", self.state, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(proc.wait(600), 3)
        out.seek(0)
        return out.read()

    def make_certs(self, name):
        """A CA of the test's own (self.ca) and a certificate for name it signed (self.cert,
        self.key), in DIR/certs."""
        certs = Path(self.dir, "certs")
        certs.mkdir()
        self.ca, self.cert, self.key = certs / "ca.pem", certs / "fullchain.pem", certs / "privkey.pem"

        def openssl(*args):
            subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60,
                           stdin=subprocess.DEVNULL)

        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        openssl("req", "-x509", *ec, "-keyout", f"{certs}/ca.key", "-out", str(self.ca),
                "-subj", "/CN=cutpilot lab CA", "-days", "2")
        openssl("req", *ec, "-keyout", str(self.key), "-out", f"{certs}/site.csr", "-subj", f"/CN={name}")
        Path(certs, "san.ext").write_text(f"subjectAltName=DNS:{name}\n")
        openssl("x509", "-req", "-in", f"{certs}/site.csr", "-CA", str(self.ca), "-CAkey", f"{certs}/ca.key",
                "-CAcreateserial", "-out", str(self.cert), "-days", "2", "-extfile", f"{certs}/san.ext")

    cutpilot = RunTest.cutpilot  # the binary with self.env(), to the end
    start = RunTest.start  # the binary in the background, its output in a file

    def status(self):
        res = self.cutpilot("status", "--json", "--state-dir", self.state, timeout=30)
        return json.loads(res.stdout) if res.returncode == 0 else {}

    def state_of(self, step):
        return {s["step"]: s for s in self.status().get("steps", [])}.get(step, {}).get("state")

    def journal(self):
        return [json.loads(line)
                for line in Path(self.state, "journal.jsonl").read_text().splitlines()]

    def report_downtime(self, scenario):
        """Print the downtime the cockpit measured (the issue note quotes it) and return it."""
        status = self.status()
        downtime = status.get("downtime") or {}
        sys.stderr.write(f"\n[scenario {scenario}: downtime {json.dumps(downtime)}]\n")
        return downtime


def https_get(address, name, ctx: ssl.SSLContext, path):
    """(status, body) of GET path over TLS at address:443, under name (SNI, Host, certificate)."""
    with socket.create_connection((address, 443), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as tls:
            tls.sendall(f"GET {path} HTTP/1.0\r\nHost: {name}\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    return int(head.split()[1]), body
