#!/usr/bin/env python3
"""Where the CPU of a fan-out goes: the hosts' side against the command's, per run.

Starts a lab of N hosts, puts every lab sshd (and so all it starts: the login, the agent) in one
cgroup v1 cpuacct group and each command in another, and runs `cutpilot hosts`, parallel-ssh
and N sequential `ssh HOST true` in turn, RUNS times each. Prints, per command, the CPU of the
command, the CPU of the hosts' side and the wall time (min-max). Needs root and cgroup v1's
cpuacct at /sys/fs/cgroup/cpuacct (this project's machine has it).

Usage: bench/fanout/cpu_split.py [--hosts 10] [--runs 5] [--build build]
"""
import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "tests" / "lab" / "lab"
CGROUPS = Path("/sys/fs/cgroup/cpuacct")


def usage_ms(group: Path) -> float:
    """CPU used by the group so far, in ms."""
    return int((group / "cpuacct.usage").read_text()) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--build", default=str(ROOT / "build"))
    args = parser.parse_args()
    if not (CGROUPS / "cpuacct.usage").exists():
        sys.exit(f"no cgroup v1 cpuacct at {CGROUPS}")
    work = Path(tempfile.mkdtemp(prefix="cutpilot-cpu-split-"))
    lab = work / "lab"
    names = [f"f{i}" for i in range(args.hosts)]
    hosts_group, command_group = CGROUPS / "cutpilot-hosts", CGROUPS / "cutpilot-command"
    subprocess.run([str(LAB), "up", "--dir", str(lab), *names], check=True,
                   stdout=subprocess.DEVNULL)
    try:
        for group in (hosts_group, command_group):
            group.mkdir(exist_ok=True)
        sshds = subprocess.run(["pgrep", "-f", f"sshd.*{lab}"], capture_output=True,
                               text=True).stdout.split()
        for pid in sshds:
            (hosts_group / "cgroup.procs").write_text(pid)
        plan = work / "plan.toml"
        plan.write_text(f"[plan]\nname = 'cpu split'\nssh_config = '{lab}/ssh_config'\n\n" +
                        "".join(f"[hosts.{n}]\n\n" for n in names))
        host_list = work / "hosts"
        host_list.write_text("\n".join(names) + "\n")
        commands = {
            "cutpilot hosts": [str(Path(args.build) / "bin" / "cutpilot"), "hosts", str(plan)],
            "parallel-ssh": [shutil.which("parallel-ssh") or "parallel-ssh", "-p", str(args.hosts),
                             "-h", str(host_list), "-t", "60", "-x", f"-F {lab}/ssh_config",
                             "true"],
            f"{args.hosts} x ssh HOST true": ["sh", "-c", " ; ".join(
                f"ssh -F {lab}/ssh_config {n} true" for n in names)],
        }
        # The first run uploads the agent; the split is of the cached case.
        subprocess.run(commands["cutpilot hosts"], check=True, capture_output=True)
        results = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                hosts_before, command_before = usage_ms(hosts_group), usage_ms(command_group)
                start = time.monotonic()
                proc = subprocess.run(["sh", "-c", f'echo $$ > {command_group}/cgroup.procs; '
                                       'exec "$@"', "sh", *argv],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                wall = time.monotonic() - start
                if proc.returncode:
                    sys.exit(f"{name} failed (exit {proc.returncode}): {proc.stderr[-1000:]}")
                # The sshds' last exits after the command returned: wait until the group is quiet.
                settled = usage_ms(hosts_group)
                while True:
                    time.sleep(0.1)
                    now = usage_ms(hosts_group)
                    if now - settled < 0.5:
                        break
                    settled = now
                results[name].append((usage_ms(command_group) - command_before,
                                      settled - hosts_before, wall))
        print(f"| per run, {args.hosts} hosts | command CPU | hosts' CPU | wall |")
        print("|---|---:|---:|---:|")
        for name, runs in results.items():
            column = lambda k: [r[k] for r in runs]  # noqa: E731
            print(f"| {name} | {min(column(0)):.0f}–{max(column(0)):.0f} ms | "
                  f"{min(column(1)):.0f}–{max(column(1)):.0f} ms | "
                  f"{min(column(2)):.2f}–{max(column(2)):.2f} s |")
        print(f"\nmedian total CPU: " + ", ".join(
            f"{name} {statistics.median(r[0] + r[1] for r in runs):.0f} ms"
            for name, runs in results.items()))
    finally:
        subprocess.run([str(LAB), "down", "--dir", str(lab)], stdout=subprocess.DEVNULL)
        for group in (hosts_group, command_group):
            try:
                group.rmdir()
            except OSError:
                pass
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
