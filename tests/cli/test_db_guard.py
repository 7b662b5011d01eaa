"""A database copy through the real `cutpilot run` against lab PostgreSQL clusters: the copy
replaces the target only when it is whole, keeps the database it replaced, and an abort's
rollback (the copy's automatic put-back) brings the previous target back."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from labcase import LabCase, read_env_file  # noqa: E402
from test_run import wait_for  # noqa: E402

CUTPILOT = os.environ.get("CUTPILOT_BIN", str(Path(__file__).resolve().parents[2] / "build/bin/cutpilot"))
HEADER = '[plan]\nname = "db guard"\nssh_config = "${env:CUTPILOT_LAB}/ssh_config"\n' \
         '[hosts.source]\n[hosts.target]\n'


class DbGuardTest(LabCase):
    def setUp(self):
        self.dir = self.make_lab_dir()
        self.lab("up", "--dir", self.dir, "source", "target")
        for host in ("source", "target"):
            self.lab("postgres", "--dir", self.dir, host, timeout=300)
        self.pg = {h: read_env_file(Path(self.dir, "hosts", h, "postgres.env")) for h in ("source", "target")}
        self.state = str(Path(self.dir, "state"))

    def psql(self, host, db, sql):
        e = self.pg[host]
        res = subprocess.run([f"{e['PGBIN']}/psql", "-X", "-At", "-h", e["PGHOST"], "-p", e["PGPORT"],
                              "-U", "postgres", "-d", db, "-c", sql], capture_output=True, text=True)
        return res.stdout

    def databases(self):
        """Each shop* database of the target with its tables."""
        out = {}
        for db in self.psql("target", "postgres",
                            "SELECT datname FROM pg_database WHERE datname LIKE 'shop%'").split():
            out[db] = self.psql("target", db, "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class "
                                              "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace").strip()
        return out

    def plan(self, password_env):
        src, dst = self.pg["source"], self.pg["target"]
        body = f'''
[[steps]]
id = "copy-db"
on = "target"
db = {{ engine = "postgres", drop = true, from = {{ host = "source", address = "127.0.0.1", port = {src["PGPORT"]}, database = "shop", user = "postgres", password_env = "{password_env}", bin_dir = "{src["PGBIN"]}" }}, to = {{ database = "shop", socket = "{dst["PGHOST"]}", port = {dst["PGPORT"]}, user = "postgres", bin_dir = "{dst["PGBIN"]}" }} }}

[[steps]]
id = "open-new-site"
on = "target"
needs = ["copy-db"]
gate = "approve"
exec = {{ run = ["true"] }}
'''
        path = Path(self.dir, "plan.toml")
        path.write_text(HEADER + body)
        return str(path)

    def env(self, **extra):
        return dict(os.environ, CUTPILOT_LAB=self.dir, **extra)

    def cutpilot(self, *args, env, timeout=120):
        return subprocess.run([CUTPILOT, *args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=env)

    def status(self, env):
        res = self.cutpilot("status", "--json", "--state-dir", self.state, env=env, timeout=15)
        if res.returncode != 0:
            return {}
        try:
            return {s["step"]: s["state"] for s in json.loads(res.stdout)["steps"]}
        except (ValueError, KeyError):
            return {}

    def given_a_target_of_its_own(self):
        self.psql("source", "postgres", "CREATE DATABASE shop")
        self.psql("source", "shop", "CREATE TABLE orders AS SELECT generate_series(1, 100) AS n")
        self.psql("target", "postgres", "CREATE DATABASE shop")
        self.psql("target", "shop", "CREATE TABLE only_here AS SELECT generate_series(1, 3) AS n")

    def test_plan_shows_the_side_and_kept_names_and_the_automatic_rollback(self):
        res = self.cutpilot("plan", self.plan("SRC_PW"), env=self.env(SRC_PW="lab"))
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("'shop' (if it exists) is kept as 'shop_old_RUN'", res.stdout)
        self.assertIn("-d shop_new_RUN", res.stdout)
        self.assertIn("rollback on target: put back postgres database 'shop'", res.stdout)

    def test_abort_after_the_copy_puts_the_previous_target_database_back(self):
        self.given_a_target_of_its_own()
        env = self.env(SRC_PW="lab")
        out = open(Path(self.dir, "run.out"), "w+")
        self.addCleanup(out.close)
        proc = subprocess.Popen([CUTPILOT, "run", self.plan("SRC_PW"), "--json", "--state-dir", self.state],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        wait_for(lambda: self.status(env).get("open-new-site") == "awaiting-approval", 120, "the gate after the copy")
        out.seek(0)
        kept = re.search(r"kept as (shop_old_[a-z0-9_]+)", out.read())
        self.assertIsNotNone(kept, "the step log names the kept database")
        self.assertEqual(self.databases(), {"shop": "orders", kept.group(1): "only_here"})
        res = self.cutpilot("abort", "--state-dir", self.state, env=env)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(proc.wait(120), 3, "an aborted run exits 3")
        undone = kept.group(1).replace("_old_", "_undone_")
        self.assertEqual(self.databases(), {"shop": "only_here", undone: "orders"})

    def test_a_wrong_source_password_changes_nothing_on_the_target(self):
        self.given_a_target_of_its_own()
        env = self.env(SRC_PW="a-typo")
        res = self.cutpilot("run", self.plan("SRC_PW"), "--headless", "--on-failure", "exit",
                            "--state-dir", self.state, env=env, timeout=180)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("password authentication failed", res.stdout + res.stderr)
        self.assertEqual(self.databases(), {"shop": "only_here"})


if __name__ == "__main__":
    import unittest
    unittest.main()
