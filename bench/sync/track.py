#!/usr/bin/env python3
"""Tracked final sync bench (issue 18): what the final sync costs when a watch recorded the
tracking window's changes, against plain rsync of the whole tree, as the tree grows.

Two lab hosts, `source` and `target`, both behind the lab's WAN relay (`lab up --rtt`), each
with its data on its own loop-mounted journaled ext4 (inline data: the tiny files take no
blocks). A tree of N files (48-64 bytes, 1000 per directory) on the source, the same tree on
the target. At each RTT (0 ms: the relay without delay, then 40 ms), two windows:
  tracked  build/bin/track_run (bench/sync/track_run.cpp) arms a watch of the source (the hot
           phase's cost, reported apart), 0.1 % of the files are rewritten (new bytes, new
           size, mtime moved), then the final sync as a plan's cold sync runs it: the seal on
           the source and the target's agent pulling the sealed list with --files-from.
           Timed: seal + sync.
  rsync    another 0.1 % of the files rewritten the same way, then on the target:
           rsync -a --delete -e "ssh -F PEER" source:SRC/ DST/      (the whole tree's walk)
After each, the target must equal the source: `rsync -a -n -i --delete` (local, both trees on
this machine) lists nothing, and every changed file's bytes are compared.

Usage: bench/sync/track.py [--sizes 100000,500000,1000000] [--rtts 0ms,40ms] [--build build]
                           [--smoke] [--write-results]
Prints a markdown table; --write-results replaces the "## Tracked final sync" section of
bench/RESULTS.md. --smoke: 2,000 files at 0 ms and 40 ms (CI proves the bench runs).
"""
import argparse
import datetime
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (CIPHER, LAB, ROOT, Failed, conclude, log, machine, q, run_local,  # noqa: E402
                      run_on, setup_peers)
from data import DataFs  # noqa: E402

SECTION = "## Tracked final sync"
PER_DIR = 1000
CHANGED = 0.001


class Lab:
    def __init__(self, directory: Path):
        self.dir = directory
        self.bench = directory / "bench"
        self.scripts, self.logs = self.bench / "scripts", self.bench / "logs"
        self.peer_config = self.bench / "peer_ssh_config"

    def host_dir(self, name):
        return self.dir / "hosts" / name

    def up(self):
        run_local([LAB, "up", "--dir", self.dir, "--rtt", "0ms", "source", "target"], timeout=60)
        for d in (self.bench, self.scripts, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        setup_peers(self.dir, self.bench, CIPHER, "cutpilot-track-bench")

    def rtt(self, value):
        for host in ("source", "target"):
            run_local([LAB, "rtt", "--dir", self.dir, host, value], timeout=30)

    def down(self):
        run_local([LAB, "down", "--dir", self.dir, "--rm"], timeout=120, check=False)

    def on(self, host, command, name, timeout):
        return run_on(self.dir / "ssh_config", self.scripts, self.logs, host, command, name,
                      timeout, "bench/sync/track.py")


def gen_tree(root: Path, count: int, seed: int) -> list:
    """count files of 48-64 random bytes in directories of PER_DIR; their paths."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    paths, width = [], len(str(max(1, count // PER_DIR)))
    for i in range(count):
        d = root / f"d{i // PER_DIR:0{width}d}"
        if i % PER_DIR == 0:
            d.mkdir()
        p = d / f"f{i % PER_DIR:04d}"
        p.write_bytes(rng.randbytes(rng.randint(48, 64)))
        paths.append(p)
    return paths


def change_script(lab: Lab, paths: list, name: str, seed: int) -> Path:
    """A script that rewrites paths on the source (new bytes, new size, mtime + 10 s)."""
    listing = lab.scripts / f"{name}.list"
    listing.write_text("\n".join(str(p) for p in paths) + "\n")
    script = lab.scripts / f"{name}.py"
    script.write_text(
        "import os, random, sys\n"
        f"rng = random.Random({seed})\n"
        f"for line in open({str(listing)!r}):\n"
        "    p = line.rstrip('\\n')\n"
        "    st = os.stat(p)\n"
        "    with open(p, 'wb') as f:\n"
        "        f.write(rng.randbytes(rng.randint(40, 70)))\n"
        "    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10 * 10**9))\n")
    return script


def check_equal(src: Path, dst: Path, changed: list) -> None:
    """Raise Failed unless dst equals src: nothing for rsync to do, and the changed bytes."""
    res = run_local(["rsync", "-a", "-n", "-i", "--delete", f"{src}/", f"{dst}/"], timeout=1800,
                    check=False)
    lines = [l for l in res.stdout.splitlines() if l.strip()]
    if res.returncode != 0 or lines:
        raise Failed(f"target differs from source: {(lines or [res.stderr])[:5]}")
    for p in changed:
        if p.read_bytes() != (dst / p.relative_to(src)).read_bytes():
            raise Failed(f"content differs: {p}")


def tracked(lab, build, src, dst, script) -> dict:
    argv = [str(Path(build) / "bin" / "track_run"), "--lab", str(lab.dir), "--from",
            f"source:{src}/", "--to", f"target:{dst}/", "--change", f"python3 {q(script)}",
            "--delete"]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=3600, env=dict(os.environ, CUTPILOT_BENCH_CIPHER=CIPHER))
    if proc.returncode != 0:
        raise Failed(f"track_run exit {proc.returncode}: {(proc.stdout + proc.stderr)[-1500:]}")
    out = dict(re.findall(r"^(\w+_seconds)=([0-9.]+)$", proc.stdout, re.M))
    result = re.search(r"^result=(.*)$", proc.stdout, re.M).group(1)
    paths = int(re.search(r'"paths":(\d+)', result).group(1))
    return {k: float(v) for k, v in out.items()} | {"paths": paths}


def plain_rsync(lab, src, dst, name) -> float:
    """rsync of the tree on the target, timed without the harness's login to the target."""
    cmd = (f"rsync -a --delete -e {q(f'ssh -F {lab.peer_config}')} source:{q(f'{src}/')} "
           f"{q(f'{dst}/')}")
    r = lab.on("target", cmd, name, timeout=3600)
    if r.rc != 0:
        raise Failed(f"rsync exit {r.rc}: {r.tail()}")
    return r.inner  # the command alone: the tracked sync's time has no login in it either


def floor_rsync(lab, src, dst, name) -> float:
    """The same plain rsync of an empty directory: what one ssh connection and rsync's start
    cost, the floor under any sync that moves anything."""
    empty_src, empty_dst = src.parent / "empty", dst.parent / "empty"
    empty_src.mkdir(exist_ok=True)
    empty_dst.mkdir(exist_ok=True)
    return plain_rsync(lab, empty_src, empty_dst, name)


def measure_size(work: Path, build: str, count: int, rtts: list) -> list:
    lab = Lab(work / f"lab-{count}")
    mounts = []
    rows = []
    try:
        lab.up()
        for host in ("source", "target"):
            fs = DataFs(work / f"{host}-{count}.img", lab.host_dir(host) / "data",
                        int(count * 600 + 512 * 2**20))
            fs.mkfs_options = ["-O", "inline_data", "-N", str(count + count // PER_DIR + 10000)]
            mounts.append(fs)
            fs.mount()
        src, dst = lab.host_dir("source") / "data" / "tree", lab.host_dir("target") / "data" / "tree"
        t = time.monotonic()
        paths = gen_tree(src, count, seed=count)
        dst.mkdir()
        run_local(["cp", "-a", f"{src}/.", f"{dst}/"], timeout=3600)
        log(f"{count} files generated and copied in {time.monotonic() - t:.0f} s")
        rng = random.Random(7)
        per_window = max(1, int(count * CHANGED))
        pool = rng.sample(paths, per_window * 2 * len(rtts))
        for i, rtt in enumerate(rtts):
            lab.rtt(rtt)
            a = pool[(2 * i) * per_window:(2 * i + 1) * per_window]
            b = pool[(2 * i + 1) * per_window:(2 * i + 2) * per_window]
            got = tracked(lab, build, src, dst, change_script(lab, a, f"a-{count}-{rtt}", 1))
            check_equal(src, dst, a)
            subprocess.run(["python3", str(change_script(lab, b, f"b-{count}-{rtt}", 2))],
                           check=True, timeout=600)
            plain = plain_rsync(lab, src, dst, f"rsync-{count}-{rtt}")
            check_equal(src, dst, b)
            floor = floor_rsync(lab, src, dst, f"floor-{count}-{rtt}")
            rows.append({"files": count, "rtt": rtt, "changed": per_window, **got, "rsync": plain,
                         "floor": floor})
            log(f"{count} files at {rtt}: tracked {got['job_seconds']:.2f} s "
                f"({got['paths']} paths; seal {got['seal_seconds']:.2f} s; arm "
                f"{got['arm_seconds']:.2f} s), rsync {plain:.2f} s, rsync of nothing {floor:.2f} s")
    finally:
        lab.down()
        for fs in mounts:
            fs.unmount()
    return rows


def table(rows) -> str:
    out = ["| files | RTT | changed | tracked final sync (seal + sync) | paths listed | plain rsync "
           "of the tree | tracked / rsync | rsync of an empty directory | watch armed in (hot "
           "phase) |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['files']:,} | {r['rtt']} | {r['changed']:,} | {r['job_seconds']:.2f} s "
                   f"(seal {r['seal_seconds']:.2f} s) | {r['paths']:,} | {r['rsync']:.2f} s | "
                   f"**{r['job_seconds'] / r['rsync']:.3f}×** | {r['floor']:.2f} s | "
                   f"{r['arm_seconds']:.2f} s |")
    return "\n".join(out)


def targets(rows) -> str:
    """Issue 18's targets, each met or missed, with the measured reason."""
    out = ["Targets (issue 18): the tracked final sync ≤ 0.1× plain rsync of the whole tree, and "
           "roughly flat as the tree grows."]
    for r in rows:
        ratio = r["job_seconds"] / r["rsync"]
        verdict = "met" if ratio <= 0.1 else (
            f"missed: the tracked sync ({r['job_seconds']:.2f} s) is one rsync over one new ssh "
            f"connection, and that alone costs {r['floor']:.2f} s (an empty directory); 0.1× "
            f"would be {0.1 * r['rsync']:.2f} s")
        out.append(f"- {r['files']:,} files at {r['rtt']}: {ratio:.3f}×, {verdict}.")
    for rtt in sorted({r["rtt"] for r in rows}):
        times = [r["job_seconds"] for r in rows if r["rtt"] == rtt]
        out.append(f"- Flat at {rtt}: {min(times):.2f}-{max(times):.2f} s over "
                   f"{rows[0]['files']:,}-{rows[-1]['files']:,} files "
                   f"({'met' if max(times) <= 1.5 * min(times) else 'missed'}: within 1.5×).")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,500000,1000000")
    parser.add_argument("--rtts", default="0ms,40ms")
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    args = parser.parse_args()
    sizes = [2000] if args.smoke else [int(n) for n in args.sizes.split(",")]
    rtts = args.rtts.split(",")
    if os.geteuid() != 0:
        log("needs root (loop-mounted file systems)")
        return 1
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    work = Path(tempfile.mkdtemp(prefix="cutpilot-track-"))
    rows, failed = [], []
    try:
        for count in sizes:
            try:
                rows += measure_size(work, args.build, count, rtts)
            except Failed as e:
                log(f"FAILED at {count} files: {e}")
                failed.append(f"{count} files")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = (f"{SECTION}\n\n`bench/sync/track.py {' '.join(sys.argv[1:])}` "
            f"({datetime.date.today().isoformat()}; {machine()}; cipher {CIPHER}; both hosts "
            f"behind the lab's relay, 4 MiB window; each host's data on its own journaled ext4; the "
            f"watch's backend: auto, which is fanotify where the agent runs as root, as here)\n\n"
            + table(rows) + "\n\n" +
            f"0.1 % of the files rewritten in each window (48-64 byte files, {PER_DIR} per "
            "directory; new bytes, new size, mtime + 10 s); tracked: the watch armed first, the "
            "changes, then the seal on the source and the target's agent pulling the sealed "
            "list (--files-from on the source, --delete-missing-args); rsync: other files "
            "changed the same way, then `rsync -a --delete -e 'ssh -F PEER' source:SRC/ DST/` "
            "on the target, timed on the target (the command alone: like the tracked sync's "
            "time, it leaves out logging in to the target; the tracked sync's time runs from the "
            "seal's request to the sync job's end as the cockpit sees them, two crossings of the "
            "relay included). Each copy checked equal to the source afterwards.\n\n" + targets(rows))
    print(text)
    return conclude(args.write_results and not args.smoke, args.results, SECTION, text, failed,
                    bool(rows))


if __name__ == "__main__":
    sys.exit(main())
