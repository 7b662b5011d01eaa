"""Finding and stopping the processes that belong to one lab directory."""

import os
import signal
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Set

# Every process the lab starts carries MARKER_KEY=<lab dir> in its environment.
MARKER_KEY = "CUTPILOT_LAB_DIR"


@dataclass(frozen=True)
class ProcInfo:
    """One process as /proc/PID/stat shows it."""

    pid: int
    ppid: int
    sid: int
    start: int
    state: str


def read_stat(pid: int) -> Optional[ProcInfo]:
    """Return the /proc/PID/stat facts of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm may contain spaces and parentheses; the fields start after the last ')'.
    rest = data[data.rindex(b")") + 2:].split()
    return ProcInfo(pid=pid, ppid=int(rest[1]), sid=int(rest[3]),
                    start=int(rest[19]), state=rest[0].decode())


def start_time(pid: int) -> Optional[int]:
    """Return the kernel start time (clock ticks since boot) of a process, or None."""
    info = read_stat(pid)
    return info.start if info else None


def is_alive(pid: int, start: Optional[int] = None) -> bool:
    """Tell whether PID runs (zombies count as dead) and, if start is given, is still the same process."""
    info = read_stat(pid)
    if info is None or info.state in ("Z", "X"):
        return False
    return start is None or info.start == start


def read_environ(pid: int) -> Optional[List[bytes]]:
    """Return the NUL-separated environment entries of a process, or None if unreadable."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return None


def scan() -> Dict[int, ProcInfo]:
    """Return every process currently visible in /proc."""
    procs = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = read_stat(int(name))
            if info is not None:
                procs[info.pid] = info
    return procs


def _leaders(records: Iterable[dict], procs: Dict[int, ProcInfo]) -> Dict[int, int]:
    """Map recorded PIDs that are still ours (alive with the same start time, or gone) to their start time."""
    leaders = {}
    for rec in records:
        pid, start = rec.get("pid"), rec.get("start")
        if not isinstance(pid, int) or pid <= 1 or start is None:
            continue
        info = procs.get(pid)
        if info is None or info.start == start:
            leaders[pid] = start
    return leaders


def find_lab_processes(lab_dir: str, records: Iterable[dict], by_marker: bool = True) -> Set[int]:
    """Return the live processes of the lab in lab_dir.

    Those are: the recorded PIDs (same start time), members of their sessions,
    their descendants, and (when by_marker) every process whose environment
    carries the marker. Processes marked for another lab dir, this process and
    its ancestors are never included.
    """
    procs = scan()
    marker = f"{MARKER_KEY}={lab_dir}".encode()
    prefix = f"{MARKER_KEY}=".encode()
    leaders = _leaders(records, procs)

    def other_lab(pid: int) -> bool:
        """Tell whether pid carries the marker of a different lab."""
        env = read_environ(pid)
        return env is not None and marker not in env and any(e.startswith(prefix) for e in env)

    found = set()
    for pid, info in procs.items():
        if info.state in ("Z", "X"):
            continue
        if pid in leaders:
            found.add(pid)
            continue
        env = read_environ(pid)
        if by_marker and env is not None and marker in env:
            found.add(pid)
        elif info.sid in leaders and info.start >= leaders[info.sid] and not other_lab(pid):
            found.add(pid)

    children: Dict[int, List[int]] = {}
    for pid, info in procs.items():
        children.setdefault(info.ppid, []).append(pid)
    stack = list(found)
    while stack:
        for child in children.get(stack.pop(), []):
            if child in found or procs[child].state in ("Z", "X") or other_lab(child):
                continue
            found.add(child)
            stack.append(child)

    me = os.getpid()
    while me > 0 and me in procs:
        found.discard(me)
        if procs[me].ppid == me:
            break
        me = procs[me].ppid
    found.discard(1)
    return found


def stop_lab_processes(lab_dir: str, records: List[dict], grace_s: float = 5.0,
                       by_marker: bool = True) -> Set[int]:
    """SIGTERM every lab process, SIGKILL what is left after grace_s; return PIDs that survived."""
    signalled: Set[int] = set()
    deadline = time.monotonic() + grace_s
    found = find_lab_processes(lab_dir, records, by_marker)
    while found and time.monotonic() < deadline:
        for pid in found - signalled:
            _signal(pid, signal.SIGTERM)
            signalled.add(pid)
        time.sleep(0.05)
        found = find_lab_processes(lab_dir, records, by_marker)
    kill_deadline = time.monotonic() + 3.0
    while found and time.monotonic() < kill_deadline:
        for pid in found:
            _signal(pid, signal.SIGKILL)
        time.sleep(0.05)
        found = find_lab_processes(lab_dir, records, by_marker)
    return found


def _signal(pid: int, sig: int) -> None:
    """Send sig to pid, ignoring a process that is already gone or not ours."""
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
