#!/usr/bin/env python3
"""Database copy bench: one PostgreSQL database host to host with cutpilot, pg_dump | psql,
pg_dump -Fd -j + pg_restore -j and pgcopydb, side by side.

Two lab hosts, `source` and `target` (tests/lab/lab), each with its own throwaway
PostgreSQL 15 cluster (`lab postgres`; fsync off, both on 127.0.0.1). The source database
`bench` is made with `pgbench -i -s SCALE` (scale 60 is ~1 GB with its indexes).

Contenders, each starting from an empty target database `bench` (dropped and created before
every run, then CHECKPOINT on both clusters and sync; none of that is timed):
  cutpilot plain   build/bin/db_run --lab DIR --from source --to target --database bench
                   --format plain       (run by the harness: it connects both hosts itself;
                   the agent on the target streams pg_dump on the source over the migration
                   ssh into psql --single-transaction there, then compares row counts)
  cutpilot direct  build/bin/db_run ... --direct   (pg_dump runs on the target and connects
                   to the source's server itself, like the shell contenders: no ssh leg)
  cutpilot -j N    build/bin/db_run ... --jobs N    ("jobs": N in the db spec; an agent
                   without parallel copies refuses the field: reported "not supported")
  pg_dump | psql   pg_dump | psql -X -q -v ON_ERROR_STOP=1 --single-transaction   (on target)
  ssh source pg_dump | psql   the same with pg_dump run on the source over ssh, with the
                   cipher cutpilot's migration ssh picks (aes128-gcm): cutpilot plain's data path
  pg_dump -Fd -j N + pg_restore -j N   through a staging directory on the target (on target;
                   the two timed together, the directory removed afterwards, untimed)
  pgcopydb clone   pgcopydb clone --table-jobs N --index-jobs N --dir WORK   (on target)
The shell contenders run on the target host, logged in over ssh like an operator, and reach
both clusters over TCP (127.0.0.1:PORT, user postgres, PGPASSWORD=lab in the environment).

After every run the target is checked: the row counts of the four pgbench tables and the
number of indexes in schema public must equal the source's. A wrong copy is FAILED, never
fast.

With --rtt 40ms both hosts sit behind the lab's WAN relay (`lab up --rtt`: half the RTT each
way, a 4 MiB window), and only the contenders whose data crosses ssh run (the relay is in
front of sshd; a contender that reaches the source's cluster over TCP would go around it):
cutpilot plain, cutpilot with `compress` = zstd and gzip, cutpilot -j N, and ssh source
pg_dump | psql without and with gzip or zstd on the wire (write-up 004's `pg_dump | gzip`).
Compare a --rtt 40ms run with a --rtt 0ms run (the same relay without delay).

Usage: bench/db/run.py [--scale 60] [--repeat 3] [--jobs 2] [--rtt 40ms] [--smoke]
                       [--build build] [--write-results]
Prints a markdown table of medians and ratios; --write-results replaces the
"## Database copy" section of bench/RESULTS.md (with --rtt: "## WAN: database copy at RTT"). --smoke runs scale 1 once (CI), with a
deliberately wrong copy as a negative control, and exits 1 when any available contender
fails (a "not supported" cutpilot -j N does not fail it).
"""
import argparse
import datetime
import os
import platform
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import (CIPHER, LAB, RESULTS, ROOT, Failed, Remote, env_file, log, q,  # noqa: E402
                      first_line, memory, run_local, run_on, conclude, setup_peers,
                      require_tools)

SECTION = "## Database copy"
DATABASE = "bench"
PASSWORD = "lab"  # the lab clusters' superuser password over TCP (tests/lab/lablib/postgres.py)
TABLES = ["pgbench_accounts", "pgbench_branches", "pgbench_history", "pgbench_tellers"]
UNSUPPORTED_EXIT = 3  # db_run: the agent refused a spec field it does not know
MiB = 1 << 20


class NotSupported(Exception):
    """The contender asked for something this build does not do (cutpilot -j N today)."""


class NotBuilt(Exception):
    """cutpilot's bench driver is missing."""


def load1() -> float:
    """The 1-minute load average."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


# ---------------------------------------------------------------------------------------------
# The lab: two hosts with a cluster each.

@dataclass
class Cluster:
    host: str
    port: int
    socket: str
    bindir: Path

    def tool(self, name: str) -> str:
        return str(self.bindir / name)


class Lab:
    def __init__(self, directory: Path, rtt: Optional[str] = None, logical: bool = False):
        self.dir = directory
        self.rtt = rtt
        self.logical = logical  # the source's cluster ready to publish (wal_level = logical)
        self.ssh_config = directory / "ssh_config"
        self.bench = directory / "bench"
        self.scripts = self.bench / "scripts"
        self.logs = self.bench / "logs"
        self.pg: Dict[str, Cluster] = {}

    def host_dir(self, name: str) -> Path:
        return self.dir / "hosts" / name

    def up(self) -> None:
        wan = ["--rtt", self.rtt] if self.rtt else []
        run_local([LAB, "up", "--dir", self.dir, *wan, "source", "target"], timeout=60)
        for host in ("source", "target"):
            publish = ["--logical"] if self.logical and host == "source" else []
            run_local([LAB, "postgres", "--dir", self.dir, *publish, host], timeout=120)
            env = env_file(self.host_dir(host) / "postgres.env")
            self.pg[host] = Cluster(host, int(env["PGPORT"]), env["PGHOST"], Path(env["PGBIN"]))
        for d in (self.bench, self.scripts, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        # How the target reaches the source for the ssh contender: a bench key, the cipher
        # cutpilot's migration ssh negotiates.
        self.peer_config = setup_peers(self.dir, self.bench, CIPHER, "cutpilot-db-bench")

    def down(self) -> None:
        try:
            run_local([LAB, "down", "--dir", self.dir, "--rm"], timeout=120, check=False)
        except subprocess.TimeoutExpired:
            log(f"warning: lab down --dir {self.dir} timed out")

    def sql(self, host: str, sql: str, database: str = DATABASE, timeout: float = 600) -> List[str]:
        """Run SQL on host's cluster through its socket (trusted, untimed); the output rows."""
        c = self.pg[host]
        proc = run_local([c.tool("psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                          "-h", c.socket, "-p", c.port, "-U", "postgres", "-d", database,
                          "-c", sql], timeout=timeout)
        return [line for line in proc.stdout.splitlines() if line]

    def on(self, host: str, command: str, name: str, timeout: float) -> Remote:
        """A command on a lab host through its sshd (benchlib.run_on: both clocks)."""
        return run_on(self.ssh_config, self.scripts, self.logs, host, command, name, timeout,
                      "bench/db/run.py")


# ---------------------------------------------------------------------------------------------
# The database and checking a copy.

def make_source(lab: Lab, scale: int, timeout: float) -> None:
    """Database `bench` on the source, filled by pgbench -i -s scale (untimed)."""
    lab.sql("source", f"CREATE DATABASE {DATABASE}", database="postgres")
    c = lab.pg["source"]
    run_local([c.tool("pgbench"), "-q", "-i", "-s", scale, "-h", c.socket, "-p", c.port,
               "-U", "postgres", DATABASE], timeout=timeout)


def shape(lab: Lab, host: str) -> Dict[str, int]:
    """What the check compares: row counts of the pgbench tables and indexes in public."""
    sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM public.{t}" for t in TABLES)
    sql += " UNION ALL SELECT 'indexes', count(*) FROM pg_indexes WHERE schemaname = 'public'"
    out = {}
    try:
        rows = lab.sql(host, sql)
    except RuntimeError as e:
        raise Failed(f"cannot read the copy: {str(e).splitlines()[-1][:300]}") from None
    for row in rows:
        name, count = row.split("|")
        out[name] = int(count)
    return out


def verify(lab: Lab, expected: Dict[str, int]) -> str:
    """Raise Failed unless the target's bench database has the source's shape."""
    got = shape(lab, "target")
    differ = [f"{k} {expected[k]} vs {got.get(k, 'missing')}" for k in expected
              if got.get(k) != expected[k]]
    if differ:
        raise Failed(f"target differs from source (source vs target): {', '.join(differ)}")
    return f"{sum(v for k, v in got.items() if k != 'indexes')} rows, {got['indexes']} indexes equal"


def reset_target(lab: Lab) -> None:
    """An empty target database; both clusters checkpointed and the page cache's dirty pages
    flushed, so that no contender pays for the previous one's writes."""
    lab.sql("target", f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)", database="postgres")
    lab.sql("target", f"CREATE DATABASE {DATABASE}", database="postgres")
    for host in ("source", "target"):
        lab.sql(host, "CHECKPOINT", database="postgres")
    os.sync()


# ---------------------------------------------------------------------------------------------
# Contenders.

def conn(c: Cluster) -> str:
    """libpq flags for a cluster over TCP (the password comes from PGPASSWORD)."""
    return f"-h 127.0.0.1 -p {c.port} -U postgres -w -d {DATABASE}"


def uri(c: Cluster) -> str:
    return f"postgres://postgres@127.0.0.1:{c.port}/{DATABASE}"


def stage_dir(lab: Lab) -> Path:
    return lab.host_dir("target") / "stage"


def dump_psql_cmd(lab: Lab) -> str:
    s, t = lab.pg["source"], lab.pg["target"]
    return (f"PGPASSWORD={PASSWORD} {q(s.tool('pg_dump'))} {conn(s)} | "
            f"PGPASSWORD={PASSWORD} {q(t.tool('psql'))} -X -q -v ON_ERROR_STOP=1 "
            f"--single-transaction {conn(t)}")


def ssh_dump_psql_cmd(lab: Lab) -> str:
    """pg_dump run on the source over ssh (the same cipher as cutpilot's migration ssh), into
    psql on the target: the shell equivalent of cutpilot plain's data path."""
    s, t = lab.pg["source"], lab.pg["target"]
    remote = f"PGPASSWORD={PASSWORD} {q(s.tool('pg_dump'))} {conn(s)}"
    return (f"ssh -F {q(lab.peer_config)} source {q(remote)} | "
            f"PGPASSWORD={PASSWORD} {q(t.tool('psql'))} -X -q -v ON_ERROR_STOP=1 "
            f"--single-transaction {conn(t)}")


def ssh_compressed_dump_psql_cmd(tool: str) -> Callable[[Lab], str]:
    """ssh source 'pg_dump | TOOL' | TOOL -d | psql: an operator's compressed copy."""
    def cmd(lab: Lab) -> str:
        s, t = lab.pg["source"], lab.pg["target"]
        remote = f"PGPASSWORD={PASSWORD} {q(s.tool('pg_dump'))} {conn(s)} | {tool} -c"
        return (f"ssh -F {q(lab.peer_config)} source {q(remote)} | {tool} -d -c | "
                f"PGPASSWORD={PASSWORD} {q(t.tool('psql'))} -X -q -v ON_ERROR_STOP=1 "
                f"--single-transaction {conn(t)}")
    return cmd


def dump_dir_cmd(jobs: int) -> Callable[[Lab], str]:
    def cmd(lab: Lab) -> str:
        s, t = lab.pg["source"], lab.pg["target"]
        stage = stage_dir(lab) / "dump"
        return (f"export PGPASSWORD={PASSWORD}\n"
                f"{q(s.tool('pg_dump'))} -Fd -j {jobs} -f {q(stage)} {conn(s)} && "
                f"{q(t.tool('pg_restore'))} -j {jobs} {conn(t)} {q(stage)}")
    return cmd


def pgcopydb_cmd(jobs: int) -> Callable[[Lab], str]:
    def cmd(lab: Lab) -> str:
        s, t = lab.pg["source"], lab.pg["target"]
        # pgcopydb runs pg_dump and pg_restore: the cluster's own (first in PATH).
        return (f"export PGPASSWORD={PASSWORD} PATH={q(t.bindir)}:\"$PATH\"\n"
                f"pgcopydb clone --source {q(uri(s))} --target {q(uri(t))} "
                f"--table-jobs {jobs} --index-jobs {jobs} --dir {q(stage_dir(lab) / 'pgcopydb')}")
    return cmd


def schema_only_cmd(lab: Lab) -> str:
    """A negative control: the schema without the data, which the check must catch."""
    return dump_psql_cmd(lab).replace(f"pg_dump {conn(lab.pg['source'])}",
                                      f"pg_dump --schema-only {conn(lab.pg['source'])}")


@dataclass
class Contender:
    name: str
    command: Optional[Callable[[Lab], str]] = None  # None: cutpilot, run by the harness
    driver_args: List[str] = field(default_factory=list)
    control: bool = False      # a deliberately wrong copy: must be reported FAILED
    reference: bool = False    # cutpilot without what the issue requires: shown, not a verdict
    inner: Optional[float] = None   # the last run: without the login (cutpilot: the job alone)
    result: str = ""           # cutpilot: the job's result JSON (last run)

    def describe(self, lab: Lab) -> str:
        if self.command is None:
            return ("build/bin/db_run --lab DIR --from source --to target --database "
                    f"{DATABASE} {' '.join(self.driver_args)}")
        return self.command(lab).replace(str(lab.dir), "DIR")

    def run(self, lab: Lab, args, tag: str) -> float:
        if self.command is None:
            return self.run_cutpilot(lab, args, tag)
        stage_dir(lab).mkdir(parents=True, exist_ok=True)
        try:
            r = lab.on("target", self.command(lab), tag, args.timeout)
            if r.rc != 0:
                raise Failed(f"exit {r.rc}{' (timed out)' if r.rc in (124, 137) else ''}: "
                             f"{r.tail()}")
            self.inner = r.inner
            return r.seconds
        finally:
            # The staging directory goes after every run, untimed.
            shutil.rmtree(stage_dir(lab), ignore_errors=True)

    def run_cutpilot(self, lab: Lab, args, tag: str) -> float:
        binary = Path(args.build) / "bin" / "db_run"
        if not binary.exists():
            raise NotBuilt(str(binary))
        argv = [str(binary), "--lab", str(lab.dir), "--from", "source", "--to", "target",
                "--database", DATABASE] + self.driver_args
        start = time.monotonic()
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            raise Failed(f"db_run timed out after {args.timeout:g} s") from None
        seconds = time.monotonic() - start
        (lab.logs / f"{tag}.out").write_text(proc.stdout)
        (lab.logs / f"{tag}.err").write_text(proc.stderr)
        if proc.returncode == UNSUPPORTED_EXIT:
            line = next((l for l in proc.stderr.splitlines() if l.startswith("unsupported:")),
                        proc.stderr.strip()[-300:])
            m = re.search(r"unknown db field \"[^\"]*\"", line)
            raise NotSupported(f"the agent refuses the spec: {m.group(0)}" if m else line)
        if proc.returncode != 0:
            raise Failed(f"db_run exit {proc.returncode}: {(proc.stdout + proc.stderr)[-1500:]}")
        m = re.search(r"^job_seconds=([\d.]+)$", proc.stdout, re.M)
        self.inner = float(m.group(1)) if m else None
        m = re.search(r"^result=(.*)$", proc.stdout, re.M)
        self.result = m.group(1) if m else ""
        return seconds


def contenders(args) -> List[Contender]:
    j = args.jobs
    if args.rtt:  # only what crosses ssh crosses the relay
        out = [Contender("cutpilot plain", driver_args=["--format", "plain"]),
               Contender("cutpilot zstd", driver_args=["--format", "plain", "--compress", "zstd"]),
               Contender("cutpilot gzip", driver_args=["--format", "plain", "--compress", "gzip"]),
               Contender(f"cutpilot -j {j}", driver_args=["--jobs", str(j)]),
               Contender("ssh source pg_dump | psql", ssh_dump_psql_cmd),
               Contender("ssh source 'pg_dump | zstd' | zstd -d | psql",
                         ssh_compressed_dump_psql_cmd("zstd")),
               Contender("ssh source 'pg_dump | gzip' | gzip -d | psql",
                         ssh_compressed_dump_psql_cmd("gzip"))]
        if args.smoke:
            out.append(Contender("control: schema only", schema_only_cmd, control=True))
        return out
    out = [Contender("cutpilot plain", driver_args=["--format", "plain"]),
           Contender("cutpilot direct", driver_args=["--format", "plain", "--direct"]),
           Contender("cutpilot direct, no row counts",
                     driver_args=["--format", "plain", "--direct", "--no-verify"], reference=True),
           Contender(f"cutpilot -j {j}", driver_args=["--jobs", str(j)]),
           Contender("pg_dump | psql", dump_psql_cmd),
           Contender("ssh source pg_dump | psql", ssh_dump_psql_cmd),
           Contender(f"pg_dump -Fd -j {j} + pg_restore -j {j}", dump_dir_cmd(j)),
           Contender("pgcopydb clone", pgcopydb_cmd(args.pgcopydb_jobs))]
    if args.smoke:
        out.append(Contender("control: schema only", schema_only_cmd, control=True))
    return out


# ---------------------------------------------------------------------------------------------
# The measurement.

@dataclass
class Cell:
    times: List[float] = field(default_factory=list)
    inner: List[float] = field(default_factory=list)
    status: str = ""          # "" ok, "not built", "not supported: ...", "FAILED: ..."

    @property
    def median(self) -> Optional[float]:
        return statistics.median(self.times) if self.times and not self.status else None

    @property
    def inner_median(self) -> Optional[float]:
        return statistics.median(self.inner) if self.inner and not self.status else None


def measure(lab: Lab, cons: List[Contender], expected: Dict[str, int], args,
            results: Dict[str, Cell], loads: List[float]) -> None:
    """Repeat outermost so that every contender sees the same machine drift; each repeat starts
    with an untimed warm-up copy (`pg_dump | psql`) and runs the contenders in an order
    shuffled afresh (seeded: the same orders on every run of the bench), so that none always
    runs first or after the same one. A contender that fails once is out."""
    shuffle = random.Random(1)
    warm = next((c for c in cons if c.name == "pg_dump | psql"), None)
    for r in range(args.repeat):
        if warm is not None:
            try:
                reset_target(lab)
                log(f"[{r + 1}/{args.repeat}] {'(warm-up: pg_dump | psql)':<34} "
                    f"{warm.run(lab, args, f'{r}-warm-up'):8.2f} s, not counted")
            except (Failed, subprocess.TimeoutExpired, RuntimeError) as e:
                log(f"warm-up copy failed (the pg_dump | psql contender will say why): {e}")
        order = list(cons)
        shuffle.shuffle(order)
        for c in order:
            cell = results.setdefault(c.name, Cell())
            if cell.status:
                continue
            tag = f"{r}-{re.sub(r'[^A-Za-z0-9]+', '-', c.name).strip('-')}"
            try:
                reset_target(lab)
                loads.append(load1())
                seconds = c.run(lab, args, tag)
                summary = verify(lab, expected)
                cell.times.append(seconds)
                if c.inner is not None:
                    cell.inner.append(c.inner)
                inner = (f", {c.inner:.2f} s {'job' if c.command is None else 'without the login'}"
                         if c.inner is not None else "")
                log(f"[{r + 1}/{args.repeat}] {c.name:<34} {seconds:8.2f} s  ({summary}{inner}; "
                    f"load {loads[-1]:.2f})")
            except NotBuilt as e:
                cell.status = "not built"
                log(f"{c.name}: not built ({e} is missing)")
            except NotSupported as e:
                cell.status = f"not supported: {e}"
                log(f"[{r + 1}/{args.repeat}] {c.name:<34} not supported ({e})")
            except (Failed, subprocess.TimeoutExpired, RuntimeError) as e:
                cell.status = f"FAILED: {e}"
                log(f"[{r + 1}/{args.repeat}] {c.name:<34} FAILED: {e}")


# ---------------------------------------------------------------------------------------------
# Report.

def fmt(cell: Optional[Cell], inner: bool = False) -> str:
    if cell is None:
        return "—"
    if cell.status == "not built":
        return "not built"
    if cell.status.startswith("not supported"):
        return "not supported"
    if cell.status:
        return "FAILED"
    value = cell.inner_median if inner else cell.median
    return f"{value:.2f} s" if value else "n/a"


def ratio(a: Optional[float], b: Optional[float]) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


def report(results: Dict[str, Cell], cons: List[Contender], size_bytes: int) -> str:
    cons = [c for c in cons if not c.control]
    ours = [c.name for c in cons if c.command is None]
    references = {c.name for c in cons if c.reference}
    judged = [n for n in ours if n not in references]  # the ratio columns
    cell_name = lambda n: n.replace("|", "\\|")  # a bar inside a table cell
    others = [c.name for c in cons if c.command is not None]
    med = lambda n: results[n].median if n in results else None
    cols = ["median", "without the login", "MiB/s"] + [f"{cell_name(n)} / this" for n in judged]
    lines = [f"| contender | {' | '.join(cols)} |", "|---|" + "---:|" * len(cols)]
    for c in cons:
        cell = results.get(c.name)
        m = med(c.name)
        row = [fmt(cell), fmt(cell, inner=True), f"{size_bytes / MiB / m:.0f}" if m else "n/a"]
        row += [ratio(med(o), m) if o != c.name else ("1.00x" if m else "n/a") for o in judged]
        lines.append(f"| {cell_name(c.name)} | {' | '.join(row)} |")
    lines.append("")
    fastest = min((n for n in others if med(n)), key=med, default=None)
    if fastest is None:
        lines.append("Target (issue): cutpilot ≤ 1.05× the fastest of the others — no other "
                     "contender was measured.")
        return "\n".join(lines)
    lines.append(f"Target (issue): cutpilot no slower than the fastest of the others (≤ 1.05×); "
                 f"the fastest was {fastest} ({med(fastest):.2f} s).")
    for n in ours:
        cell = results.get(n)
        if n in references:
            if med(n):
                lines.append(f"- {n}: {med(n) / med(fastest):.2f}× (reference: the same copy "
                             "without the row counts the issue requires; no verdict)")
        elif med(n):
            r = med(n) / med(fastest)
            lines.append(f"- {n}: {r:.2f}× — {'met' if r <= 1.05 else 'missed'}")
        else:
            why = cell.status if cell else "not run"
            lines.append(f"- {n}: not measured ({why.split(chr(10))[0][:200]})")
    # Like for like: the same data path (ssh with the same cipher, or none) on both sides.
    pairs = [("cutpilot plain", "ssh source pg_dump | psql", "both stream over ssh, same cipher"),
             ("cutpilot direct", "pg_dump | psql", "both over TCP, no ssh on the data path"),
             ("cutpilot zstd", "ssh source 'pg_dump | zstd' | zstd -d | psql", "both zstd over ssh"),
             ("cutpilot gzip", "ssh source 'pg_dump | gzip' | gzip -d | psql", "both gzip over ssh"),
             ("cutpilot zstd", "cutpilot plain", "what zstd on the wire saves")]
    like = [f"{a} / {b} = {med(a) / med(b):.2f}× ({why})" for a, b, why in pairs
            if med(a) and med(b)]
    if like:
        lines.append("Like for like: " + "; ".join(like) + ".")
    return "\n".join(lines)


def machine_info(lab: Lab) -> Dict[str, str]:
    mem = memory()
    pgc = first_line(["pgcopydb", "--version"]) if shutil.which("pgcopydb") else "not installed"
    return {
        "cores": str(os.cpu_count()),
        "memory": mem,
        "kernel": platform.release(),
        "postgres": first_line([lab.pg["source"].tool("postgres"), "--version"]),
        "pgcopydb": pgc,
        "build": first_line(["git", "-C", str(ROOT), "describe", "--always", "--dirty",
                             "--abbrev=7"]),
    }


def command_line() -> str:
    """The command as run (without the hidden --results-file, which only says where it went)."""
    argv, out = sys.argv[1:], []
    while argv:
        a = argv.pop(0)
        if a == "--results-file":
            argv = argv[1:]
        elif not a.startswith("--results-file="):
            out.append(a)
    return " ".join(["bench/db/run.py"] + [shlex.quote(a) for a in out])


def commands_text(lab: Lab, cons: List[Contender]) -> str:
    lines = ["Commands (DIR is the lab; SRC/DST are the two clusters' ports; PEER is the bench's "
             f"host-to-host ssh config with `Ciphers {CIPHER}`; the shell contenders run on the "
             "target, logged in over ssh, with `PGPASSWORD=lab`):"]
    for c in cons:
        if c.control:
            continue
        text = c.describe(lab).replace(str(lab.peer_config), "PEER")
        text = text.replace(f"-p {lab.pg['source'].port} ", "-p SRC ")
        text = text.replace(f"-p {lab.pg['target'].port} ", "-p DST ")
        text = text.replace(f":{lab.pg['source'].port}/", ":SRC/")
        text = text.replace(f":{lab.pg['target'].port}/", ":DST/")
        text = re.sub(r"/usr/lib/postgresql/\d+/bin/", "", text)
        text = re.sub(r"export [^\n]*\n", "", text).replace("\n", " ")
        text = text.replace(f"PGPASSWORD={PASSWORD} ", "")
        lines.append(f"- `{c.name}`: `{text}`")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=60, help="pgbench -i -s SCALE on the source")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2,
                        help="parallel jobs of cutpilot -j and pg_dump/pg_restore -j")
    parser.add_argument("--pgcopydb-jobs", type=int, default=2,
                        help="pgcopydb --table-jobs and --index-jobs")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds, per run")
    parser.add_argument("--smoke", action="store_true",
                        help="scale 1, once, with a negative control; exit 1 if a contender fails")
    parser.add_argument("--rtt", help="both hosts behind the lab's WAN relay with this round trip "
                                      "(40ms; 0ms: the relay without delay); ssh contenders only")
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--workdir", default=None, help="where the lab goes (default: a temp dir)")
    parser.add_argument("--write-results", action="store_true",
                        help=f"replace the '{SECTION}' section of bench/RESULTS.md")
    parser.add_argument("--results-file", default=str(RESULTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    # SIGTERM (ctest's timeout, a kill) unwinds like Ctrl-C, so the lab still goes down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.smoke and args.write_results:
        parser.error("--smoke measures nothing worth keeping: no --write-results with it")
    if args.smoke:
        args.scale, args.repeat, args.timeout = 1, 1, 60
    require_tools({"ssh": "openssh-client", "timeout": "coreutils", "pgcopydb": "pgcopydb",
                   "zstd": "zstd", "gzip": "gzip"})
    cons = contenders(args)

    # The postgres OS user must reach the clusters' directories: the work dir is 0755.
    work = Path(tempfile.mkdtemp(prefix="cutpilot-db-", dir=args.workdir))
    work.chmod(0o755)
    lab = Lab(work / "lab", args.rtt)
    section_name = f"## WAN: database copy at {args.rtt} RTT" if args.rtt else SECTION
    started = time.monotonic()
    results: Dict[str, Cell] = {}
    loads: List[float] = []
    load_before = load1()
    try:
        lab.up()
        t = time.monotonic()
        make_source(lab, args.scale, timeout=max(600, args.scale * 60))
        expected = shape(lab, "source")
        size = int(lab.sql("source", f"SELECT pg_database_size('{DATABASE}')")[0])
        log(f"lab {lab.dir}: source database {DATABASE} (pgbench -s {args.scale}): "
            f"{size / MiB:.0f} MiB, {expected['pgbench_accounts']} accounts, "
            f"{expected['indexes']} indexes; made in {time.monotonic() - t:.1f} s")
        measure(lab, cons, expected, args, results, loads)
        info = machine_info(lab)
        commands = commands_text(lab, cons)
    finally:
        lab.down()
        shutil.rmtree(work, ignore_errors=True)
    load_after = load1()

    table = report(results, cons, size)
    load_text = (f"load average (1 min) {load_before:.2f} before, "
                 f"{min(loads):.2f}–{max(loads):.2f} at the runs' starts, {load_after:.2f} after"
                 if loads else f"load average (1 min) {load_before:.2f} before")
    header = (f"`{command_line()}` ({datetime.date.today().isoformat()}, build {info['build']}; "
              f"{info['cores']} cores, {info['memory']}, {info['postgres']}, {info['pgcopydb']}; "
              f"{load_text})")
    notes = (f"Database: `pgbench -i -s {args.scale}`, {size / MiB:.0f} MiB on the source "
             f"({expected['pgbench_accounts']} accounts, {expected['indexes']} indexes). Both "
             f"clusters are lab clusters on this machine (fsync off, shared_buffers 32MB). "
             f"Medians of {args.repeat} run(s) of the wall time as an operator sees it: ssh into "
             f"the target plus the command (cutpilot: its driver, which connects both hosts, "
             f"starts the agents and sets up and revokes the migration key itself); \"without "
             f"the login\" is the command alone (cutpilot: the db job alone). Every run started "
             f"from an empty target database, made by the harness before the clock starts (for "
             f"cutpilot too); each copy was then checked: the row counts of the "
             f"4 pgbench tables and the number of indexes equal to the source's. cutpilot's job "
             f"also counts the rows on both sides itself (inside its time); the others do not. "
             + (f"`pg_dump | psql`, `-Fd -j` and pgcopydb reach the source's cluster over TCP on "
                f"loopback (no ssh on the data path), as cutpilot direct does; cutpilot plain "
                f"streams pg_dump's output over the migration ssh, as `ssh source pg_dump | psql` "
                f"does with the same cipher." if not args.rtt else "") + (
                 f"Both hosts behind the lab's WAN relay at {args.rtt} RTT (tests/lab/lablib/relay.py: "
                 f"half each way, a 4 MiB window per connection and direction, the handshake's "
                 f"round trip); every contender here streams over ssh through it."
                 if args.rtt else ""))
    print(f"{header}\n\n{table}\n\n{notes}\n\n{commands}")
    log(f"total {time.monotonic() - started:.0f} s")

    failed = sorted(n for n, v in results.items()
                    if (v.status.startswith("FAILED") or v.status == "not built")
                    and not n.startswith("control:"))
    for n, v in results.items():
        if n.startswith("control:"):
            if v.status.startswith("FAILED") and "differs" in v.status:
                log(f"check ok: {n} was caught")
            else:
                failed.append(f"the check missed a wrong copy: {n}")
    for n, v in results.items():
        if v.status.startswith("not supported"):
            log(f"{n}: {v.status}")
    section = (f"{section_name}: one PostgreSQL database host to host\n\n{header}\n\n{table}\n\n"
               f"{notes}\n\n{commands}\n")
    return conclude(args.write_results, args.results_file, section_name, section, failed,
                    any(v.times and not v.status for v in results.values()))


if __name__ == "__main__":
    sys.exit(main())
