"""End-to-end tests of the lab's service add-ons: real PostgreSQL, MariaDB and nginx on lab hosts."""

import os
import re
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from labcase import LabCase, descendants, proc_start, read_env_file

ADDONS = ("postgres", "mariadb", "nginx")


def tree(d: str) -> dict:
    """Return every path below d with its size, to prove a failed command changed nothing.

    A log's size is left out: sshd appends to its log on its own time (the lab's readiness
    probe shows up there as a closed connection, sometimes after `lab up` returned)."""
    out = {}
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            p = os.path.join(root, name)
            sized = name in files and not name.endswith(".log")
            out[os.path.relpath(p, d)] = os.lstat(p).st_size if sized else -1
    return out


class AddonTest(LabCase):
    """Each case starts its own lab with one host and one service."""

    def up(self) -> str:
        """Start a one-host lab ('a') and return its DIR."""
        d = self.make_lab_dir()
        self.lab("up", "--dir", d, "a")
        return d

    def service_pids(self, d: str, service: str) -> dict:
        """Return pid -> start time of a service's recorded PIDs and all their descendants."""
        pids = self.state(d)["hosts"]["a"]["services"][service]["pids"]
        self.assertTrue(pids, f"{service} recorded no PIDs")
        starts = {p: proc_start(p) for p in pids + descendants(pids)}
        self.assertNotIn(None, starts.values(), f"{service} PIDs not running: {starts}")
        return starts

    def test_postgres(self):
        """postgres answers on its socket and over TCP with password 'lab', refuses a wrong one, and stops."""
        d = self.up()
        self.lab("postgres", "--dir", d, "a")
        env = read_env_file(Path(d, "hosts", "a", "postgres.env"))
        psql = os.path.join(env["PGBIN"], "psql")
        base = [psql, "-X", "-At", "-p", env["PGPORT"], "-U", env["PGUSER"], "-d", "postgres"]

        def run(host, password, sql):
            """Run one SQL statement through psql to host with password."""
            e = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="5")
            return subprocess.run(base + ["-h", host, "-c", sql], capture_output=True, text=True,
                                  env=e, timeout=30, stdin=subprocess.DEVNULL)

        res = run(env["PGHOST"], "", "select 1")
        self.assertEqual((res.returncode, res.stdout.strip()), (0, "1"), res.stderr)
        res = run(env["PG_TCP_HOST"], env["PGPASSWORD_LAB"], "select 2")
        self.assertEqual((res.returncode, res.stdout.strip()), (0, "2"), res.stderr)
        res = run(env["PG_TCP_HOST"], "wrong", "select 3")
        self.assertNotEqual(res.returncode, 0, "a wrong password was accepted over TCP")
        self.assertIn("password authentication failed", res.stderr)
        # The env file is usable on the lab host itself.
        on_host = self.ssh(d, "a", f"set -a && . {d}/hosts/a/postgres.env && $PGBIN/psql -X -At -c 'select 40+2'")
        self.assertEqual(on_host.stdout.strip(), "42")
        starts = self.service_pids(d, "postgres")
        self.assertGreater(len(starts), 1, "postgres should have background processes")
        self.lab("down", "--dir", d)
        self.assert_gone(starts, "postgres")

    def test_mariadb(self):
        """mariadb answers `select` on its socket and over TCP as root, and stops."""
        d = self.up()
        self.lab("mariadb", "--dir", d, "a")
        env = read_env_file(Path(d, "hosts", "a", "mariadb.env"))
        for conn in (["-S", env["MYSQL_UNIX_PORT"]], ["-h", "127.0.0.1", "-P", env["MYSQL_TCP_PORT"]]):
            res = subprocess.run(["mariadb", "--no-defaults", f"-u{env['MYSQL_USER']}", *conn,
                                  "-N", "-e", "select 6*7"], capture_output=True, text=True,
                                 timeout=30, stdin=subprocess.DEVNULL)
            self.assertEqual((res.returncode, res.stdout.strip()), (0, "42"), res.stderr)
        starts = self.service_pids(d, "mariadb")
        self.lab("down", "--dir", d)
        self.assert_gone(starts, "mariadb")
        self.assertFalse(Path(env["MYSQL_UNIX_PORT"]).exists(), "mariadbd did not shut down cleanly")

    def until(self, what: str, check, timeout_s: float = 60.0):
        """Poll check() until it returns a true value (returned) or fail after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail(f"{what}: not within {timeout_s:.0f} s")
            time.sleep(0.1)

    def test_postgres_logical_publishes_to_a_plain_cluster(self):
        """`postgres --logical` runs with wal_level = logical and a plain cluster subscribes to it;
        without the switch wal_level stays replica and a subscription to it is refused."""
        d = self.make_lab_dir()
        self.lab("up", "--dir", d, "a", "b")
        self.lab("postgres", "--dir", d, "--logical", "a")
        self.lab("postgres", "--dir", d, "b")
        envs = {h: read_env_file(Path(d, "hosts", h, "postgres.env")) for h in ("a", "b")}

        def sql(host, statement, database="postgres"):
            """Run one statement on host's cluster over its socket; (exit code, output, errors)."""
            env = envs[host]
            res = subprocess.run([os.path.join(env["PGBIN"], "psql"), "-X", "-At", "-h", env["PGHOST"],
                                  "-p", env["PGPORT"], "-U", env["PGUSER"], "-d", database,
                                  "-c", statement], capture_output=True, text=True, timeout=60,
                                 stdin=subprocess.DEVNULL)
            return res.returncode, res.stdout.strip(), res.stderr

        self.assertEqual(sql("a", "show wal_level")[1], "logical")
        self.assertEqual(sql("b", "show wal_level")[1], "replica")
        self.assertEqual(self.state(d)["hosts"]["a"]["services"]["postgres"]["logical"], True)
        self.assertEqual(envs["a"]["PG_WAL_LEVEL"], "logical")
        for host in ("a", "b"):
            self.assertEqual(sql(host, "create table t (id int primary key, v text)")[0], 0)
        self.assertEqual(sql("a", "create publication p for table t")[0], 0)
        source = (f"host=127.0.0.1 port={envs['a']['PGPORT']} user={envs['a']['PGUSER']} "
                  f"password={envs['a']['PGPASSWORD_LAB']} dbname=postgres")
        code, _, err = sql("b", f"create subscription s connection '{source}' publication p")
        self.assertEqual(code, 0, err)
        self.assertEqual(sql("a", "insert into t values (1, 'replicated')")[0], 0)
        self.until("the row reaching b", lambda: sql("b", "select v from t where id = 1")[1] == "replicated")
        self.assertEqual(sql("b", "drop subscription s")[0], 0)  # drops a's slot too
        self.assertEqual(sql("a", "select count(*) from pg_replication_slots")[1], "0")
        # The plain cluster cannot publish: a subscription to it fails and says why.
        self.assertEqual(sql("b", "create publication p2 for table t")[0], 0)
        plain = source.replace(envs["a"]["PGPORT"], envs["b"]["PGPORT"])
        code, _, err = sql("a", f"create subscription s2 connection '{plain}' publication p2")
        self.assertNotEqual(code, 0)
        self.assertIn("wal_level", err)
        self.lab("down", "--dir", d)

    def test_mariadb_binlog_is_a_source_a_plain_server_replicates(self):
        """`mariadb --binlog` writes a ROW binary log with a server_id of its own, and a plain
        server replicates from it by GTID; without the switch there is no binary log."""
        d = self.make_lab_dir()
        self.lab("up", "--dir", d, "a", "b")
        self.lab("mariadb", "--dir", d, "--binlog", "a")
        self.lab("mariadb", "--dir", d, "b")
        envs = {h: read_env_file(Path(d, "hosts", h, "mariadb.env")) for h in ("a", "b")}

        def sql(host, statement):
            """Run statements on host's server over its socket; (exit code, output, errors)."""
            res = subprocess.run(["mariadb", "--no-defaults", "-uroot", "-S", envs[host]["MYSQL_UNIX_PORT"],
                                  "-N", "-B", "-e", statement], capture_output=True, text=True,
                                 timeout=60, stdin=subprocess.DEVNULL)
            return res.returncode, res.stdout.strip(), res.stderr

        self.assertEqual(sql("a", "select @@log_bin, @@binlog_format, @@server_id")[1],
                         f"1\tROW\t{envs['a']['MYSQL_TCP_PORT']}")
        self.assertEqual(sql("b", "select @@log_bin, @@server_id")[1], "0\t1")
        self.assertEqual(self.state(d)["hosts"]["a"]["services"]["mariadb"]["binlog"], True)
        code, _, err = sql("a", "create user repl@'127.0.0.1' identified by 'r'; "
                                "grant replication slave on *.* to repl@'127.0.0.1'; "
                                "create database shop; create table shop.t (id int primary key)")
        self.assertEqual(code, 0, err)
        code, _, err = sql("b", f"change master to master_host='127.0.0.1', "
                                f"master_port={envs['a']['MYSQL_TCP_PORT']}, master_user='repl', "
                                f"master_password='r', master_use_gtid=slave_pos; start slave")
        self.assertEqual(code, 0, err)
        self.assertEqual(sql("a", "insert into shop.t values (7)")[0], 0)
        self.until("the row reaching b", lambda: sql("b", "select id from shop.t")[1] == "7")
        self.assertEqual(sql("b", "stop slave; reset slave all")[0], 0)
        self.lab("down", "--dir", d)

    def test_mariadb_that_exits_at_its_first_start_is_tried_once_more(self):
        """A new mariadbd that exits during startup is reinstalled and started once more, saying why."""
        d = self.up()
        fake = Path(d, "fakemdb")
        fake.mkdir()
        fake.chmod(0o755)
        for name in ("mariadb-install-db", "mariadb-admin"):
            (fake / name).symlink_to(subprocess.run(["sh", "-c", f"command -v {name} || echo /usr/bin/{name}"],
                                                    capture_output=True, text=True).stdout.strip())
        marker = Path(d, "first-start-failed")
        real = subprocess.run(["sh", "-c", "command -v mariadbd || echo /usr/sbin/mariadbd"],
                              capture_output=True, text=True).stdout.strip()
        (fake / "mariadbd").write_text(
            f"#!/bin/sh\nif [ ! -e {marker} ]; then : > {marker}; echo 'lab test: first start fails' >&2; exit 3; fi\n"
            f"exec {real} \"$@\"\n")
        (fake / "mariadbd").chmod(0o755)
        os.chmod(d, 0o777)  # the wrapper runs as mysql and leaves its marker in d
        res = self.lab("mariadb", "--dir", d, "a", env=dict(os.environ, CUTPILOT_LAB_MARIADB_BIN=str(fake)))
        self.assertTrue(marker.exists(), "the first start did not run")
        self.assertIn("exited during startup", res.stderr)
        self.assertIn("mariadb on lab host 'a': trying once more", res.stderr)
        env = read_env_file(Path(d, "hosts", "a", "mariadb.env"))
        out = subprocess.run(["mariadb", "--no-defaults", "-uroot", "-S", env["MYSQL_UNIX_PORT"], "-N", "-e",
                              "select 6*7"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        self.assertEqual((out.returncode, out.stdout.strip()), (0, "42"), out.stderr)

    def test_nginx(self):
        """nginx serves the host's index page, refuses a second start, and stops with its workers."""
        d = self.up()
        self.lab("nginx", "--dir", d, "a")
        env = read_env_file(Path(d, "hosts", "a", "nginx.env"))
        self.assertTrue(Path(env["NGINX_CONF"]).is_file())
        res = subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "10",
                              f"http://127.0.0.1:{env['NGINX_PORT']}/"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("cutpilot lab host a", res.stdout)
        again = self.lab("nginx", "--dir", d, "a", check=False)
        self.assertEqual(again.returncode, 1)
        self.assertIn("already runs on lab host 'a'", again.stderr)
        starts = self.service_pids(d, "nginx")
        self.assertGreater(len(starts), 1, "nginx should have a worker process")
        self.lab("down", "--dir", d)
        self.assert_gone(starts, "nginx master and workers")

    def test_dns(self):
        """knotd answers the zone, takes an update signed with the lab's key, refuses an
        unsigned one, and stops with the lab."""
        d = self.up()
        self.lab("dns", "--dir", d, "a")
        env = read_env_file(Path(d, "hosts", "a", "dns.env"))
        server = ["@127.0.0.1", "-p", env["DNS_PORT"]]

        def dig(name):
            res = subprocess.run(["kdig", *server, "+noall", "+answer", name, "A"],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(res.returncode, 0, res.stderr)
            return [line.split() for line in res.stdout.splitlines()]

        self.assertEqual(dig("www.example.org"), [["www.example.org.", "3600", "IN", "A", "192.0.2.10"]])

        def update(key):
            script = (f"server 127.0.0.1 {env['DNS_PORT']}\nzone example.org\n"
                      "update delete www.example.org A\nupdate add www.example.org 300 A 192.0.2.99\nsend\n")
            return subprocess.run(["knsupdate", *key], input=script, capture_output=True, text=True,
                                  timeout=30)

        refused = update([])
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("NOTAUTH", refused.stdout + refused.stderr)
        self.assertEqual(dig("www.example.org")[0][4], "192.0.2.10")
        signed = update(["-y", f"{env['DNS_TSIG_ALGORITHM']}:{env['DNS_TSIG_NAME']}:{env['DNS_TSIG_SECRET']}"])
        self.assertEqual(signed.returncode, 0, signed.stdout + signed.stderr)
        self.assertEqual(dig("www.example.org"), [["www.example.org.", "300", "IN", "A", "192.0.2.99"]])
        starts = self.service_pids(d, "dns")
        self.lab("down", "--dir", d)
        self.assert_gone(starts, "knotd")

    def test_unknown_host(self):
        """Every add-on on an unknown host fails naming it and changes nothing."""
        d = self.up()
        before_state, before_tree = Path(d, "lab.json").read_bytes(), tree(d)
        for service in ADDONS:
            res = self.lab(service, "--dir", d, "nosuch", check=False)
            self.assertEqual(res.returncode, 1, res.stdout)
            self.assertIn("unknown lab host 'nosuch'", res.stderr)
        self.assertEqual(Path(d, "lab.json").read_bytes(), before_state, "lab.json changed")
        self.assertEqual(tree(d), before_tree, "files changed")

    def test_missing_binary(self):
        """Every add-on whose binary is missing fails naming host and binary and changes nothing."""
        d = self.up()
        before_state, before_tree = Path(d, "lab.json").read_bytes(), tree(d)
        missing = {"postgres": ("CUTPILOT_LAB_PGBIN", "/nonexistent/pg/bin", "/nonexistent/pg/bin/initdb"),
                   "mariadb": ("CUTPILOT_LAB_MARIADB_BIN", "/nonexistent/mdb", "/nonexistent/mdb/mariadb-install-db"),
                   "nginx": ("CUTPILOT_LAB_NGINX", "/nonexistent/nginx", "/nonexistent/nginx")}
        for service, (var, value, binary) in missing.items():
            res = self.lab(service, "--dir", d, "a", check=False, env=dict(os.environ, **{var: value}))
            self.assertEqual(res.returncode, 1, res.stdout)
            self.assertIn(f"{service} on lab host 'a'", res.stderr)
            self.assertIn(binary, res.stderr)
        self.assertEqual(Path(d, "lab.json").read_bytes(), before_state, "lab.json changed")
        self.assertEqual(tree(d), before_tree, "files changed")

    def test_failure_rolls_back(self):
        """An add-on whose server dies at startup fails with its log, stops its children, keeps lab.json."""
        d = self.up()
        fake = Path(d, "fakepg")
        fake.mkdir()
        fake.chmod(0o755)
        real = Path(os.environ.get("CUTPILOT_LAB_PGBIN", "/usr/lib/postgresql/15/bin"))
        for name in ("initdb", "pg_isready"):
            (fake / name).symlink_to(real / name)
        (fake / "postgres").write_text("#!/bin/sh\nsleep 300 &\necho \"FATAL: lab test failure, child $!\"\nexit 3\n")
        (fake / "postgres").chmod(0o755)
        before = self.state(d)
        res = self.lab("postgres", "--dir", d, "a", check=False,
                       env=dict(os.environ, CUTPILOT_LAB_PGBIN=str(fake)))
        self.assertEqual(res.returncode, 1, res.stdout)
        self.assertIn("exited during startup", res.stderr)
        m = re.search(r"FATAL: lab test failure, child (\d+)", res.stderr)
        self.assertIsNotNone(m, "the error should show the server's log")
        child = int(m.group(1))
        self.assertIsNone(proc_start(child), "the failed add-on's child process still runs")
        after = self.state(d)
        self.assertEqual(after["pids"], before["pids"])
        self.assertNotIn("postgres", after["hosts"]["a"]["services"])

    @unittest.skipUnless(os.geteuid() == 0, "service users differ from the lab user only as root")
    def test_unreachable_parent(self):
        """As root, a lab under a directory service users cannot pass fails naming it."""
        parent = os.path.realpath(tempfile.mkdtemp(prefix="cp-lab-closed-"))  # mode 0700
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", parent]))
        d = os.path.join(parent, "lab")
        self.addCleanup(self._down, d)
        self.lab("up", "--dir", d, "a")
        self.assertEqual(os.stat(d).st_mode & 0o711, 0o711, "lab up should open DIR for service users")
        before = Path(d, "lab.json").read_bytes()
        res = self.lab("postgres", "--dir", d, "a", check=False)
        self.assertEqual(res.returncode, 1)
        self.assertIn(f"directory {parent} is not traversable", res.stderr)
        self.assertEqual(Path(d, "lab.json").read_bytes(), before)


if __name__ == "__main__":
    unittest.main()
