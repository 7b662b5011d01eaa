"""A PostgreSQL database moved by replication through the real `cutpilot run` on lab hosts (the
source's cluster with wal_level = logical): the replicate step streams while pgbench writes, the
cockpit is SIGKILLed and resumed (following the same replicate job, never starting another), the
writers stop at a gate, the catch-up puts a whole copy in place with its sequences right, and
nothing of the replication is left. An abort while it streams leaves no slot, subscription,
publication or side database."""

import os
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from labcase import read_env_file  # noqa: E402
from runcase import RunCase, wait_for  # noqa: E402
import test_run  # noqa: E402


def cutover_steps(engine, stop):
    """The window of a replication plan: a gate, stop (a shell line that stops the writers),
    then the catch-up of the step replicate-db."""
    stop = stop.replace('"', '\\"').replace("$", "$$")
    return f'''
[[steps]]
id = "stop-writers"
phase = "cutover"
needs = ["replicate-db"]
on = "source"
gate = "approve"
downtime = "start"
exec = {{ shell = "{stop}" }}

[[steps]]
id = "catch-up"
needs = ["stop-writers"]
on = "target"
db = {{ engine = "{engine}", action = "catch-up", of = "replicate-db", timeout = "2m" }}
downtime = "end"
'''


class ReplicateTest(RunCase):
    status = test_run.RunTest.status
    step_state = test_run.RunTest.step_state
    extra_env = {"SRC_PW": "lab", "DST_PW": "lab"}

    def setUp(self):
        super().setUp()
        self.lab("postgres", "--dir", self.dir, "--logical", "source", timeout=300)
        self.lab("postgres", "--dir", self.dir, "target", timeout=300)
        self.pg = {h: read_env_file(Path(self.dir, "hosts", h, "postgres.env")) for h in ("source", "target")}
        self.psql("source", "postgres", "CREATE DATABASE shop")
        self.pgbench("-q", "-i", "-s", "1").check_returncode()
        self.psql("source", "shop", "CREATE TABLE orders (id serial PRIMARY KEY, note text)")
        self.psql("source", "shop", "INSERT INTO orders (note) SELECT 'before' FROM generate_series(1, 40)")
        self.writer = None

    def psql(self, host, db, sql):
        e = self.pg[host]
        res = subprocess.run([f"{e['PGBIN']}/psql", "-X", "-At", "-q", "-h", e["PGHOST"], "-p", e["PGPORT"],
                              "-U", "postgres", "-d", db, "-c", sql], capture_output=True, text=True)
        return res.stdout.strip()

    def pgbench(self, *args, background=False):
        e = self.pg["source"]
        argv = [f"{e['PGBIN']}/pgbench", *args, "-h", e["PGHOST"], "-p", e["PGPORT"], "-U", "postgres", "shop"]
        if background:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
            return proc
        return subprocess.run(argv, capture_output=True, text=True)

    def leftovers(self):
        return (self.psql("source", "shop", "SELECT count(*) FROM pg_replication_slots"),
                self.psql("source", "shop", "SELECT count(*) FROM pg_publication"),
                self.psql("target", "postgres", "SELECT count(*) FROM pg_subscription"))

    def replicate_plan(self):
        src, dst = self.pg["source"], self.pg["target"]
        # The writers stop: pgbench is killed and its sessions are gone before the step ends.
        stop = (f"kill {self.writer.pid}; while [ \"$({src['PGBIN']}/psql -X -At -h {src['PGHOST']} "
                f"-p {src['PGPORT']} -U postgres -d shop -c \"SELECT count(*) FROM pg_stat_activity "
                f"WHERE application_name = 'pgbench'\")\" != 0 ]; do sleep 0.05; done")
        return self.plan(f'''
[[steps]]
id = "replicate-db"
phase = "prepare"
on = "target"
db = {{ engine = "postgres", mode = "replicate", replica_identity_full = true, create = true, from = {{ host = "source", address = "127.0.0.1", port = {src["PGPORT"]}, database = "shop", user = "postgres", password_env = "SRC_PW", bin_dir = "{src["PGBIN"]}" }}, to = {{ database = "shop", address = "127.0.0.1", port = {dst["PGPORT"]}, user = "postgres", password_env = "DST_PW", bin_dir = "{dst["PGBIN"]}" }} }}

''' + cutover_steps("postgres", stop))

    def test_writes_during_replication_arrive_and_a_resumed_cockpit_follows_the_same_job(self):
        self.writer = self.pgbench("-c", "2", "-R", "40", "-T", "600", background=True)
        plan = self.replicate_plan()
        proc, out = self.start("run", plan, "--headless", "--state-dir", self.state)
        self.wait_gate(proc, out, "the gate after the replica streams", 180)
        self.assertEqual(self.step_state("replicate-db"), "succeeded")
        self.assertEqual(self.leftovers(), ("1", "1", "1"))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc, out = self.start("run", plan, "--headless", "--resume", "--state-dir", self.state)
        self.wait_gate(proc, out, "the resumed run's gate", 120)
        starts = [r for r in self.journal() if r.get("r") == "job" and r.get("step") == "replicate-db"]
        follows = [r for r in self.journal() if r.get("r") == "track" and r.get("replica")]
        self.assertEqual((len(starts), len(follows)), (1, 1), (starts, follows))
        # The replica keeps up with rows written after the resume.
        history = int(self.psql("source", "shop", "SELECT count(*) FROM pgbench_history"))
        wait_for(lambda: int(self.psql("target", self.side_database(), "SELECT count(*) FROM "
                                       "pgbench_history") or 0) > history, 60, "rows streamed to the side database")
        res = self.cutpilot("approve", "stop-writers", "--state-dir", self.state)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(self.ended(proc, out, 180), 0, Path(out.name).read_text()[-4000:])
        for table in ("pgbench_accounts", "pgbench_history", "orders"):
            self.assertEqual(self.psql("target", "shop", f"SELECT count(*) FROM {table}"),
                             self.psql("source", "shop", f"SELECT count(*) FROM {table}"), table)
        self.assertGreater(int(self.psql("target", "shop", "SELECT count(*) FROM pgbench_history")), history)
        # Sequences came along: the next order on the target follows the source's last.
        self.assertEqual(self.psql("target", "shop", "INSERT INTO orders (note) VALUES ('after') RETURNING id"), "41")
        self.assertEqual(self.leftovers(), ("0", "0", "0"))
        self.assertIn("row counts equal", Path(out.name).read_text())
        # The window's prediction had the catch-up from the replica's own estimate.
        self.assertIn("catch-up", [line for line in Path(out.name).read_text().splitlines()
                                   if "a count of the copy in replicate-db" in line][0])

    def wait_gate(self, proc, out, what, seconds=180):
        """Waits for the gate before the writers stop; fails showing the run's output when the
        run ended or the time ran out first."""
        def there():
            if proc.poll() is not None:
                raise AssertionError(f"the run ended ({proc.returncode}) before {what}")
            return self.step_state("stop-writers", live=True) == "awaiting-approval"
        try:
            wait_for(there, seconds, what)
        except AssertionError as e:
            self.fail(f"{e}\n{Path(out.name).read_text()[-6000:]}")

    def side_database(self):
        """The side database the replica streams into (named after the run's key)."""
        return self.psql("target", "postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'shop_new_%'")

    def test_an_abort_while_it_streams_leaves_no_replication_behind(self):
        self.writer = self.pgbench("-c", "1", "-R", "20", "-T", "600", background=True)
        plan = self.replicate_plan()
        proc, out = self.start("run", plan, "--headless", "--state-dir", self.state)
        self.wait_gate(proc, out, "the gate after the replica streams", 180)
        self.assertEqual(self.leftovers(), ("1", "1", "1"))
        res = self.cutpilot("abort", "--state-dir", self.state)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(self.ended(proc, out, 120), 3, Path(out.name).read_text()[-4000:])
        self.assertEqual(self.leftovers(), ("0", "0", "0"))
        self.assertEqual(self.psql("target", "postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'shop%'"), "0")


class MariaReplicateTest(RunCase):
    """The same through `cutpilot run` with MariaDB (GTID): the replicate step streams while a
    writer inserts, the writers stop at a gate, the catch-up puts the whole copy in place and
    nothing of the replication is left (no connection on the target, no user on the source)."""
    status = test_run.RunTest.status
    step_state = test_run.RunTest.step_state
    wait_gate = ReplicateTest.wait_gate
    extra_env = {"SRC_PW": "lab-mover", "DST_PW": "lab-mover"}

    def setUp(self):
        super().setUp()
        self.lab("mariadb", "--dir", self.dir, "--binlog", "source", timeout=300)
        self.lab("mariadb", "--dir", self.dir, "target", timeout=300)
        self.my = {h: read_env_file(Path(self.dir, "hosts", h, "mariadb.env")) for h in ("source", "target")}
        for host in ("source", "target"):
            self.sql(host, "CREATE USER mover@'127.0.0.1' IDENTIFIED BY 'lab-mover'; "
                           "GRANT ALL ON *.* TO mover@'127.0.0.1' WITH GRANT OPTION")
        self.sql("source", "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT AUTO_INCREMENT "
                           "PRIMARY KEY, note VARCHAR(40)); USE shop; INSERT INTO shop.orders (note) SELECT "
                           "'before' FROM seq_1_to_40")

    def client(self, host):
        return ["mariadb", "--no-defaults", "-uroot", "-S", self.my[host]["MYSQL_UNIX_PORT"], "-N", "-B"]

    def sql(self, host, statements):
        res = subprocess.run(self.client(host) + ["-e", statements], capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, f"{host}: {statements}: {res.stderr}")
        return res.stdout.strip()

    def leftovers(self):
        """Replication connections on the target, cutpilot users on the source."""
        slaves = self.sql("target", "SHOW ALL SLAVES STATUS")
        return (len(slaves.splitlines()) if slaves else 0,
                int(self.sql("source", "SELECT COUNT(*) FROM mysql.user WHERE user LIKE 'cutpilot%'")))

    def test_writes_during_replication_arrive_and_the_catch_up_puts_the_copy_in_place(self):
        insert = " ".join(self.client("source")) + " -e \"INSERT INTO shop.orders (note) VALUES ('during')\""
        writer = subprocess.Popen(["bash", "-c", f"while true; do {insert}; done"], start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: writer.poll() is None and (os.killpg(writer.pid, signal.SIGKILL), writer.wait()))
        # The writers stop: the writer's whole process group is gone before the step ends.
        stop = f"kill -- -{writer.pid}; while kill -0 -- -{writer.pid} 2>/dev/null; do sleep 0.05; done"
        src, dst = self.my["source"], self.my["target"]
        plan = self.plan(f'''
[[steps]]
id = "replicate-db"
phase = "prepare"
on = "target"
db = {{ engine = "mariadb", mode = "replicate", create = true, from = {{ host = "source", address = "127.0.0.1", port = {src["MYSQL_TCP_PORT"]}, database = "shop", user = "mover", password_env = "SRC_PW" }}, to = {{ database = "shop", address = "127.0.0.1", port = {dst["MYSQL_TCP_PORT"]}, user = "mover", password_env = "DST_PW" }} }}

''' + cutover_steps("mariadb", stop))
        proc, out = self.start("run", plan, "--headless", "--state-dir", self.state)
        self.wait_gate(proc, out, "the gate after the replica streams", 180)
        self.assertEqual(self.step_state("replicate-db"), "succeeded")
        self.assertEqual(self.leftovers(), (1, 1))
        # Rows written while it streams arrive in the side database.
        side = self.sql("target", "SELECT schema_name FROM information_schema.schemata "
                                  "WHERE schema_name LIKE 'shop_new_%'")
        written = int(self.sql("source", "SELECT COUNT(*) FROM shop.orders"))
        wait_for(lambda: int(self.sql("target", f"SELECT COUNT(*) FROM {side}.orders")) > written, 60,
                 "rows streamed to the side database")
        res = self.cutpilot("approve", "stop-writers", "--state-dir", self.state)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(self.ended(proc, out, 180), 0, Path(out.name).read_text()[-4000:])
        self.assertIsNotNone(writer.poll(), "the writer still runs")
        self.assertEqual(self.sql("target", "SELECT COUNT(*), MAX(id) FROM shop.orders"),
                         self.sql("source", "SELECT COUNT(*), MAX(id) FROM shop.orders"))
        self.assertEqual(self.leftovers(), (0, 0))
        self.assertEqual(self.sql("target", "SELECT COUNT(*) FROM information_schema.schemata "
                                            "WHERE schema_name LIKE 'shop_%'"), "0")
        self.assertIn("row counts equal", Path(out.name).read_text())

if __name__ == "__main__":
    import unittest
    unittest.main()
