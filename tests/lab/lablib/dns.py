"""`lab dns`: Knot DNS on a lab host, authoritative for a test zone, accepting signed updates.

Write-ups 002, 003 and 004 end by switching DNS. This add-on gives a lab host the real
authoritative server a plan talks to: knotd from Debian's `knot` package, on
127.0.0.1:PORT (UDP and TCP), serving zone example.org from DIR/hosts/NAME/dns/zones, and
accepting RFC 2136 dynamic updates signed with a TSIG key (hmac-sha256) made for this lab.
Everything it writes lives in DIR/hosts/NAME/dns; knotd runs in the foreground as a lab
child, so `lab down` stops it.

DIR/hosts/NAME/dns.env: DNS_SERVER (127.0.0.1), DNS_PORT, DNS_ZONE, DNS_TSIG_NAME,
DNS_TSIG_ALGORITHM, DNS_TSIG_SECRET (base64; a test secret, printed on purpose), DNS_CONF.
The zone holds www (192.0.2.10, TTL 3600: a name whose TTL was never lowered), ns1, and
app (192.0.2.20, TTL 300).
"""

import base64
import os
import subprocess
from pathlib import Path

from .core import Lab, LabError, file_size, tail, write_atomic

KNOTD, KNOTC, KDIG = Path("/usr/sbin/knotd"), Path("/usr/sbin/knotc"), Path("/usr/bin/kdig")
SERVICE = "dns"
ZONE = "example.org"
TSIG_NAME = "cutpilot-lab-update"
TSIG_ALGORITHM = "hmac-sha256"
READY_TIMEOUT_S = 15.0

ZONE_TEXT = """$ORIGIN example.org.
$TTL 3600
@       SOA   ns1 hostmaster 1 3600 600 86400 300
@       NS    ns1
ns1     A     127.0.0.1
www     A     192.0.2.10
app 300 A     192.0.2.20
"""


def render_conf(root: Path, port: int, secret: str) -> str:
    """Return knot.conf: one zone, one update key, every path under root."""
    return "\n".join([
        "# knotd of a cutpilot lab host (written by tests/lab/lablib/dns.py)",
        "server:",
        f"    listen: 127.0.0.1@{port}",
        f'    rundir: "{root / "run"}"',
        "    tcp-reuseport: on",
        "log:",
        "  - target: stderr",
        "    any: info",
        "database:",
        f'    storage: "{root / "db"}"',
        "key:",
        f"  - id: {TSIG_NAME}",
        f"    algorithm: {TSIG_ALGORITHM}",
        f"    secret: {secret}",
        "acl:",
        "  - id: signed-update",
        f"    key: {TSIG_NAME}",
        "    action: update",
        "template:",
        "  - id: default",
        f'    storage: "{root / "zones"}"',
        "    zonefile-sync: 0",  # every change is written to the zone file at once
        "    journal-content: changes",
        "zone:",
        f"  - domain: {ZONE}",
        "    acl: signed-update",
        ""])


def answers(port: int) -> bool:
    """Tell whether the server answers the zone's SOA over UDP."""
    try:
        res = subprocess.run([str(KDIG), "@127.0.0.1", "-p", str(port), "+short", "+time=1",
                              "+retry=0", ZONE, "SOA"], capture_output=True, text=True, timeout=5,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False
    return res.returncode == 0 and res.stdout.strip().startswith("ns1.example.org.")


def start(lab: Lab, host_name: str) -> dict:
    """Start knotd for host_name with a fresh zone and key; return what lab.json records."""
    hdir = lab.host_dir(host_name)
    what = f"dns on lab host '{host_name}'"
    for binary in (KNOTD, KNOTC, KDIG):
        lab.require_binary(host_name, SERVICE, binary)
    root = hdir / "dns"
    for d in (root, root / "run", root / "db", root / "zones"):
        d.mkdir(mode=0o755, exist_ok=True)
    write_atomic(root / "zones" / f"{ZONE}.zone", ZONE_TEXT)
    secret = base64.b64encode(os.urandom(32)).decode()
    conf, log = root / "knot.conf", root / "knotd.log"

    def attempt(port: int) -> dict:
        write_atomic(conf, render_conf(root, port, secret), 0o600)
        check = subprocess.run([str(KNOTC), "-c", str(conf), "conf-check"], capture_output=True,
                               text=True, timeout=30, stdin=subprocess.DEVNULL)
        if check.returncode != 0:
            raise LabError(f"{what}: knotc conf-check refused {conf}: "
                           f"{(check.stdout + check.stderr).strip()}")
        since = file_size(log)
        pid = lab.spawn([KNOTD, "-c", conf], host_name, SERVICE, log)

        def ready() -> bool:
            lab.expect_running(pid, log, what, since)
            return answers(port)

        try:
            lab.wait_until(ready, READY_TIMEOUT_S, f"{what} (port {port}, log {log})")
        except LabError as e:
            raise LabError(f"{e}\nlast lines of {log}:\n{tail(log, 15, since)}") from None
        return {"port": port, "pid": pid}

    started = lab.with_free_port(attempt)
    port = started["port"]
    lab.write_env_file(host_name, SERVICE, {
        "DNS_SERVER": "127.0.0.1", "DNS_PORT": port, "DNS_ZONE": ZONE,
        "DNS_TSIG_NAME": TSIG_NAME, "DNS_TSIG_ALGORITHM": TSIG_ALGORITHM,
        "DNS_TSIG_SECRET": secret, "DNS_CONF": conf})
    return {"port": port, "host": "127.0.0.1", "zone": ZONE, "conf": conf, "log": log,
            "pids": [started["pid"]],
            "hint": f"kdig @127.0.0.1 -p {port} www.{ZONE} A"}
