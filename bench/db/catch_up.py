#!/usr/bin/env python3
"""Database cutover window bench (issue 19): what the database costs inside the downtime
window when it moves as one copy, and when it was replicated while live and only caught up.

Two lab hosts, `source` (its cluster with wal_level = logical: `lab postgres --logical`) and
`target`, as bench/db/run.py makes them; the source database `bench` is `pgbench -i -s SCALE`.
In one run, for each repeat (the contenders in a seeded shuffled order, each starting from an
empty target database and checked afterwards against the source's row counts and indexes):
  pg_dump | psql        the whole database, on the target over TCP (the operator's copy)
  cutpilot copy         build/bin/db_run ... --format plain (the db step as it is without
                        replication: dump over the migration ssh, restore, row counts)
  cutpilot catch-up     build/bin/replica_run ... --writes 'pgbench -c N -T S': the replicate
                        job streams while pgbench writes on the source for S seconds (the live
                        service), the writers stop, then the catch-up job (wait for the
                        source's WAL position, sequences, row counts on both sides, the
                        replication removed, the copy swapped in) is what the window pays.
  cutpilot catch-up, no row counts   the same with verify = false: a reference, what the
                        catch-up's counts (every row of both sides) cost.
The window's cost is the command alone (no ssh login) for pg_dump | psql and the db job alone
for cutpilot; the replication's first copy, live, is shown beside it.

Usage: bench/db/catch_up.py [--scale 60 300] [--repeat 3] [--write-seconds 30] [--clients 4]
                            [--smoke] [--build build] [--write-results]
--write-results replaces the "## Database cutover window" section of bench/RESULTS.md; --smoke
runs scale 1 once with 3 s of writes (CI) and exits 1 when a contender fails.
"""
import argparse
import datetime
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import run as copybench  # noqa: E402  (bench/db/run.py: the lab, the source, the check)
from benchlib import Failed, conclude, log, parse_bench_args, require_tools  # noqa: E402

SECTION = "## Database cutover window"
# The catch-up without its row counts (verify = false): a reference, what the counts cost.
CATCH_UP_UNCOUNTED = "cutpilot catch-up, no row counts"
DATABASE = copybench.DATABASE
MiB = 1 << 20


def reset_target(lab: copybench.Lab) -> None:
    """An empty target database `bench`, and none of the side or kept databases a catch-up's
    swap leaves; both clusters checkpointed (untimed)."""
    for name in lab.sql("target", f"SELECT datname FROM pg_database WHERE datname LIKE '{DATABASE}%'",
                        database="postgres"):
        lab.sql("target", f'DROP DATABASE "{name}" WITH (FORCE)', database="postgres")
    lab.sql("target", f"CREATE DATABASE {DATABASE}", database="postgres")
    for host in ("source", "target"):
        lab.sql(host, "CHECKPOINT", database="postgres")


def writer(lab: copybench.Lab, clients: int, seconds: int) -> str:
    c = lab.pg["source"]
    return (f"{c.tool('pgbench')} -n -c {clients} -j {min(clients, 2)} -T {seconds} "
            f"-h {c.socket} -p {c.port} -U postgres {DATABASE} >/dev/null 2>&1")


def run_replica(lab: copybench.Lab, args, tag: str, verify: bool = True) -> Dict[str, str]:
    binary = Path(args.build) / "bin" / "replica_run"
    if not binary.exists():
        raise Failed(f"{binary} is not built")
    argv = [str(binary), "--lab", str(lab.dir), "--from", "source", "--to", "target",
            "--database", DATABASE, "--writes", writer(lab, args.clients, args.write_seconds)]
    if not verify:
        argv += ["--verify", "no"]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=args.timeout)
    (lab.logs / f"{tag}.out").write_text(proc.stdout)
    (lab.logs / f"{tag}.err").write_text(proc.stderr)
    if proc.returncode != 0:
        raise Failed(f"replica_run exit {proc.returncode}: {(proc.stdout + proc.stderr)[-1500:]}")
    return dict(re.findall(r"^(\w+)=(.*)$", proc.stdout, re.M))


def measure(lab: copybench.Lab, args) -> Dict[str, Dict[str, List]]:
    cons = ["pg_dump | psql", "cutpilot copy", "cutpilot catch-up", CATCH_UP_UNCOUNTED]
    dump = copybench.Contender("pg_dump | psql", copybench.dump_psql_cmd)
    copy = copybench.Contender("cutpilot plain", driver_args=["--format", "plain"])
    out: Dict[str, Dict[str, List]] = {c: {"window": [], "first": [], "lag": [], "count": [],
                                           "estimate": []} for c in cons}
    shuffle = random.Random(1)
    for r in range(args.repeat):
        order = list(cons)
        shuffle.shuffle(order)
        for name in order:
            tag = f"{r}-{re.sub(r'[^A-Za-z0-9]+', '-', name).strip('-')}"
            reset_target(lab)
            if name.startswith("cutpilot catch-up"):
                said = run_replica(lab, args, tag, verify=name != CATCH_UP_UNCOUNTED)
                window = float(said["catch_up_seconds"])
                counting = json.loads(said.get("result", "{}")).get("count_s")
                out[name]["count"].append(counting)
                out[name]["first"].append(float(said["first_copy_seconds"]))
                out[name]["lag"].append(said.get("lag_at_stop", ""))
                out[name]["estimate"].append(float(said.get("catch_up_estimate_seconds", 0)))
            else:
                c = dump if name == "pg_dump | psql" else copy
                c.run(lab, args, tag)
                window = c.inner
            # The source has changed (the writers): the check reads it again, quiescent.
            summary = copybench.verify(lab, copybench.shape(lab, "source"))
            out[name]["window"].append(window)
            extra = (f"; first copy {out[name]['first'][-1]:.2f} s live, at the stop "
                     f"{out[name]['lag'][-1]}, counting {out[name]['count'][-1] or 0:.2f} s, "
                     f"predicted {out[name]['estimate'][-1]:.2f} s"
                     if name.startswith("cutpilot catch-up") else "")
            log(f"[{r + 1}/{args.repeat}] {name:<20} {window:8.2f} s in the window ({summary}{extra})")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, nargs="+", default=[60, 300])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write-seconds", type=int, default=30,
                        help="how long pgbench writes on the source while the replica streams")
    parser.add_argument("--clients", type=int, default=4, help="pgbench clients writing")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds, per run")
    parser.add_argument("--smoke", action="store_true")
    args = parse_bench_args(parser, SECTION)
    if args.smoke:
        args.scale, args.repeat, args.write_seconds, args.timeout = [1], 1, 3, 120
    require_tools({"ssh": "openssh-client", "timeout": "coreutils"})
    args.pgcopydb_jobs = 2  # (copybench's Contender reads what run.py's arguments hold)
    started = time.monotonic()
    rows, failed = [], []
    for scale in args.scale:
        work = Path(tempfile.mkdtemp(prefix="cutpilot-catchup-"))
        work.chmod(0o755)
        lab = copybench.Lab(work / "lab", logical=True)
        try:
            lab.up()
            copybench.make_source(lab, scale, timeout=max(600, scale * 60))
            size = int(lab.sql("source", f"SELECT pg_database_size('{DATABASE}')")[0])
            log(f"scale {scale}: {size / MiB:.0f} MiB on the source")
            got = measure(lab, args)
            med = {k: statistics.median(v["window"]) for k, v in got.items()}
            rows.append((scale, size, med, statistics.median(got["cutpilot catch-up"]["first"]),
                         got["cutpilot catch-up"]["lag"],
                         statistics.median(got["cutpilot catch-up"]["count"]),
                         statistics.median(got["cutpilot catch-up"]["estimate"])))
        except (Failed, subprocess.TimeoutExpired, RuntimeError) as e:
            log(f"scale {scale}: FAILED: {e}")
            failed.append(f"scale {scale}: {e}")
        finally:
            lab.down()
            shutil.rmtree(work, ignore_errors=True)
    table = ["| pgbench scale (source size) | pg_dump \\| psql | cutpilot copy | cutpilot catch-up "
             "| predicted as the replica first streamed | of which counting rows "
             "| catch-up / pg_dump \\| psql | catch-up without row counts (verify = false) "
             "| replication's first copy (live) | lag when the writers stopped |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for scale, size, med, first, lags, counting, predicted in rows:
        table.append(f"| {scale} ({size / MiB:.0f} MiB) | {med['pg_dump | psql']:.2f} s | "
                     f"{med['cutpilot copy']:.2f} s | {med['cutpilot catch-up']:.2f} s | "
                     f"{predicted:.2f} s | {counting:.2f} s | "
                     f"{med['cutpilot catch-up'] / med['pg_dump | psql']:.3f}x | "
                     f"{med[CATCH_UP_UNCOUNTED]:.2f} s | {first:.1f} s | "
                     f"{'; '.join(l.removeprefix('streaming: ') for l in lags)} |")
    header = (f"`bench/db/catch_up.py --scale {' '.join(map(str, args.scale))} --repeat "
              f"{args.repeat} --write-seconds {args.write_seconds} --clients {args.clients}` "
              f"({datetime.date.today().isoformat()}; medians of {args.repeat})")
    notes = ("The window's part: pg_dump | psql and cutpilot copy move the whole database after "
             "the writers stop (the command alone, the db job alone); cutpilot catch-up only "
             f"waits for what pgbench ({args.clients} clients, {args.write_seconds} s, full "
             "speed) wrote before it stopped, sets sequences, counts rows on both sides, "
             "swaps the copy in and removes the replication. The replication's first copy "
             "(live, outside the window) runs until the replicate step succeeds: the tables "
             "copied, then VACUUM ANALYZE of the copy. Each copy was checked against the "
             "source (row counts of the 4 pgbench tables, indexes). The prediction is the "
             "replicate job's estimate as it first streamed, which the cockpit predicts the "
             "catch-up step from: the row counts of both sides, run at once and timed then, 1 s, "
             "and the lag's seconds then.")
    verdicts = []
    for scale, size, med, first, lags, counting, predicted in rows:
        for name, label in (("cutpilot catch-up", "with row counts"),
                            (CATCH_UP_UNCOUNTED, "without row counts")):
            verdicts.append(f"scale {scale} {label}: {med[name]:.2f} s, "
                            f"{'met' if med[name] <= 5 else 'missed'}")
    table.append("")
    table.append(f"Target (issue 19): the catch-up at most 5 s at every size. {'; '.join(verdicts)}.")
    text = "\n".join(table)
    print(f"{header}\n\n{text}\n\n{notes}")
    log(f"total {time.monotonic() - started:.0f} s")
    section = f"{SECTION}: replication, then catch-up (issue 19)\n\n{header}\n\n{text}\n\n{notes}\n"
    return conclude(args.write_results, args.results_file, SECTION, section, failed, bool(rows))


if __name__ == "__main__":
    sys.exit(main())
