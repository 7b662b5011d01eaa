"""Lab state (lab.json), child processes, free ports and bounded waits: the API every add-on uses."""

import contextlib
import fcntl
import json
import os
import pwd
import shlex
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

from . import procs

STATE_VERSION = 1


class LabError(Exception):
    """An error the lab reports to its user as one clear message."""


class PortInUse(LabError):
    """A service could not bind its port (a bind race); another free port may work."""


def current_user() -> str:
    """Return the name of the user this process runs as."""
    return pwd.getpwuid(os.geteuid()).pw_name


def is_root() -> bool:
    """Tell whether this process runs as root."""
    return os.geteuid() == 0


def tail(path: Path, lines: int = 20, since: int = 0) -> str:
    """Return the last lines of a log file (from byte offset since), or a note that it is missing."""
    try:
        with open(path, "rb") as f:
            f.seek(since)
            data = f.read()
    except OSError as e:
        return f"(cannot read {path}: {e.strerror})"
    text = data.decode("utf-8", "replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:]) if text else "(empty)"


def file_size(path: Path) -> int:
    """Return the size of a file, 0 when it does not exist."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a file through a temporary file and a rename, so readers never see half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class Lab:
    """One lab directory: its state file, its hosts and every process it started."""

    def __init__(self, directory: str):
        self.dir = Path(os.path.abspath(directory))
        self._lock_fd: Optional[int] = None
        self._lock_depth = 0
        self._ports: set = set()
        self._children: Dict[int, subprocess.Popen] = {}

    # ---- state -------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        """The lab.json file that records hosts, services and PIDs."""
        return self.dir / "lab.json"

    @classmethod
    def open(cls, directory: str) -> "Lab":
        """Return the existing lab in directory, or fail clearly when there is none."""
        lab = cls(directory)
        if not lab.state_path.exists():
            raise LabError(f"no lab in {lab.dir} (start one with: lab up --dir {lab.dir} NAME...)")
        return lab

    @classmethod
    def create(cls, directory: str) -> "Lab":
        """Return the lab in directory, creating the directory and an empty state if needed."""
        lab = cls(directory)
        lab.dir.mkdir(parents=True, exist_ok=True)
        with lab.locked():
            if not lab.state_path.exists():
                lab.save({"version": STATE_VERSION, "dir": str(lab.dir), "user": current_user(),
                          "state": "up", "hosts": {}, "pids": []})
        return lab

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the lab's lock file (re-entrant within this process) so concurrent `lab` runs do not lose updates."""
        if self._lock_depth == 0:
            fd = os.open(self.dir / ".lab.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd = fd
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0 and self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def load(self) -> dict:
        """Read lab.json."""
        try:
            with open(self.state_path, encoding="utf-8") as f:
                state = json.load(f)
        except FileNotFoundError:
            raise LabError(f"no lab in {self.dir} (lab.json is missing)") from None
        except ValueError as e:
            raise LabError(f"{self.state_path}: not valid JSON: {e}") from None
        state.setdefault("hosts", {})
        state.setdefault("pids", [])
        return state

    def save(self, state: dict) -> None:
        """Replace lab.json atomically."""
        write_atomic(self.state_path, json.dumps(state, indent=2, sort_keys=True) + "\n")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict]:
        """Yield the state under the lock and save it when the block ends without an error."""
        with self.locked():
            state = self.load()
            yield state
            self.save(state)

    # ---- hosts -------------------------------------------------------------

    def host_dir(self, name: str) -> Path:
        """Return DIR/hosts/NAME of an existing lab host, or fail naming the unknown host."""
        hosts = self.load()["hosts"]
        if name not in hosts:
            known = ", ".join(sorted(hosts)) or "none"
            raise LabError(f"unknown lab host '{name}' in {self.dir} (hosts: {known})")
        path = self.dir / "hosts" / name
        if not path.is_dir():
            raise LabError(f"lab host '{name}': directory {path} is missing")
        return path

    def env(self, host_name: str) -> dict:
        """Return a copy of os.environ plus the lab markers for host_name."""
        env = dict(os.environ)
        env["CUTPILOT_LAB_DIR"] = str(self.dir)
        env["CUTPILOT_LAB_HOST"] = host_name
        return env

    # ---- processes ---------------------------------------------------------

    def launch(self, argv: List[str], host_name: str, log_path: Path,
               env: Optional[dict], user: Optional[str]) -> subprocess.Popen:
        """Start argv in its own session with the lab marker, output appended to log_path."""
        env = dict(env) if env is not None else self.env(host_name)
        env["CUTPILOT_LAB_DIR"] = str(self.dir)
        env["CUTPILOT_LAB_HOST"] = host_name
        extra = self._as_user(user, env)
        argv = [str(a) for a in argv]
        with open(log_path, "ab") as log:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, env=env, cwd="/",
                                        start_new_session=True, **extra)
            except OSError as e:
                raise LabError(f"lab host '{host_name}': cannot start {argv[0]}: {e.strerror}") from None
        self._children[proc.pid] = proc
        return proc

    @staticmethod
    def _as_user(user: Optional[str], env: dict) -> dict:
        """Return Popen arguments that run a child as user (only when root and user is another user)."""
        if not user or not is_root():
            return {}
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            raise LabError(f"OS user '{user}' does not exist") from None
        if pw.pw_uid == os.geteuid():
            return {}
        env.update(HOME=pw.pw_dir, USER=user, LOGNAME=user)
        return {"user": pw.pw_uid, "group": pw.pw_gid,
                "extra_groups": os.getgrouplist(user, pw.pw_gid)}

    def record_pids(self, entries: List[dict]) -> None:
        """Record started processes ({pid, host, service}) in lab.json with their start times."""
        with self.transaction() as state:
            for e in entries:
                pid, host, service = e["pid"], e["host"], e["service"]
                state["pids"].append({"pid": pid, "start": procs.start_time(pid),
                                      "host": host, "service": service})
                h = state["hosts"].setdefault(host, {"services": {}})
                if service == "sshd":
                    h["pid"] = pid
                else:
                    svc = h.setdefault("services", {}).setdefault(service, {})
                    svc.setdefault("pids", []).append(pid)

    def spawn(self, argv: List[str], host_name: str, service: str, log_path: Path,
              env: Optional[dict] = None, user: Optional[str] = None) -> int:
        """Start a lab child in its own session (marker in its environment), record its PID, return it."""
        self.host_dir(host_name)
        proc = self.launch(argv, host_name, Path(log_path), env, user)
        self.record_pids([{"pid": proc.pid, "host": host_name, "service": service}])
        return proc.pid

    def alive(self, pid: int) -> bool:
        """Tell whether a PID runs (reaping it first when it is our own child)."""
        child = self._children.get(pid)
        if child is not None and child.poll() is not None:
            return False
        return procs.is_alive(pid)

    def expect_running(self, pid: int, log_path: Path, what: str, since: int = 0) -> None:
        """Fail with the log tail when pid has exited; a bind failure raises PortInUse."""
        if self.alive(pid):
            return
        text = tail(log_path, 25, since)
        err = PortInUse if "already in use" in text.lower() else LabError
        raise err(f"{what} exited during startup; last lines of {log_path}:\n{text}")

    def run(self, argv: List[str], host_name: str, what: str, timeout_s: float = 120,
            user: Optional[str] = None) -> str:
        """Run a one-shot command to completion (via runuser as user when root); fail with its output."""
        argv = [str(a) for a in argv]
        if user and is_root() and user != current_user():
            argv = ["runuser", "-u", user, "--"] + argv
        try:
            res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                 env=self.env(host_name), cwd="/", timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise LabError(f"{what} on lab host '{host_name}' did not finish within {timeout_s:g} s") from None
        if res.returncode != 0:
            out = "\n".join((res.stdout + res.stderr).strip().splitlines()[-25:])
            raise LabError(f"{what} on lab host '{host_name}' failed (exit {res.returncode}): "
                           f"{' '.join(argv)}\n{out}")
        return res.stdout

    def stop_records(self, records: List[dict]) -> set:
        """Stop the given recorded processes with their sessions and descendants; return survivors."""
        return procs.stop_lab_processes(str(self.dir), records, by_marker=False)

    # ---- ports and waiting -------------------------------------------------

    def free_port(self) -> int:
        """Return a TCP port on 127.0.0.1 that is free now and not yet handed out by this Lab."""
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in self._ports:
                self._ports.add(port)
                return port
        raise LabError("cannot find a free TCP port on 127.0.0.1")

    def with_free_port(self, attempt: Callable[[int], dict], attempts: int = 3) -> dict:
        """Call attempt(port) with fresh free ports until it does not raise PortInUse."""
        for i in range(attempts):
            try:
                return attempt(self.free_port())
            except PortInUse:
                if i == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def wait_until(self, predicate: Callable[[], object], timeout_s: float, what: str):
        """Poll predicate until it returns a true value (returned); fail naming what on timeout."""
        deadline = time.monotonic() + timeout_s
        delay = 0.01
        while True:
            value = predicate()
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise LabError(f"timed out after {timeout_s:g} s waiting for {what}")
            time.sleep(min(delay, left))
            delay = min(delay * 1.5, 0.25)

    # ---- files -------------------------------------------------------------

    def write_env_file(self, host_name: str, service: str, values: dict) -> Path:
        """Write DIR/hosts/NAME/<service>.env as shell KEY=VALUE lines and return its path."""
        path = self.host_dir(host_name) / f"{service}.env"
        lines = [f"# {service} on lab host {host_name} (written by tests/lab/lab); "
                 f"load with: set -a; . {path}; set +a"]
        lines += [f"{k}={shlex.quote(str(v))}" for k, v in values.items()]
        write_atomic(path, "\n".join(lines) + "\n")
        return path

    @staticmethod
    def require_binary(host_name: str, service: str, path) -> Path:
        """Fail naming the host and the binary when an executable is missing."""
        path = Path(path)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LabError(f"{service} on lab host '{host_name}': required binary {path} is missing")
        return path

    @staticmethod
    def require_user(host_name: str, service: str, user: str) -> pwd.struct_passwd:
        """Fail naming the host when an OS user a service needs does not exist."""
        try:
            return pwd.getpwnam(user)
        except KeyError:
            raise LabError(f"{service} on lab host '{host_name}': OS user '{user}' does not exist") from None

    @staticmethod
    def check_reachable(path: Path, user: str, what: str) -> None:
        """As root, fail naming the directory when user cannot traverse every parent of path."""
        if not is_root():
            return
        pw = pwd.getpwnam(user)
        if pw.pw_uid == 0:
            return
        groups = set(os.getgrouplist(user, pw.pw_gid))
        for d in reversed(Path(path).parents):
            if not d.exists():
                break  # the rest is created by the lab with mode 0755
            st = os.stat(d)
            if st.st_uid == pw.pw_uid:
                ok = st.st_mode & stat.S_IXUSR
            elif st.st_gid in groups:
                ok = st.st_mode & stat.S_IXGRP
            else:
                ok = st.st_mode & stat.S_IXOTH
            if not ok:
                raise LabError(f"{what}: OS user '{user}' cannot reach {path}: directory {d} is not "
                               f"traversable (mode {stat.S_IMODE(st.st_mode):04o}); put the lab under a "
                               f"directory others may pass through (chmod o+x {d}) or use another --dir")

    @staticmethod
    def give_to(user: str, *paths: Path) -> None:
        """As root, chown paths (not recursively) to user and the user's group."""
        if not is_root():
            return
        pw = pwd.getpwnam(user)
        for p in paths:
            os.chown(p, pw.pw_uid, pw.pw_gid)
