"""Shared helpers of the lab tests: a TestCase that owns temporary labs and stops them even on failure."""

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent
LAB = HERE / "lab"


def proc_start(pid: int) -> Optional[int]:
    """Return the start time of a live (non-zombie) process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            rest = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return None if rest[0] in (b"Z", b"X") else int(rest[19])


def descendants(pids: List[int]) -> List[int]:
    """Return the live descendants of the given processes."""
    children: Dict[int, List[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                rest = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if rest[0] not in (b"Z", b"X"):
            children.setdefault(int(rest[1]), []).append(int(name))
    found, stack = [], list(pids)
    while stack:
        for c in children.get(stack.pop(), []):
            found.append(c)
            stack.append(c)
    return found


def marked_pids(lab_dir: str) -> List[int]:
    """Return the live PIDs whose environment carries this lab's marker."""
    marker = f"CUTPILOT_LAB_DIR={lab_dir}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if marker in env and proc_start(int(name)) is not None:
            found.append(int(name))
    return found


def read_env_file(path: Path) -> Dict[str, str]:
    """Parse a KEY=VALUE env file the lab wrote (values are shell-quoted)."""
    values = {}
    for line in Path(path).read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = shlex.split(value)[0] if value else ""
    return values


class LabCase(unittest.TestCase):
    """A test case whose labs live in their own temporary directories and are always stopped."""

    def make_lab_dir(self) -> str:
        """Return a fresh temporary lab DIR that cleanup stops (lab down) and removes."""
        d = os.path.realpath(tempfile.mkdtemp(prefix="cp-lab-"))
        self.addCleanup(self._remove, d)
        self.addCleanup(self._down, d)
        return d

    def _down(self, d: str) -> None:
        res = subprocess.run([str(LAB), "down", "--dir", d], capture_output=True, text=True,
                             timeout=120, stdin=subprocess.DEVNULL)
        self.assertEqual(res.returncode, 0, f"lab down in cleanup failed:\n{res.stdout}{res.stderr}")

    @staticmethod
    def _remove(d: str) -> None:
        if not os.environ.get("CUTPILOT_LAB_KEEP"):
            shutil.rmtree(d, ignore_errors=True)

    def lab(self, *args: str, check: bool = True, env: Optional[dict] = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
        """Run tests/lab/lab; with check, fail the test (showing its output) on a non-zero exit."""
        res = subprocess.run([str(LAB)] + list(args), capture_output=True, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL, env=env)
        if check:
            self.assertEqual(res.returncode, 0, f"lab {' '.join(args)} failed:\n{res.stdout}{res.stderr}")
        return res

    def ssh(self, d: str, host: str, command: str, *options: str, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a command on a lab host with the real ssh client and the lab's ssh_config."""
        res = subprocess.run(["ssh", "-F", f"{d}/ssh_config", *options, host, command],
                             capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check:
            self.assertEqual(res.returncode, 0, f"ssh {host} {command!r} failed:\n{res.stderr}")
        return res

    @staticmethod
    def state(d: str) -> dict:
        """Return the lab's lab.json."""
        return json.loads(Path(d, "lab.json").read_text())

    def assert_gone(self, starts: Dict[int, Optional[int]], what: str) -> None:
        """Assert that none of the processes (pid -> start time seen before) still runs."""
        self.assertTrue(starts, f"no {what} PIDs were collected")
        alive = [pid for pid, start in starts.items()
                 if start is not None and proc_start(pid) == start]
        self.assertEqual(alive, [], f"{what} still running after lab down: {alive}")
