#!/usr/bin/env python3
"""Image bench: one disk image copied host to host with cutpilot's image job and with the ssh
pipes an operator would type, plain and compressed, side by side.

Two lab hosts, `source` and `target` (tests/lab/lab). The source holds one image of SIZE
MiB, as a used disk looks: in 4 MiB blocks, a quarter random (compressed data, media), a
quarter log-like text, half zeros (left as holes: never written).

Contenders, each writing DST on the target (removed after every run, untimed):
  cutpilot         build/bin/image_run --lab DIR --from source:SRC --to target:DST
                   [--compress zstd|gzip]   (run by the harness: it connects both hosts; the
                   target's agent reads SRC over the migration ssh, writes DST sparse and
                   compares SHA-256 of what was read, received and written)
  ssh cat          ssh -F PEER source 'cat SRC' > DST                           (on target)
  ssh zstd|gzip    ssh -F PEER source 'zstd -1 -c SRC' | zstd -d -c > DST        (on target)
The shell pipes check nothing; cutpilot's time includes its three hashes and the re-read.
After every run the harness compares DST's SHA-256 with SRC's: a wrong copy is FAILED.

With --rtt 40ms both hosts sit behind the lab's WAN relay (`lab up --rtt`: half the RTT each
way, a 4 MiB window per connection and direction); compare with a --rtt 0ms run.

Usage: bench/image/run.py [--size-mib 1024] [--repeat 3] [--rtt 40ms] [--smoke] [--build build]
                          [--write-results]
--write-results replaces the "## Image copy" section of bench/RESULTS.md (with --rtt: "## WAN:
image copy at RTT"). --smoke copies 16 MiB once, with a truncated copy as a negative control.
"""
import argparse
import datetime
import hashlib
import os
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import (CIPHER, LAB, RESULTS, Failed, conclude, first_line, log, memory, q,  # noqa: E402
                      require_tools, run_local, run_on, setup_peers)

SECTION = "## Image copy"
MiB = 1 << 20
BLOCK = 4 * MiB


def make_image(path: Path, size: int, seed: int) -> str:
    """Write the image (holes where it is zero); return its SHA-256."""
    rng = random.Random(seed)
    words = [b"GET", b"POST", b"/api/v1/items/", b"200", b"404", b"ms", b"user=", b"host-"]
    lines = []
    while sum(map(len, lines)) < BLOCK:
        lines.append(b"2026-12-03T02:%02d:%02d " % (rng.randrange(60), rng.randrange(60))
                     + b" ".join(rng.choice(words) + str(rng.randrange(10 ** 6)).encode()
                                 for _ in range(6)) + b"\n")
    text = b"".join(lines)[:BLOCK]
    digits = bytes(range(48, 58))
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for n in range(size // BLOCK):
            kind = n % 4
            if kind == 0:
                data = rng.randbytes(BLOCK)
            elif kind == 1:  # new text each time: the digits shuffled, never a verbatim repeat
                shuffled = bytes(rng.sample(digits, 10))
                data = text.translate(bytes.maketrans(digits, shuffled))
            else:
                data = bytes(BLOCK)
                f.seek(BLOCK, os.SEEK_CUR)
            if kind < 2:
                f.write(data)
            h.update(data)
        f.truncate(size // BLOCK * BLOCK)
    return h.hexdigest()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(4 * MiB)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)


class Contender:
    def __init__(self, name: str, shell: Optional[str] = None, compress: str = "none",
                 control: bool = False):
        self.name, self.shell, self.compress, self.control = name, shell, compress, control

    def command(self, peer: Path, src: Path, dst: Path) -> str:
        return self.shell.format(peer=q(peer), src=q(src), dst=q(dst))


def contenders(smoke: bool) -> List[Contender]:
    pipe = "ssh -F {peer} source {remote} | %s -d -c > {dst}"
    out = [Contender("cutpilot"), Contender("cutpilot zstd", compress="zstd"),
           Contender("cutpilot gzip", compress="gzip"),
           Contender("ssh cat", "ssh -F {peer} source 'cat {src}' > {dst}"),
           Contender("ssh zstd", (pipe % "zstd").replace("{remote}", "'zstd -1 -c {src}'")),
           Contender("ssh gzip", (pipe % "gzip").replace("{remote}", "'gzip -1 -c {src}'"))]
    if smoke:
        out.append(Contender("control: truncated", "ssh -F {peer} source 'head -c 1000 {src}' > {dst}",
                             control=True))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rtt", help="both hosts behind the lab's WAN relay (40ms; 0ms: no delay)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds, per run")
    parser.add_argument("--smoke", action="store_true", help="16 MiB, once, with a negative control")
    parser.add_argument("--build", default=str(Path(__file__).resolve().parents[2] / "build"))
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--results-file", default=str(RESULTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke and args.write_results:
        parser.error("--smoke measures nothing worth keeping: no --write-results with it")
    if args.smoke:
        args.size_mib, args.repeat, args.timeout = 16, 1, 120
    require_tools({"ssh": "openssh-client", "zstd": "zstd", "gzip": "gzip", "timeout": "coreutils"})
    binary = Path(args.build) / "bin" / "image_run"
    if not binary.exists():
        log(f"FAILED: {binary} is not built (cmake --build build --target image_run)")
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    section = f"## WAN: image copy at {args.rtt} RTT" if args.rtt else SECTION
    work = Path(tempfile.mkdtemp(prefix="cutpilot-image-", dir=args.workdir))
    lab_dir = work / "lab"
    cons = contenders(args.smoke)
    times: Dict[str, List[float]] = {c.name: [] for c in cons}
    status: Dict[str, str] = {c.name: "" for c in cons}
    started = time.monotonic()
    try:
        wan = ["--rtt", args.rtt] if args.rtt else []
        run_local([LAB, "up", "--dir", lab_dir, *wan, "source", "target"], timeout=60)
        bench = lab_dir / "bench"
        scripts, logs = bench / "scripts", bench / "logs"
        for d in (scripts, logs):
            d.mkdir(parents=True)
        peer = setup_peers(lab_dir, bench, CIPHER, "cutpilot-image-bench")
        src = lab_dir / "hosts" / "source" / "disk.img"
        dst = lab_dir / "hosts" / "target" / "disk.img"
        size = args.size_mib // 4 * BLOCK
        want = make_image(src, size, seed=1)
        log(f"image {src}: {size / MiB:.0f} MiB, {os.stat(src).st_blocks * 512 / MiB:.0f} MiB allocated")
        # Untimed: the first run installs the agent on both hosts, which no later run pays.
        run_local([binary, "--lab", lab_dir, "--from", f"source:{src}", "--to", f"target:{dst}"],
                  timeout=args.timeout)
        dst.unlink()
        for r in range(args.repeat):
            order = cons[r % len(cons):] + cons[:r % len(cons)]  # no contender always first
            for c in order:
                if status[c.name]:
                    continue
                tag = f"{c.name.replace(' ', '-').replace(':', '')}-{r}"
                try:
                    if c.shell is None:
                        t = time.monotonic()
                        p = subprocess.run([str(binary), "--lab", str(lab_dir), "--from", f"source:{src}",
                                            "--to", f"target:{dst}", "--compress", c.compress],
                                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                           timeout=args.timeout)
                        seconds = time.monotonic() - t
                        (logs / f"{tag}.err").write_text(p.stderr)
                        if p.returncode != 0:
                            raise Failed(f"image_run exit {p.returncode}: {p.stderr[-800:]}")
                    else:
                        res = run_on(lab_dir / "ssh_config", scripts, logs, "target",
                                     c.command(peer, src, dst), tag, args.timeout, "bench/image/run.py")
                        if res.rc != 0:
                            raise Failed(f"exit {res.rc}: {res.tail()}")
                        seconds = res.seconds
                    if sha256(dst) != want:
                        raise Failed("content differs from the source")
                    times[c.name].append(seconds)
                    log(f"[{r + 1}/{args.repeat}] {c.name:<20} {seconds:6.2f} s")
                except (Failed, subprocess.TimeoutExpired) as e:
                    status[c.name] = f"FAILED: {e}"
                    log(f"[{r + 1}/{args.repeat}] {c.name:<20} {status[c.name][:300]}")
                finally:
                    dst.unlink(missing_ok=True)
    finally:
        run_local([LAB, "down", "--dir", lab_dir, "--rm"], timeout=120, check=False)
        shutil.rmtree(work, ignore_errors=True)

    med = {n: statistics.median(t) for n, t in times.items() if t and not status[n]}
    judged = [c for c in cons if not c.control]
    lines = ["| contender | median | MiB/s | / ssh cat | / ssh zstd |", "|---|---:|---:|---:|---:|"]
    for c in judged:
        m = med.get(c.name)
        cells = ([f"{m:.2f} s", f"{size / MiB / m:.0f}"] +
                 [f"{m / med[o]:.2f}x" if o in med else "n/a" for o in ("ssh cat", "ssh zstd")]
                 if m else [status[c.name][:120] or "n/a", "", "", ""])
        lines.append(f"| {c.name} | {' | '.join(cells)} |")
    argv = " ".join(["bench/image/run.py"] + [shlex.quote(a) for a in sys.argv[1:]
                                               if not a.startswith("--results-file")])
    build = first_line(["git", "-C", str(Path(__file__).resolve().parents[2]), "describe", "--always",
                        "--dirty", "--abbrev=7"])
    header = (f"`{argv}` ({datetime.date.today().isoformat()}, build {build}; {os.cpu_count()} cores, "
              f"{memory()}, {first_line(['ssh', '-V'], 'stderr')}; cipher {CIPHER}"
              + (f"; both hosts behind the lab's WAN relay at {args.rtt} RTT, 4 MiB window" if args.rtt else "")
              + ")")
    notes = (f"Image: {size / MiB:.0f} MiB in 4 MiB blocks, a quarter random, a quarter log-like text "
             f"(digits shuffled per block), half zeros (holes in the source). Medians of {args.repeat} "
             f"run(s), wall time as an operator sees it (the shell pipes: ssh into the target plus the "
             f"pipe; cutpilot: its driver, which connects both hosts, starts the agents and sets up and "
             f"revokes the migration key; the agents were installed by an untimed first copy). Every copy's SHA-256 was then compared with the source's. "
             f"cutpilot also hashes what it read, received and wrote inside its time; the pipes check "
             f"nothing. Compression is level 1 on both sides (the agent's `zstd -1`, `gzip -1`).")
    text = f"{header}\n\n" + "\n".join(lines) + f"\n\n{notes}\n"
    print(text)
    log(f"total {time.monotonic() - started:.0f} s")
    failed = [n for n in status if status[n] and not n.startswith("control:")]
    for c in cons:
        if c.control and not status[c.name].startswith("FAILED: content differs"):
            failed.append(f"the check missed a wrong copy: {c.name}")
        elif c.control:
            log(f"check ok: {c.name} was caught")
    return conclude(args.write_results, args.results_file, section,
                    f"{section}: one disk image host to host\n\n{text}", failed, bool(med))


if __name__ == "__main__":
    sys.exit(main())
