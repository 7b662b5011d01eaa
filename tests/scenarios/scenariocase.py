"""A write-up's world on lab hosts, and its example plan run against it (ctest label `scenario`).

Each scenario builds the world of one write-up in ../shared/writeups/ on real lab hosts
(tests/lab/lab: sshd, `lab ops` users with sudo, podman as the Docker API, databases),
runs the unchanged example plan from plans/examples/ through the real cutpilot binary, made
to point at the lab by the ${env:NAME:-DEFAULT} values the plan gives for that, and asserts
the end state the write-up wanted."""

import json
import os
import random
import socket
import ssl
import subprocess
import sys
import threading
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

    def make_certs(self, name, *more_names):
        """A CA of the test's own (self.ca) and a certificate for name (and more_names) it
        signed (self.cert, self.key), in DIR/certs."""
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
        sans = ",".join(f"DNS:{n}" for n in (name, *more_names))
        Path(certs, "san.ext").write_text(f"subjectAltName={sans}\n")
        openssl("x509", "-req", "-in", f"{certs}/site.csr", "-CA", str(self.ca), "-CAkey", f"{certs}/ca.key",
                "-CAcreateserial", "-out", str(self.cert), "-days", "2", "-extfile", f"{certs}/san.ext")

    WEBAPP = Path(__file__).resolve().parent / "webapp.py"  # the stand-in application

    def web_world(self, app_hosts, dns_host, rtt=None):
        """Lab hosts app_hosts (each with `lab postgres`) and dns_host (`lab dns`): self.pg and
        self.dns hold their env values, self.ip each app host's own loopback address (.10,
        .20, ... of a random 127.A.B). rtt maps a host to the round trip of the WAN relay
        it sits behind (`lab up --rtt`), for a host at the far end of a slow link."""
        rtt = rtt or {}
        self.lab("up", "--dir", self.dir, *(h for h in (*app_hosts, dns_host) if h not in rtt))
        for host, value in rtt.items():
            self.lab("up", "--dir", self.dir, "--rtt", value, host)
        for host in app_hosts:
            self.lab("postgres", "--dir", self.dir, host, timeout=300)
        self.lab("dns", "--dir", self.dir, dns_host)
        self.pg = {h: self.host_env(h, "postgres") for h in app_hosts}
        self.dns = self.host_env(dns_host, "dns")
        net = loopback_net()
        self.ip = {h: f"{net}.{10 * (i + 1)}" for i, h in enumerate(app_hosts)}

    def psql(self, host, db, sql, user="postgres", password=None):
        """psql on host's `lab postgres`, by TCP with a password (as user; default the superuser)."""
        e = self.pg[host]
        env = dict(os.environ, PGPASSWORD=password or e["PGPASSWORD_LAB"])
        res = subprocess.run([f"{e['PGBIN']}/psql", "-X", "-At", "-h", "127.0.0.1", "-p", e["PGPORT"],
                              "-U", user, "-d", db, "-v", "ON_ERROR_STOP=1", "-c", sql],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)
        self.assertEqual(res.returncode, 0, f"psql on {host}: {res.stderr}")
        return res.stdout.strip()

    def dns_update(self, dns, *lines):
        """A signed update to a `lab dns` server (dns: its env file's values), as the zone's
        owner would send it by hand ("update add NAME TTL A ADDRESS", ...)."""
        script = "\n".join([f"server 127.0.0.1 {dns['DNS_PORT']}", f"zone {dns['DNS_ZONE']}", *lines, "send", ""])
        key = f"{dns['DNS_TSIG_ALGORITHM']}:{dns['DNS_TSIG_NAME']}:{dns['DNS_TSIG_SECRET']}"
        res = subprocess.run(["knsupdate", "-y", key], input=script, capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)

    @staticmethod
    def dns_answer(dns, name):
        """[TTL, "IN", "A", ADDRESS] for each A record of name a `lab dns` server answers."""
        res = subprocess.run(["kdig", "@127.0.0.1", "-p", str(dns["DNS_PORT"]), name, "A", "+noall", "+answer"],
                             capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        return [line.split()[1:] for line in res.stdout.splitlines() if line and not line.startswith(";")]

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


def loopback_net():
    """A random 127.A.B prefix: a test's own service addresses, port 443 free on each."""
    return f"127.{random.randint(1, 250)}.{random.randint(1, 250)}"


def write_file(path: Path, text: str, mode: int = 0o644):
    """Write text to path (its directories made), with mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


class Client(threading.Thread):
    """A user of the site: requests path_of(N) for N = 1, 2, ... at address:443 under name, every
    interval, for as long as it runs. A reply "ok N [WHO]" (status 200) acknowledges N."""

    def __init__(self, address, name, ca, path_of, interval=0.05):
        super().__init__(daemon=True)
        self.address, self.name, self.path_of, self.interval = address, name, path_of, interval
        self.ctx = ssl.create_default_context(cafile=str(ca))
        self.stopping = threading.Event()
        self.acked, self.who, self.failed, self.next = [], set(), 0, 1

    def run(self):
        while not self.stopping.wait(self.interval):
            n = self.next
            self.next += 1
            try:
                status, body = https_get(self.address, self.name, self.ctx, self.path_of(n))
            except (OSError, ValueError, IndexError):
                self.failed += 1
                continue
            words = body.split()
            if status == 200 and words[:2] == ["ok", str(n)]:
                self.acked.append(n)
                self.who.update(words[2:3])

    def stop(self):
        self.stopping.set()
        self.join(30)
