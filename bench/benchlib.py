"""What the bench harnesses share (bench/sync/run.py, bench/db/run.py, bench/fanout/run.py): running helper
commands, running a contender's command on a lab host through its sshd with both clocks,
host-to-host ssh for the shell contenders, and replacing one section of RESULTS.md."""
import os
import re
import shlex
import shutil
import argparse
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "tests" / "lab" / "lab"
RESULTS = ROOT / "bench" / "RESULTS.md"
# The cipher of every host-to-host ssh leg: what cutpilot's migration ssh picks first
# (agents/peer_ssh.h, kDefaultCiphers) where the CPU has AES-NI.
CIPHER = "aes128-gcm@openssh.com"


def log(msg: str) -> None:
    """Progress goes to stderr; the tables go to stdout."""
    print(msg, file=sys.stderr, flush=True)


class Failed(Exception):
    """A contender's run failed or produced a wrong copy."""


def q(value) -> str:
    return shlex.quote(str(value))


def run_local(argv, timeout, check=True, **kw) -> subprocess.CompletedProcess:
    """Run a helper command (not a timed contender), bounded; raise with its output on failure."""
    proc = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed (exit {proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc


@dataclass
class Remote:
    seconds: float   # ssh into the host + the command
    inner: float     # the command alone
    rc: int
    out: Path
    err: Path

    def tail(self) -> str:
        text = ""
        for p in (self.out, self.err):
            if p.exists():
                text += p.read_text(errors="replace")[-1500:]
        return text.strip()


def run_on(ssh_config: Path, scripts: Path, logs: Path, host: str, command: str, name: str,
           timeout: float, harness: str) -> Remote:
    """Run a bash command on a lab host through its sshd, in its environment. seconds is the
    wall time as an operator sees it (ssh into the host + the command), like cutpilot's
    drivers, which connect to their hosts on their own clock; inner is the command alone."""
    cmd_file = scripts / f"{name}.cmd.sh"
    cmd_file.write_text(f"# {name}: run on lab host {host} by {harness}\n"
                        f"cd \"$HOME\" || exit 1\n{command}\n")
    out, err = logs / f"{name}.out", logs / f"{name}.err"
    wrapper = scripts / f"{name}.sh"
    wrapper.write_text(
        f"t0=$(date +%s%N)\n"
        f"timeout -k 10 {int(timeout)} bash -o pipefail {q(cmd_file)} >{q(out)} 2>{q(err)}\n"
        f"rc=$?\n"
        f"t1=$(date +%s%N)\n"
        f"echo \"bench: elapsed_ns=$((t1 - t0)) rc=$rc\"\n")
    start = time.monotonic()
    proc = subprocess.run(["ssh", "-F", str(ssh_config), host, "bash", str(wrapper)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout + 60)
    seconds = time.monotonic() - start
    m = re.search(r"bench: elapsed_ns=(\d+) rc=(\d+)", proc.stdout)
    if not m:
        raise Failed(f"ssh {host} failed (exit {proc.returncode}): {proc.stderr[-1000:]}")
    return Remote(seconds, int(m.group(1)) / 1e9, int(m.group(2)), out, err)


def authorized_keys(host_dir: Path) -> Path:
    """The AuthorizedKeysFile a lab host's sshd reads (from its sshd_config)."""
    conf = (host_dir / "sshd_config").read_text()
    m = re.search(r"^AuthorizedKeysFile\s+(.+)$", conf, re.M)
    if not m:
        raise RuntimeError(f"no AuthorizedKeysFile in {host_dir}/sshd_config")
    return Path(shlex.split(m.group(1))[0])


def setup_peers(lab_dir: Path, bench_dir: Path, cipher: str, comment: str) -> Path:
    """A key for the bench, authorised on both lab hosts, and BENCH/peer_ssh_config that
    reaches either host from the other with the given cipher; returns that config's path."""
    key = bench_dir / "id_ed25519"
    run_local(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key],
              timeout=30)
    pub = Path(str(key) + ".pub").read_text()
    config = bench_dir / "peer_ssh_config"
    lines = [f"# written by the bench: host to host inside the lab {lab_dir}", ""]
    for host in ("source", "target"):
        with open(authorized_keys(lab_dir / "hosts" / host), "a") as f:
            f.write(pub if pub.endswith("\n") else pub + "\n")
        out = run_local(["ssh", "-G", "-F", lab_dir / "ssh_config", host], timeout=10).stdout
        s = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
        lines += [f"Host {host}", f"  HostName {s['hostname']}", f"  Port {s['port']}",
                  f"  User {s['user']}", f"  IdentityFile {key}", "  IdentitiesOnly yes",
                  f"  UserKnownHostsFile {lab_dir / 'known_hosts'}",
                  "  GlobalKnownHostsFile /dev/null", "  StrictHostKeyChecking yes",
                  "  BatchMode yes", "  ConnectTimeout 10", f"  Ciphers {cipher}",
                  "  Compression no", "  LogLevel ERROR", ""]
    config.write_text("\n".join(lines))
    return config


def env_file(path: Path) -> Dict[str, str]:
    """KEY=VALUE lines of a lab env file (values may be single-quoted)."""
    out = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        out[key] = value
    return out


def write_section(path: Path, section: str, text: str) -> None:
    """Replace the section of RESULTS.md that starts with the heading `section` (or append
    one); keep every other section as it is."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    parts = re.split(r"(?m)^(?=## )", old)
    new_section = text.rstrip("\n") + "\n\n"
    out, replaced = [], False
    for part in parts:
        if re.match(re.escape(section) + r"\b", part):
            if not replaced:
                out.append(new_section)
                replaced = True
            continue
        out.append(part)
    if not replaced:
        if out and not out[-1].endswith("\n\n"):
            out[-1] = out[-1].rstrip("\n") + "\n\n"
        out.append(new_section)
    path.write_text("".join(out).rstrip("\n") + "\n")


def parse_bench_args(parser, section: str):
    """The arguments every harness shares added to parser (--build, --write-results,
    --results-file) and parsed; SIGTERM made to unwind like Ctrl-C (so the lab still goes
    down); --smoke with --write-results refused (a smoke run measures nothing worth keeping)."""
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--write-results", action="store_true",
                        help=f"replace the '{section}' section of bench/RESULTS.md")
    parser.add_argument("--results-file", default=str(RESULTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if getattr(args, "smoke", False) and args.write_results:
        parser.error("--smoke measures nothing worth keeping: no --write-results with it")
    return args


def conclude(write_results: bool, results_file: str, section: str, text: str, failed,
             measured: bool) -> int:
    """End a harness: write its RESULTS.md section (only when every contender passed), say
    what failed; the process exit code."""
    if write_results:
        if failed:
            log("not writing results: some contenders failed")
        else:
            write_section(Path(results_file), section, text)
            log(f"wrote the '{section}' section of {results_file}")
    if failed:
        log(f"FAILED: {', '.join(failed)}")
        return 1
    if not measured:
        log("nothing was measured")
        return 1
    return 0


def require_tools(tools: Dict[str, str]) -> None:
    """Exit 1, naming each one and its Debian package, when a tool a bench runs (a helper or a
    contender) is not on PATH: a side-by-side bench with a side missing measures nothing worth
    printing. tools maps each command to the package that installs it (scripts/deps installs
    them all)."""
    missing = [f"{tool} (Debian package {package})" for tool, package in tools.items()
               if not shutil.which(tool)]
    if missing:
        log(f"FAILED: missing {', '.join(missing)}; scripts/deps installs every contender")
        sys.exit(1)


def first_line(argv, stream="stdout") -> str:
    """The first line a command prints on stream ("?" when it cannot run)."""
    try:
        p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=10)
        return (getattr(p, stream).strip().splitlines() or ["?"])[0]
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def memory() -> str:
    """This machine's memory, as "24 GiB" ("?" when unknown)."""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        return f"{kb / (1 << 20):.0f} GiB"
    except (OSError, AttributeError):
        return "?"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("?" when unknown)."""
    try:
        return re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(),
                         re.M).group(1).strip()
    except (OSError, AttributeError):
        return "?"


def load_average() -> str:
    """The 1-minute load average now, as /proc/loadavg gives it ("?" when unknown)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except (OSError, IndexError):
        return "?"


def machine() -> str:
    """Which machine a table comes from: CPU model, cores and memory."""
    return f"{cpu_model()}, {os.cpu_count()} cores, {memory()}"
