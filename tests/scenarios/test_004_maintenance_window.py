"""Write-up 004: a Rails + PostgreSQL payroll moves from a physical server to a cloud server in
an announced window (plans/examples/maintenance-window.toml).

The world, on lab hosts `prod`, `cloud` and `ops`:
  - prod and cloud each run PostgreSQL (`lab postgres`); prod has payroll_prod (role payroll,
    employees and time punches), cloud has the role and no database yet;
  - the application: `mongrel_rails cluster::start|stop -C FILE` on each host's login PATH is a
    stand-in for the Ruby mongrels (Debian has no mongrel): one Python HTTPS server per host on
    the host's own address (127.A.B.10 for prod, .20 for cloud, port 443) with a certificate
    for the production name from a CA this test makes. GET /login says "Sign in" with the
    database's counts; GET /punch?id=N inserts a punch; while public/system/maintenance.html
    exists it answers 503 with that page, as the write-up's nginx does;
  - uploads in each host's uploads directory;
  - ops runs Knot (`lab dns`), authoritative for example.org: the production name is
    www.example.org, at first prod's address with the zone's one-hour TTL.
A client punches in at the production address for the whole run and keeps the ones acknowledged.
"""

import os
import re
import ssl
import subprocess
import unittest
from pathlib import Path

from scenariocase import EXAMPLES, Client, ScenarioCase, https_get, wait_for, write_file

PLAN = str(EXAMPLES / "maintenance-window.toml")
NAME = "www.example.org"
APP_HOSTS = ("prod", "cloud")
DB_PASSWORD = "payroll-lab-password"

MONGREL = r'''#!/bin/sh
# mongrel_rails cluster::start|cluster::stop -C FILE: a stand-in for the mongrel cluster.
conf=$3
pidf=$(sed -n 's/^pid_file: //p' "$conf")
log=$(sed -n 's/^log_file: //p' "$conf")
running() { [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; }
case $1 in
  cluster::start)
    if running; then echo "mongrel already running"; exit 0; fi
    setsid python3 "{webapp}" "$conf" < /dev/null >> "$log" 2>&1 &
    echo $! > "$pidf"
    echo "starting mongrel (pid $(cat "$pidf"))" ;;
  cluster::stop)
    if running; then
      pid=$(cat "$pidf"); kill "$pid"
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
      echo "stopped mongrel (pid $pid)"
    fi
    rm -f "$pidf" ;;
  *) echo "usage: mongrel_rails cluster::start|cluster::stop -C FILE" >&2; exit 2 ;;
esac
'''


class MaintenanceWindow(ScenarioCase):
    PLAN = PLAN
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("the world needs PostgreSQL's OS user and port 443: root")
        super().setUp()
        # prod is at the far end of a slow link (the write-up's physical server, the cloud
        # elsewhere): everything reaching it, the cloud's dump pull too, crosses 40 ms.
        self.web_world(APP_HOSTS, "ops", rtt={"prod": "40ms"})
        self.make_certs(NAME)
        for host in APP_HOSTS:
            self.deploy(host)
            self.addCleanup(self.mongrel, host, "cluster::stop")
        self.fill_prod()
        self.psql("cloud", "postgres", f"CREATE ROLE payroll LOGIN CREATEDB PASSWORD '{DB_PASSWORD}'")
        self.dns_update(self.dns, f"update delete {NAME} A", f"update add {NAME} 3600 A {self.ip['prod']}")
        self.mongrel("prod", "cluster::start")
        wait_for(lambda: self.login("prod").startswith("Sign in (prod"), 60, "prod's application")
        self.plan_env = {
            "PAYROLL_SSH_CONFIG": f"{self.dir}/ssh_config", "PAYROLL_USER": "root",
            "PAYROLL_OPS_USER": "root",
            "PAYROLL_PROD_HOST": "prod", "PAYROLL_CLOUD_HOST": "cloud", "PAYROLL_OPS_HOST": "ops",
            "PAYROLL_CLOUD_PEER_ADDRESS": "127.0.0.1",
            "PAYROLL_DOMAIN": NAME, "PAYROLL_ZONE": self.dns["DNS_ZONE"],
            "PAYROLL_DNS_SERVER": f"127.0.0.1:{self.dns['DNS_PORT']}",
            "PAYROLL_DNS_KEY": self.dns["DNS_TSIG_NAME"], "PAYROLL_DNS_SECRET": self.dns["DNS_TSIG_SECRET"],
            "PAYROLL_RESOLVER_A": f"127.0.0.1:{self.dns['DNS_PORT']}",
            "PAYROLL_RESOLVER_B": f"127.0.0.1:{self.dns['DNS_PORT']}",
            "PAYROLL_PROD_IP": self.ip["prod"], "PAYROLL_CLOUD_IP": self.ip["cloud"],
            "PAYROLL_PROD_APP": str(self.app("prod")), "PAYROLL_CLOUD_APP": str(self.app("cloud")),
            "PAYROLL_PROD_UPLOADS": str(self.uploads("prod")),
            "PAYROLL_CLOUD_UPLOADS": str(self.uploads("cloud")),
            "PAYROLL_PROD_PGSOCKET": self.pg["prod"]["PGHOST"], "PAYROLL_PROD_PGPORT": self.pg["prod"]["PGPORT"],
            "PAYROLL_CLOUD_PGSOCKET": self.pg["cloud"]["PGHOST"],
            "PAYROLL_CLOUD_PGPORT": self.pg["cloud"]["PGPORT"],
            "PAYROLL_DB_PASSWORD": DB_PASSWORD, "PAYROLL_CA_FILE": str(self.ca),
        }

    # ---- the world -----------------------------------------------------------------------

    def app(self, host) -> Path:
        return Path(self.dir, "hosts", host, "payroll", "current")

    def uploads(self, host) -> Path:
        return Path(self.dir, "hosts", host, "uploads")

    def maintenance(self, host) -> Path:
        return self.app(host) / "public" / "system" / "maintenance.html"

    def deploy(self, host):
        """The application as its deployment leaves it: code, cluster file, uploads directory."""
        app = self.app(host)
        (app / "public" / "system").mkdir(parents=True)
        self.uploads(host).mkdir(parents=True)
        write_file(app / "config" / "mongrel_cluster.yml", "".join(f"{k}: {v}\n" for k, v in {
            "site": host, "address": self.ip[host], "port": 443, "cert": self.cert, "key": self.key,
            "pghost": "127.0.0.1", "pgport": self.pg[host]["PGPORT"], "pguser": "payroll",
            "password": DB_PASSWORD, "database": "payroll_prod", "home": "/login", "title": "Sign in",
            "count_sql": "SELECT (SELECT count(*) FROM employees) || ' ' || (SELECT count(*) FROM punches)",
            "take": "/punch?id=", "insert_sql": "INSERT INTO punches (id) VALUES ({n})",
            "maintenance": self.maintenance(host), "pid_file": app / "mongrel.pid",
            "log_file": app / "mongrel.log"}.items()))
        write_file(Path(self.dir, "hosts", host, "bin", "mongrel_rails"),
                   MONGREL.replace("{webapp}", str(self.WEBAPP)), 0o755)

    def fill_prod(self):
        """payroll_prod: employees and their punches, owned by payroll; uploaded pay stubs."""
        self.psql("prod", "postgres", f"CREATE ROLE payroll LOGIN PASSWORD '{DB_PASSWORD}'")
        self.psql("prod", "postgres", "CREATE DATABASE payroll_prod OWNER payroll")
        self.psql("prod", "payroll_prod", "SET ROLE payroll; "
                  "CREATE TABLE employees (id int PRIMARY KEY, name text NOT NULL); "
                  "INSERT INTO employees SELECT i, 'employee ' || i FROM generate_series(1, 500) i; "
                  "CREATE TABLE punches (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")
        for i in range(50):
            (self.uploads("prod") / f"stub-{i:03}.pdf").write_bytes(os.urandom(3000 + i))

    def mongrel(self, host, verb):
        res = subprocess.run([str(Path(self.dir, "hosts", host, "bin", "mongrel_rails")), verb, "-C",
                              str(self.app(host) / "config" / "mongrel_cluster.yml")],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        return res.returncode

    def login(self, host):
        """The body of /login at host's address under the production name ("" when none)."""
        try:
            status, body = https_get(self.ip[host], NAME, ssl.create_default_context(cafile=str(self.ca)), "/login")
        except (OSError, ValueError, IndexError):
            return ""
        return body if status == 200 else f"{status} {body}"

    def answer(self):
        return self.dns_answer(self.dns, NAME)

    # ---- the migration -------------------------------------------------------------------

    def test_the_window_moves_every_punch_and_the_name_answers_the_cloud(self):
        self.assertEqual(self.answer()[0], ["3600", "IN", "A", self.ip["prod"]])
        client = Client(self.ip["prod"], NAME, self.ca, lambda n: f"/punch?id={n}")
        client.start()
        self.addCleanup(client.stop)
        wait_for(lambda: len(client.acked) >= 20, 60, "the client's first punches")
        res = self.cutpilot(*self.run_args("--approve-all", "--on-failure", "exit"), timeout=900)
        client.stop()
        self.assertEqual(res.returncode, 0, res.stdout[-5000:] + res.stderr[-3000:])

        # The rehearsal loaded a copy under the production name before the window.
        self.assertIn("rehearse-smoke", res.stdout)
        # Both dumps crossed the slow link compressed (the write-up's `pg_dump | gzip`), and
        # fewer bytes crossed than the dump had.
        for step in ("rehearse-db", "dump-restore"):
            m = re.search(rf"cloud {step}: the dump crossed ssh compressed \((zstd|gzip)\): (\d+) bytes "
                          rf"for (\d+) bytes of dump", res.stdout)
            self.assertIsNotNone(m, f"{step} did not say it compressed:\n{res.stdout[-3000:]}")
            self.assertLess(int(m.group(2)), int(m.group(3)), m.group(0))
        # Every punch prod acknowledged is in the cloud's database; prod took none after its
        # mongrels stopped (the maintenance page answered).
        cloud = {int(x) for x in self.psql("cloud", "payroll_prod", "SELECT id FROM punches").split()}
        prod = {int(x) for x in self.psql("prod", "payroll_prod", "SELECT id FROM punches").split()}
        self.assertEqual(sorted(set(client.acked) - cloud), [], "acknowledged punches the cloud lacks")
        self.assertEqual(cloud, prod)
        self.assertEqual(self.psql("cloud", "payroll_prod", "SELECT count(*) FROM employees"), "500")
        self.assertEqual(self.psql("cloud", "payroll_prod",
                                   "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'payroll_prod'"),
                         "payroll")
        for path in self.uploads("prod").iterdir():
            self.assertEqual((self.uploads("cloud") / path.name).read_bytes(), path.read_bytes())
        # The cloud serves the production name with prod's data; prod's mongrels stay stopped
        # behind its maintenance page.
        self.assertEqual(self.login("cloud"), f"Sign in (cloud): 500 {len(prod)}\n")
        self.assertEqual(self.login("prod"), "")
        self.assertIn("Payroll is being moved", self.maintenance("prod").read_text())
        # The authoritative server answers the cloud's address with the lowered TTL.
        self.assertEqual(self.answer()[0], ["300", "IN", "A", self.ip["cloud"]])
        self.report_downtime("004")

    def test_an_abort_at_the_dns_change_brings_prod_back_out_of_maintenance(self):
        """The operator aborts at the DNS change's gate (the point of no return, not passed):
        the rollbacks stop the cloud's mongrels, start prod's and take the maintenance page
        down, and the name stays prod's (with the TTL as it was)."""
        approvals = ["rehearse-db=rehearsal copy", "window-start", "maintenance-on",
                     "dump-restore=replace payroll_prod", "final-uploads=mirror uploads"]
        proc, out = self.run_until_gate("dns-change", *approvals)
        self.assertTrue(self.maintenance("prod").exists())
        self.assertTrue(self.login("cloud").startswith("Sign in (cloud"))
        text = self.abort_run(proc, out)
        self.assertIn("downtime ended by rollback", text)
        self.assertFalse(self.maintenance("prod").exists())
        wait_for(lambda: self.login("prod").startswith("Sign in (prod): 500"), 60, "prod's application again")
        self.assertEqual(self.login("cloud"), "")
        # dns-ttl's rollback put the TTL back too: an abandoned move leaves DNS as it found it.
        self.assertEqual(self.answer()[0], ["3600", "IN", "A", self.ip["prod"]])


if __name__ == "__main__":
    unittest.main()
