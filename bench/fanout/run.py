#!/usr/bin/env python3
"""Fan-out bench: reach N lab hosts with cutpilot, parallel-ssh and ansible, side by side.

cutpilot hosts   connect, check the cached agent, start it, handshake, collect facts
parallel-ssh     ssh to every host and run `true`
ansible          `ansible all -m ping` (ssh + python module on every host)

Usage: bench/fanout/run.py [--sizes 10,50,100] [--repeat 5] [--smoke] [--build build]
Prints a markdown table of medians and ratios (cutpilot / other); --smoke runs a tiny
configuration once to prove the bench works (CI).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import require_tools  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "tests" / "lab" / "lab"


def run(argv, env=None):
    """Runs argv, returns (seconds, CompletedProcess)."""
    start = time.monotonic()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                          timeout=300, text=True)
    return time.monotonic() - start, proc


def timed(name, argv, repeat, env=None):
    """Median wall time of argv over repeat runs; exits on any failing run."""
    times = []
    for _ in range(repeat):
        seconds, proc = run(argv, env)
        if proc.returncode != 0:
            sys.exit(f"{name} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n"
                     f"{proc.stderr[-2000:]}")
        times.append(seconds)
    return statistics.median(times)


def write_inputs(lab_dir, names, work):
    """Plan, pssh host list and ansible inventory for these hosts."""
    plan = work / f"fanout-{len(names)}.toml"
    lines = ['[plan]', f'name = "fanout {len(names)}"',
             f'ssh_config = "{lab_dir}/ssh_config"', '']
    for name in names:
        lines += [f'[hosts.{name}]', '']
    plan.write_text("\n".join(lines))
    hosts = work / f"hosts-{len(names)}"
    hosts.write_text("\n".join(names) + "\n")
    inventory = work / f"inventory-{len(names)}.ini"
    inventory.write_text("[all]\n" + "\n".join(names) + "\n\n[all:vars]\n"
                         f"ansible_ssh_common_args='-F {lab_dir}/ssh_config'\n"
                         "ansible_python_interpreter=/usr/bin/python3\n")
    return plan, hosts, inventory


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50,100")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--build", default=str(ROOT / "build"))
    args = parser.parse_args()
    sizes = [3] if args.smoke else [int(n) for n in args.sizes.split(",")]
    repeat = 1 if args.smoke else args.repeat
    cutpilot = Path(args.build) / "bin" / "cutpilot"
    # Every side of the side-by-side must be there: a missing contender fails the bench.
    require_tools({"parallel-ssh": "pssh", "ansible": "ansible", "ssh": "openssh-client"})
    pssh = shutil.which("parallel-ssh")
    ansible = shutil.which("ansible")
    if not cutpilot.exists():
        sys.exit(f"{cutpilot} is missing: build first")

    work = Path(tempfile.mkdtemp(prefix="cutpilot-fanout-"))
    lab_dir = work / "lab"
    names = [f"f{i}" for i in range(max(sizes))]
    subprocess.run([str(LAB), "up", "--dir", str(lab_dir), *names], check=True,
                   stdout=subprocess.DEVNULL)
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_LOAD_CALLBACK_PLUGINS="0",
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(work / "ansible-tmp"))
    rows = []
    try:
        for n in sizes:
            plan, hosts, inventory = write_inputs(lab_dir, names[:n], work)
            # The first run uploads the agent; the bench measures the cached case.
            run([str(cutpilot), "hosts", str(plan)])
            row = {"n": n, "cutpilot": timed("cutpilot hosts", [str(cutpilot), "hosts", str(plan)],
                                             repeat)}
            row["pssh"] = timed("parallel-ssh", [pssh, "-p", str(n), "-h", str(hosts), "-t", "60",
                                                 "-x", f"-F {lab_dir}/ssh_config", "true"], repeat)
            row["ansible"] = timed("ansible", [ansible, "all", "-i", str(inventory), "-m", "ping",
                                               "-f", str(n), "-o"], repeat, env)
            rows.append(row)
            print(f"N={n}: " + ", ".join(f"{k} {v:.3f}s" for k, v in row.items() if k != "n"),
                  file=sys.stderr)
    finally:
        subprocess.run([str(LAB), "down", "--dir", str(lab_dir), "--rm"],
                       stdout=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)

    print(f"| hosts | cutpilot hosts | parallel-ssh | ansible ping | cutpilot / pssh | cutpilot / ansible |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        p, a, c = row.get("pssh"), row.get("ansible"), row["cutpilot"]
        fmt = lambda v: f"{v:.2f} s" if v else "n/a"
        ratio = lambda v: f"{c / v:.2f}x" if v else "n/a"
        print(f"| {row['n']} | {fmt(c)} | {fmt(p)} | {fmt(a)} | {ratio(p)} | {ratio(a)} |")
    print(f"\nmedian of {repeat}; {os.cpu_count()} cores; command: bench/fanout/run.py "
          f"{'--smoke' if args.smoke else f'--sizes {args.sizes} --repeat {args.repeat}'}")


if __name__ == "__main__":
    main()
