#!/usr/bin/env python3
"""Sync bench: copy a service's files host to host with cutpilot, rsync, fpsync and tar, side by side.

Two lab hosts, `source` and `target` (tests/lab/lab). Two datasets on the source:
  small   N small files (~4 KiB, 1-7 KiB) in directories of 1000, plus a few odd
          entries (empty file, empty dir, symlink, executable, name with blanks)
  large   G files of 1 GiB
Each is measured as a first sync (empty target) and as a 1 %-changed re-sync (the target
holds the unchanged source; 1 % of the small files are rewritten, resp. 1 % of every large
file's bytes, in 1 MiB blocks spread over the file).

Contenders, each pulling to the target like an operator logged in there (fpsync pushes from
the source: it needs its source local). Every ssh leg uses the same cipher (--cipher).
  cutpilot pN   build/bin/sync_run --lab DIR --from source:SRC/ --to target:DST/ --parallel N
                (bench/sync/sync_run.cpp: the target's agent pulls; run by the harness)
  rsync         rsync -a -e "ssh -F PEER" source:SRC/ DST/                       (on target)
  fpsync -n N   RSYNC_RSH="ssh -F PEER" fpsync -n N -o "-lptgoD --numeric-ids" SRC/ target:DST/
                                                                                 (on source)
  tar           ssh -F PEER source 'tar -C SRC -cf - .' | tar -C DST -xf -      (on target;
                first syncs only: the floor of a full copy)
  raw ssh       head -c BYTES /dev/zero | ssh -F PEER source 'cat > /dev/null'  (on target;
                BYTES = the large dataset's size)
After every run the target tree is compared with the source tree (entries, types, sizes,
modes, mtimes, symlink targets, and every file's content with `diff -r`): a contender that
copies wrongly is reported as FAILED, never as fast. Each host's data lives on its own
loop-mounted journaled ext4 when possible (--fs; see DataFs for why).

With --rtt 40ms both hosts sit behind the lab's WAN relay (`lab up --rtt`: half the RTT each
way, a 4 MiB window per connection and direction), so every ssh leg, host to host and
harness to host, crosses it. Compare with a --rtt 0ms run: the same relay without delay.

Usage: bench/sync/run.py [--small-files 100000] [--large-gib 4] [--repeat 3] [--smoke]
                         [--parallel 1,2,4] [--fpsync-jobs 2,4] [--rtt 40ms] [--build build]
                         [--write-results]
Prints markdown tables of medians and ratios; --write-results replaces the "## Sync" section
of bench/RESULTS.md (with --rtt: "## WAN: sync at RTT"). Exits 1 when any contender fails. --smoke runs a tiny configuration once
(500 small files, 2 x 4 MiB, fpsync -n 2 only) to prove the bench works (CI), plus negative
controls (copies wrong on purpose) that the check must catch.
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
from benchlib import (CIPHER, LAB, RESULTS, ROOT, Failed, Remote, log, q,  # noqa: E402
                      first_line, memory, run_local, run_on, conclude, setup_peers,
                      require_tools)
from data import (GiB, MiB, Dataset, DataFs, copy_tree, data_fs_size,  # noqa: E402
                  empty_dir, gen_large, gen_small, mount_data, verify)

SECTION = "## Sync"


# ---------------------------------------------------------------------------------------------
# The lab: two hosts, and a key that lets each of them reach the other over ssh.

class Lab:
    """The two lab hosts and the bench's own ssh setup between them (DIR/bench)."""

    def __init__(self, directory: Path, cipher: str, rtt: Optional[str] = None):
        self.dir = directory
        self.cipher = cipher
        self.rtt = rtt
        self.ssh_config = directory / "ssh_config"   # harness -> host (the lab's)
        self.bench = directory / "bench"
        self.peer_config = self.bench / "peer_ssh_config"  # host -> host (the bench's)
        self.scripts = self.bench / "scripts"
        self.logs = self.bench / "logs"

    def host_dir(self, name: str) -> Path:
        return self.dir / "hosts" / name

    def up(self) -> None:
        wan = ["--rtt", self.rtt] if self.rtt else []
        run_local([LAB, "up", "--dir", self.dir, *wan, "source", "target"], timeout=60)
        for d in (self.bench, self.scripts, self.logs):
            d.mkdir(parents=True, exist_ok=True)

    def down(self) -> None:
        try:
            run_local([LAB, "down", "--dir", self.dir, "--rm"], timeout=120, check=False)
        except subprocess.TimeoutExpired:
            log(f"warning: lab down --dir {self.dir} timed out")

    def setup_peers(self) -> None:
        """DIR/bench/peer_ssh_config: either host from the other with the chosen cipher."""
        setup_peers(self.dir, self.bench, self.cipher, "cutpilot-sync-bench")

    def check_cipher(self) -> str:
        """Prove that target -> source negotiates the cipher; return ssh's line about it."""
        proc = self.on("target", f"ssh -v -F {q(self.peer_config)} source true", "cipher-check",
                       timeout=30)
        err = (self.logs / "cipher-check.err").read_text()
        line = next((l for l in err.splitlines() if "server->client cipher" in l), "")
        if proc.rc != 0 or self.cipher not in line:
            raise RuntimeError(f"target -> source over ssh with {self.cipher} failed:\n{err[-2000:]}")
        return line.split("debug1: ", 1)[-1]

    def on(self, host: str, command: str, name: str, timeout: float) -> Remote:
        """A command on a lab host through its sshd (benchlib.run_on: both clocks)."""
        return run_on(self.ssh_config, self.scripts, self.logs, host, command, name, timeout,
                      "bench/sync/run.py")


# ---------------------------------------------------------------------------------------------
# Contenders.

class NotBuilt(Exception):
    """cutpilot's bench driver does not exist yet."""


def cutpilot_sync(build_dir, lab_dir, src, dst, parallel, delete, timeout=1800.0,
                  cipher=CIPHER, details: Optional[dict] = None) -> float:
    """HOOK: cutpilot's side of the bench; returns the wall time (s) of one sync.

    Runs BUILD/bin/sync_run (bench/sync/sync_run.cpp), cutpilot's bench driver:
        sync_run --lab DIR --from source:SRC/ --to target:DST/ --parallel N [--delete]
    The target host pulls SRC's contents into DST (trailing slashes: rsync's meaning, as
    the rsync contender is given them) through cutpilot's agents; exit 0 means the copy is
    complete, and the harness checks it itself afterwards. The other contenders use cipher
    `cipher` on every ssh leg; CUTPILOT_BENCH_CIPHER in the driver's environment says which.
    The wall time includes what the driver does around the copy (connects, agent start,
    migration key set-up and removal); what it prints as job_seconds= and total_seconds=
    goes into details when given.
    Raises NotBuilt while the driver does not exist, Failed when it exits non-zero.
    """
    binary = Path(build_dir) / "bin" / "sync_run"
    if not binary.exists():
        raise NotBuilt(str(binary))
    argv = [str(binary), "--lab", str(lab_dir), "--from", f"source:{src}/", "--to",
            f"target:{dst}/", "--parallel", str(parallel)]
    if delete:
        argv.append("--delete")
    env = dict(os.environ, CUTPILOT_BENCH_CIPHER=cipher)
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise Failed(f"sync_run timed out after {timeout:g} s") from None
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise Failed(f"sync_run exit {proc.returncode}: {(proc.stdout + proc.stderr)[-1500:]}")
    if details is not None:
        for key, value in re.findall(r"^(job_seconds|total_seconds)=([0-9.]+)$", proc.stdout, re.M):
            details[key] = float(value)
    return seconds


@dataclass
class Contender:
    name: str                 # column title
    resync: bool              # measured on re-syncs too
    host: str = ""            # where its command runs ("" = cutpilot, run by the harness)
    command: Optional[Callable[[Lab, Dataset], str]] = None
    parallel: int = 0         # cutpilot only
    fpsync_jobs: int = 0      # fpsync only (its temp dir is cleaned after each run)
    control: bool = False     # a deliberately wrong copy: must be reported FAILED (--smoke)
    first: bool = True        # measured on first syncs
    inner: Optional[float] = None  # the last run's time without the login to its host

    def describe(self, lab: Lab, ds: Dataset) -> str:
        if self.command is None:
            return (f"sync_run --lab DIR --from source:{ds.src}/ --to target:{ds.dst}/ "
                    f"--parallel {self.parallel}")
        return self.command(lab, ds)

    def run(self, lab: Lab, ds: Dataset, args, tag: str) -> float:
        if self.command is None:
            details: dict = {}
            seconds = cutpilot_sync(args.build, lab.dir, ds.src, ds.dst, self.parallel, False,
                                    timeout=args.timeout, cipher=args.cipher, details=details)
            self.inner = details.get("job_seconds")
            return seconds
        r = lab.on(self.host, self.command(lab, ds), tag, args.timeout)
        if r.rc != 0:
            raise Failed(f"exit {r.rc}{' (timed out)' if r.rc in (124, 137) else ''}: {r.tail()}")
        self.inner = r.inner
        return r.seconds


def rsync_cmd(lab: Lab, ds: Dataset) -> str:
    return f"rsync -a -e {q(f'ssh -F {lab.peer_config}')} source:{q(f'{ds.src}/')} {q(f'{ds.dst}/')}"


def rsync_progress_cmd(lab: Lab, ds: Dataset) -> str:
    """Plain rsync with the progress flags the issue prescribes for the job (a reference:
    what the progress costs rsync itself, its lines thrown away)."""
    return rsync_cmd(lab, ds).replace(
        "rsync -a ", "rsync -a --info=progress2 --no-inc-recursive --outbuf=L ", 1) + " > /dev/null"


def fpsync_cmd(jobs: int) -> Callable[[Lab, Dataset], str]:
    def cmd(lab: Lab, ds: Dataset) -> str:
        # fpsync's job command line has three levels of shell quoting: the ssh command goes in
        # through RSYNC_RSH, which rsync reads, rather than through -o "-e ...".
        tmp = lab.host_dir("source") / "fpsync-tmp"
        return (f"RSYNC_RSH={q(f'ssh -F {lab.peer_config}')} fpsync -n {jobs} -t {q(tmp)} "
                f"-o '-lptgoD --numeric-ids' {q(f'{ds.src}/')} target:{q(f'{ds.dst}/')}")
    return cmd


def tar_cmd(lab: Lab, ds: Dataset) -> str:
    remote = f"tar -C {q(ds.src)} -cf - ."
    return f"ssh -F {q(lab.peer_config)} source {q(remote)} | tar -C {q(ds.dst)} -xf -"


def corrupt_cmd(lab: Lab, ds: Dataset) -> str:
    """A negative control: a good copy, then two bytes of one file overwritten (size and mtime
    kept), which only the content comparison can see."""
    victim = ds.dst / ds.changes[0].path.relative_to(ds.src)
    return (f"{rsync_cmd(lab, ds)} && printf '\\377\\000' | dd of={q(victim)} bs=1 seek=100 "
            f"conv=notrunc status=none && touch -r {q(ds.changes[0].path)} {q(victim)}")


def raw_ssh_cmd(lab: Lab, nbytes: int) -> str:
    return f"head -c {nbytes} /dev/zero | ssh -F {q(lab.peer_config)} source 'cat > /dev/null'"


def contenders(args) -> List[Contender]:
    out = [Contender(f"cutpilot p{n}", True, parallel=n) for n in args.parallel]
    out.append(Contender("rsync", True, "target", rsync_cmd))
    out.append(Contender("rsync + progress flags", True, "target", rsync_progress_cmd))
    out += [Contender(f"fpsync -n {n}", True, "source", fpsync_cmd(n), fpsync_jobs=n)
            for n in args.fpsync_jobs]
    out.append(Contender("tar over ssh", False, "target", tar_cmd))
    if args.smoke:
        # Negative controls: copies that are wrong on purpose. The smoke test fails unless the
        # check catches both, so a passing smoke test means the check can tell.
        out.append(Contender("control: rsync -r", False, "target", lambda lab, ds: rsync_cmd(
            lab, ds).replace("rsync -a ", "rsync -r "), control=True))
        out.append(Contender("control: 2 bytes wrong", False, "target", corrupt_cmd, control=True))
        out.append(Contender("control: no-op re-sync", True, "target",
                             lambda lab, ds: "true", control=True, first=False))
    return out


# ---------------------------------------------------------------------------------------------
# The measurement.

WORKLOADS = [("small", "first"), ("small", "resync"), ("large", "first"), ("large", "resync")]
WORKLOAD_TITLE = {("small", "first"): "small, first sync", ("small", "resync"): "small, 1 % re-sync",
                  ("large", "first"): "large, first sync", ("large", "resync"): "large, 1 % re-sync"}


@dataclass
class Cell:
    times: List[float] = field(default_factory=list)
    status: str = ""          # "" ok, "not built", "FAILED: ..."
    inner: List[float] = field(default_factory=list)  # cutpilot: its sync job alone

    @property
    def median(self) -> Optional[float]:
        return statistics.median(self.times) if self.times and not self.status else None


def measure(lab: Lab, sets: Dict[str, Dataset], cons: List[Contender], args,
            results: Dict[tuple, Cell], raw: Cell) -> None:
    """Repeat outermost so that every contender sees the same machine drift; every workload of
    every repeat starts with an untimed warm-up run of plain rsync (the first copy after the
    bench switches datasets runs up to twice as slow, whoever makes it), then runs the
    contenders in an order shuffled afresh for each repeat and workload (seeded: the same
    order on every run of the bench), so no contender always follows the same one. A
    contender that fails a workload once is out of that workload."""
    shuffle = random.Random(1)
    warm = next((c for c in cons if c.name == "rsync"), None)
    for r in range(args.repeat):
        for dsname, kind in WORKLOADS:
            ds = sets[dsname]
            if (dsname, kind) == ("large", "first"):
                measure_raw_ssh(lab, ds.bytes, args, raw, r)
            order = list(cons)
            shuffle.shuffle(order)
            if warm is not None:
                try:
                    seconds, _ = run_once(lab, ds, kind, warm, args, f"{dsname}-{kind}-warmup-{r}",
                                          check=False)
                    log(f"[{r + 1}/{args.repeat}] {WORKLOAD_TITLE[(dsname, kind)]:<20} "
                        f"{'(warm-up: rsync)':<14} {seconds:8.2f} s, not counted")
                except (Failed, subprocess.TimeoutExpired) as e:
                    log(f"warm-up run failed (the rsync contender will say why): {e}")
            for c in order:
                if (kind == "resync" and not c.resync) or (kind == "first" and not c.first):
                    continue
                cell = results.setdefault((c.name, dsname, kind), Cell())
                if cell.status:
                    continue
                tag = f"{dsname}-{kind}-{c.name.replace(' ', '').replace('|', '')}-{r}"
                try:
                    seconds, summary = run_once(lab, ds, kind, c, args, tag)
                    cell.times.append(seconds)
                    inner = "" if c.inner is None else (
                        f", {c.inner:.2f} s the sync job alone" if c.command is None
                        else f", {c.inner:.2f} s without the login")
                    if c.command is None and c.inner is not None:
                        cell.inner.append(c.inner)
                    log(f"[{r + 1}/{args.repeat}] {WORKLOAD_TITLE[(dsname, kind)]:<20} {c.name:<14} "
                        f"{seconds:8.2f} s  ({summary}{inner})")
                except NotBuilt as e:
                    for w in WORKLOADS:
                        results.setdefault((c.name, *w), Cell()).status = "not built"
                    log(f"{c.name}: not built ({e} is missing): not measured")
                except (Failed, subprocess.TimeoutExpired) as e:
                    cell.status = f"FAILED: {e}"
                    log(f"[{r + 1}/{args.repeat}] {WORKLOAD_TITLE[(dsname, kind)]:<20} {c.name:<14} "
                        f"FAILED: {e}")
    for ds in sets.values():
        shutil.rmtree(ds.dst, ignore_errors=True)


def run_once(lab: Lab, ds: Dataset, kind: str, c: Contender, args, tag: str,
             check: bool = True) -> tuple:
    """Resets the target for the workload (empty, or the unchanged source with 1 % of the
    source then changed), runs one contender, checks its copy when asked (before the source's
    change is reverted, whatever happened) and returns (seconds, the check's summary)."""
    changed = False
    try:
        if kind == "first":
            empty_dir(ds.dst)
        else:
            copy_tree(ds.src, ds.dst, args.timeout)
            ds.apply_change()
            changed = True
        os.sync()  # the reset's dirty pages must not be flushed on the contender's clock
        c.inner = None
        seconds = c.run(lab, ds, args, tag)
        return seconds, verify(ds.src, ds.dst, args.timeout) if check else ""
    finally:
        if changed:
            ds.revert_change()
        if c.fpsync_jobs:
            shutil.rmtree(lab.host_dir("source") / "fpsync-tmp", ignore_errors=True)


def measure_raw_ssh(lab: Lab, nbytes: int, args, cell: Cell, r: int) -> None:
    """One run of the raw ssh floor, in the same repeat as the contenders (same machine state)."""
    if cell.status:
        return
    try:
        res = lab.on("target", raw_ssh_cmd(lab, nbytes), f"raw-ssh-{r}", args.timeout)
        if res.rc != 0:
            raise Failed(f"exit {res.rc}: {res.tail()}")
        # A rate, not an operator's time: without the harness's login to the target.
        cell.times.append(res.inner)
        log(f"[{r + 1}/{args.repeat}] raw ssh {nbytes / MiB:.0f} MiB: {res.inner:.2f} s, "
            f"{nbytes / MiB / res.inner:.0f} MiB/s ({res.seconds:.2f} s with the login)")
    except (Failed, subprocess.TimeoutExpired) as e:
        cell.status = f"FAILED: {e}"
        log(f"raw ssh FAILED: {e}")


# ---------------------------------------------------------------------------------------------
# Report.

def fmt_cell(cell: Optional[Cell]) -> str:
    if cell is None:
        return "—"
    if cell.status == "not built":
        return "not built"
    if cell.status:
        return "FAILED"
    return f"{cell.median:.2f} s"


def ratio(a: Optional[float], b: Optional[float]) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


def report(results: Dict[tuple, Cell], raw: Cell, cons: List[Contender], sets: Dict[str, Dataset],
           args) -> str:
    cons = [c for c in cons if not c.control]
    names = [c.name for c in cons]
    med = lambda name, ds, kind: (results.get((name, ds, kind)) or Cell(status="-")).median
    fpsyncs = [c.name for c in cons if c.fpsync_jobs]

    def best_fpsync(ds, kind):
        vals = [med(n, ds, kind) for n in fpsyncs if med(n, ds, kind)]
        return min(vals) if vals else None

    large_mib = sets["large"].bytes / MiB
    raw_mibs = large_mib / raw.median if raw.median else None
    lines = [f"| workload | {' | '.join(names)} |", "|---|" + "---:|" * len(names)]
    for ds, kind in WORKLOADS:
        lines.append(f"| {WORKLOAD_TITLE[(ds, kind)]} | "
                     + " | ".join(fmt_cell(results.get((n, ds, kind))) for n in names) + " |")
    lines.append("| large, first sync, MiB/s | " + " | ".join(
        f"{large_mib / med(n, 'large', 'first'):.0f}" if med(n, "large", "first") else "n/a"
        for n in names) + " |")
    lines.append("")
    raw_text = (f"{raw_mibs:.0f} MiB/s ({raw.median:.2f} s for {large_mib:.0f} MiB)"
                if raw_mibs else fmt_cell(raw))
    lines.append(f"Raw ssh throughput, same cipher: {raw_text}; timed on the target, without "
                 f"the login to it (a pure rate, so the floor is strict).")
    for c in cons:
        jobs = [(w, results.get((c.name, *w))) for w in WORKLOADS]
        jobs = [(w, cell) for w, cell in jobs if cell and cell.inner and not cell.status]
        if c.command is None and jobs:
            lines.append(f"{c.name}, the sync job alone (links up, key set; sync_run's job_seconds): "
                         + ", ".join(f"{WORKLOAD_TITLE[w]} {statistics.median(cell.inner):.2f} s"
                                     for w, cell in jobs) + ".")
    lines.append("")
    cols = [f"{WORKLOAD_TITLE[w]} / rsync" for w in WORKLOADS]
    cols += ["small, first / best fpsync", "small, re-sync / best fpsync",
             "large, first MiB/s / raw ssh"]
    lines += [f"| contender | {' | '.join(cols)} |", "|---|" + "---:|" * len(cols)]
    for n in names:
        row = [ratio(med(n, ds, kind), med("rsync", ds, kind)) if n != "rsync" else "1.00x"
               if med(n, ds, kind) else "n/a" for ds, kind in WORKLOADS]
        row += [ratio(med(n, "small", k), best_fpsync("small", k)) for k in ("first", "resync")]
        lm = med(n, "large", "first")
        row.append(f"{large_mib / lm / raw_mibs:.2f}" if lm and raw_mibs else "n/a")
        lines.append(f"| {n} | {' | '.join(row)} |")
    lines.append("")
    lines += targets(results, cons, med, best_fpsync, large_mib, raw_mibs)
    return "\n".join(lines)


def targets(results, cons, med, best_fpsync, large_mib, raw_mibs) -> List[str]:
    """The issue's targets, per cutpilot parallelism: met, missed, or not measured."""
    out = ["Targets (issue): cutpilot ≤ 1.05× rsync everywhere, ≤ 1.0× the best fpsync on small "
           "files, ≥ 0.9× raw ssh throughput on large files."]
    for c in cons:
        if c.command is not None:
            continue
        cells = [results.get((c.name, ds, k)) for ds, k in WORKLOADS]
        if any(cell and cell.status == "not built" for cell in cells):
            out.append(f"- {c.name}: not built (build/bin/sync_run missing): not measured")
            continue
        checks = []
        for ds, k in WORKLOADS:
            a, b = med(c.name, ds, k), med("rsync", ds, k)
            checks.append((f"{WORKLOAD_TITLE[(ds, k)]} ≤ 1.05× rsync", a / b <= 1.05 if a and b else None))
        for k in ("first", "resync"):
            a, b = med(c.name, "small", k), best_fpsync("small", k)
            checks.append((f"small {k} ≤ 1.0× fpsync", a / b <= 1.0 if a and b else None))
        lm = med(c.name, "large", "first")
        checks.append(("large ≥ 0.9× raw ssh", large_mib / lm / raw_mibs >= 0.9 if lm and raw_mibs else None))
        missed = [t for t, ok in checks if ok is False]
        unknown = [t for t, ok in checks if ok is None]
        verdict = "all met" if not missed and not unknown else \
            "; ".join(([f"missed: {', '.join(missed)}"] if missed else []) +
                      ([f"not measured: {', '.join(unknown)}"] if unknown else []))
        out.append(f"- {c.name}: {verdict}")
    ref = "rsync + progress flags"
    like = [f"{WORKLOAD_TITLE[(ds, k)]} {med(c.name, ds, k) / med(ref, ds, k):.2f}×"
            for c in cons if c.command is None and c.parallel == 1 for ds, k in WORKLOADS
            if med(c.name, ds, k) and med(ref, ds, k)]
    if like:
        out.append(f"Like for like: cutpilot p1 / {ref} (the rsync the job runs, its progress "
                   f"thrown away): {', '.join(like)}.")
    return out


def machine_info() -> Dict[str, str]:
    """What the results name about this machine and its tools."""
    mem = memory()
    fpsync_v = first_line(["fpsync", "-h"])
    return {
        "cores": str(os.cpu_count()),
        "memory": mem,
        "kernel": platform.release(),
        "rsync": " ".join(first_line(["rsync", "--version"]).split()),
        "openssh": first_line(["ssh", "-V"], "stderr"),
        "fpsync": fpsync_v.split(" - ")[0] if fpsync_v != "?" else "not installed",
        "build": first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
    }


def command_line() -> str:
    return " ".join(["bench/sync/run.py"] + [shlex.quote(a) for a in sys.argv[1:]])


def commands_text(lab: Lab, sets: Dict[str, Dataset], cons: List[Contender], raw_bytes: int) -> str:
    ds = sets["small"]
    lines = ["Commands (small dataset shown; PEER is the bench's host-to-host ssh config with "
             f"`Ciphers {lab.cipher}`):"]
    seen = set()
    for c in cons:
        if c.control:
            continue
        key = c.name.split(" ")[0] if c.command is None else c.name
        text = c.describe(lab, ds).replace(str(lab.peer_config), "PEER").replace(str(lab.dir), "DIR")
        if c.command is None:
            text = text.replace(f"--parallel {c.parallel}", "--parallel N")
            if key in seen:
                continue
            seen.add(key)
            lines.append(f"- `cutpilot pN`: `build/bin/{text}` (run by the harness)")
        else:
            lines.append(f"- `{c.name}` (on {c.host}): `{text}`")
    raw = raw_ssh_cmd(lab, raw_bytes).replace(str(lab.peer_config), "PEER")
    lines.append(f"- raw ssh (on target): `{raw}`")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small-files", type=int, default=100_000)
    parser.add_argument("--files-per-dir", type=int, default=1000)
    parser.add_argument("--large-gib", type=float, default=4,
                        help="large dataset: this many GiB in files of --large-file-gib")
    parser.add_argument("--large-file-gib", type=float, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parallel", default="1,2,4", help="cutpilot sync --parallel values")
    parser.add_argument("--fpsync-jobs", default="2,4", help="fpsync -n values")
    parser.add_argument("--cipher", default=CIPHER)
    parser.add_argument("--rtt", help="both hosts behind the lab's WAN relay with this round trip "
                                      "(40ms; 0ms: the relay without delay)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds, per run")
    parser.add_argument("--smoke", action="store_true",
                        help="500 small files, 2 x 4 MiB, once; exit 1 if any contender fails")
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--workdir", default=None, help="where the lab goes (default: a temp dir)")
    parser.add_argument("--fs", choices=("auto", "ext4", "none"), default="auto",
                        help="each host's data on its own loop-mounted journaled ext4 (auto: "
                             "when root and possible; none: in the work directory)")
    parser.add_argument("--write-results", action="store_true",
                        help=f"replace the '{SECTION}' section of bench/RESULTS.md")
    parser.add_argument("--results-file", default=str(RESULTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke and args.write_results:
        parser.error("--smoke measures nothing worth keeping: no --write-results with it")
    if args.smoke:
        args.small_files, args.files_per_dir = 500, 100
        args.large_gib, args.large_file_gib = 8 / 1024, 4 / 1024
        args.repeat, args.timeout = 1, 60
    args.parallel = [int(n) for n in str(args.parallel).split(",") if n]
    args.fpsync_jobs = [int(n) for n in str(args.fpsync_jobs).split(",") if n]
    if args.smoke:
        args.fpsync_jobs = args.fpsync_jobs[:1]  # fpsync costs ≥ 1.3 s a run (it sleeps 1 s)
    large_size = int(args.large_file_gib * GiB)
    large_count = max(1, round(args.large_gib / args.large_file_gib))
    require_tools({"rsync": "rsync", "ssh": "openssh-client", "ssh-keygen": "openssh-client",
                   "tar": "tar", "diff": "diffutils", "cp": "coreutils", "timeout": "coreutils",
                   **({"fpsync": "fpart"} if args.fpsync_jobs else {})})
    cons = contenders(args)

    # A plain kill (ctest's timeout, kill PID) must still stop the lab and free the mounts;
    # SIGINT may be ignored (started in the background by a script), SIGTERM is not.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    work = Path(tempfile.mkdtemp(prefix="cutpilot-sync-", dir=args.workdir))
    lab = Lab(work / "lab", args.cipher, args.rtt)
    section_name = f"## WAN: sync at {args.rtt} RTT" if args.rtt else SECTION
    started = time.monotonic()
    results: Dict[tuple, Cell] = {}
    filesystems: List[DataFs] = []
    try:
        lab.up()
        size = data_fs_size(args.small_files, large_count * large_size)
        filesystems = mount_data(lab, work, args, size)
        fs_text = (f"each host's data on its own journaled ext4 ({size / GiB:.1f} GiB loop image, "
                   f"direct I/O)" if filesystems else f"data in the work directory ({work})")
        log(f"file systems: {fs_text}")
        lab.setup_peers()
        cipher_line = lab.check_cipher()
        log(f"lab {lab.dir}: source and target up; target -> source: {cipher_line}")
        sets = {name: Dataset(name, lab.host_dir("source") / "data" / name,
                              lab.host_dir("target") / "data" / name) for name in ("small", "large")}
        t = time.monotonic()
        gen_small(sets["small"], args.small_files, args.files_per_dir, seed=1)
        gen_large(sets["large"], large_count, large_size, seed=2)
        for ds in sets.values():
            log(f"dataset {ds.name}: {ds.files} files, {ds.bytes / MiB:.1f} MiB, "
                f"{len(ds.changes)} regions change in the re-sync")
        log(f"generated in {time.monotonic() - t:.1f} s")
        raw = Cell()
        measure(lab, sets, cons, args, results, raw)
        info = machine_info()
        commands = commands_text(lab, sets, cons, sets["large"].bytes)
    finally:
        for fs in filesystems:
            fs.unmount()
        lab.down()
        for fs in filesystems:
            fs.unmount()  # after lab down's own unmount: the loop device is ours to free
        shutil.rmtree(work, ignore_errors=True)

    table = report(results, raw, cons, sets, args)
    small, large = sets["small"], sets["large"]
    header = (f"`{command_line()}` ({datetime.date.today().isoformat()}, build {info['build']}; "
              f"{info['cores']} cores, {info['memory']}, {info['rsync']}, {info['openssh']}, "
              f"{info['fpsync']}; cipher {args.cipher} on every ssh leg; {fs_text}"
              + (f"; both hosts behind the lab's WAN relay at {args.rtt} RTT, 4 MiB window"
                 if args.rtt else "") + ")")
    datasets = (f"Datasets: small = {small.files} files, {small.bytes / MiB:.0f} MiB "
                f"({args.files_per_dir} per directory, 1-7 KiB, plus an empty file, an empty "
                f"directory, a symlink, modes 0755/0600 and a name with blanks); large = "
                f"{large.files} × {large_size / MiB:.0f} MiB of random bytes. Re-sync: the target "
                f"holds the unchanged source; 1 % of the small files are rewritten (same size), "
                f"resp. 1 % of every large file's bytes in blocks of ≤ 1 MiB spread over the file; "
                f"the changed files' mtimes move by 10 s. Medians of {args.repeat} run(s) of the wall "
                f"time as an operator sees it: ssh into the host that runs the command plus the "
                f"command (cutpilot: its driver, which connects to both hosts itself). Each copy "
                f"was then checked equal to the source (entries, sizes, modes, mtimes, links, "
                f"`diff -r`).")
    print(f"{header}\n\n{table}\n\n{datasets}\n\n{commands}")
    log(f"total {time.monotonic() - started:.0f} s")
    controls = {c.name for c in cons if c.control}
    failed = sorted({f"{k[0]} ({k[1]} {k[2]})" for k, v in results.items()
                     if (v.status.startswith("FAILED") or v.status == "not built")
                     and k[0] not in controls})
    for k, v in results.items():
        if k[0] in controls:
            if v.status.startswith("FAILED") and "differs" in v.status:
                log(f"check ok: {k[0]} ({k[1]} {k[2]}) was caught")
            else:
                failed.append(f"the check missed a wrong copy: {k[0]} ({k[1]} {k[2]})")
    if raw.status:
        failed.append("raw ssh")
    section = (f"{section_name}: copying a service's files host to host\n\n{header}\n\n{table}\n\n"
               f"{datasets}\n\n{commands}\n")
    return conclude(args.write_results, args.results_file, section_name, section, failed,
                    any(v.times and not v.status for v in results.values()))


if __name__ == "__main__":
    sys.exit(main())
