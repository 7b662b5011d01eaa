#!/usr/bin/env python3
"""Fan-out bench: reach N lab hosts with cutpilot, parallel-ssh and ansible, side by side.

cutpilot hosts   connect, check the cached agent, start it, handshake, collect facts
                 (and again with the cockpit's own cache emptied before each run: `ssh -G`
                 for every host and the agent's hash computed afresh)
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
from benchlib import load_average, machine, require_tools  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "tests" / "lab" / "lab"


def run(argv, env=None):
    """Runs argv, returns (seconds, CompletedProcess)."""
    start = time.monotonic()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                          timeout=300, text=True)
    return time.monotonic() - start, proc


def timed(name, argv, repeat, env=None, before=None):
    """Median wall time of argv over repeat runs (before() runs untimed ahead of each);
    exits on any failing run."""
    times = []
    for _ in range(repeat):
        if before:
            before()
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

    load_before = load_average()
    work = Path(tempfile.mkdtemp(prefix="cutpilot-fanout-"))
    lab_dir = work / "lab"
    names = [f"f{i}" for i in range(max(sizes))]
    subprocess.run([str(LAB), "up", "--dir", str(lab_dir), *names], check=True,
                   stdout=subprocess.DEVNULL)
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_LOAD_CALLBACK_PLUGINS="0",
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(work / "ansible-tmp"))
    rows = []
    loads = []  # the 1-minute load average as each size starts
    try:
        for n in sizes:
            plan, hosts, inventory = write_inputs(lab_dir, names[:n], work)
            # The first run uploads the agent; the bench measures the cached case.
            run([str(cutpilot), "hosts", str(plan)])
            loads.append(load_average())
            row = {"n": n, "cutpilot": timed("cutpilot hosts", [str(cutpilot), "hosts", str(plan)],
                                             repeat)}
            # The same with the cockpit's cache emptied before each run: every host's `ssh -G`
            # and the agent's hash computed afresh (the hosts keep their verified agent).
            cold = work / "cold-cache"
            row["cold"] = timed("cutpilot hosts (cold cockpit cache)",
                                [str(cutpilot), "hosts", str(plan)], repeat,
                                dict(os.environ, XDG_CACHE_HOME=str(cold)),
                                lambda: shutil.rmtree(cold, ignore_errors=True))
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

    print("| hosts | cutpilot hosts | parallel-ssh | ansible ping | cutpilot / pssh | "
          "cutpilot / ansible | cold cockpit cache | cold / pssh |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        p, a, c, k = row.get("pssh"), row.get("ansible"), row["cutpilot"], row["cold"]
        fmt = lambda v: f"{v:.2f} s" if v else "n/a"
        ratio = lambda x, v: f"{x / v:.2f}x" if v else "n/a"
        print(f"| {row['n']} | {fmt(c)} | {fmt(p)} | {fmt(a)} | {ratio(c, p)} | {ratio(c, a)} | "
              f"{fmt(k)} | {ratio(k, p)} |")
    print(f"\nmedian of {repeat}; machine: {machine()}; load average (1 min) {load_before} before, "
          f"{', '.join(loads)} as each size started, {load_average()} after; command: "
          f"bench/fanout/run.py "
          f"{'--smoke' if args.smoke else f'--sizes {args.sizes} --repeat {args.repeat}'}")


if __name__ == "__main__":
    main()
