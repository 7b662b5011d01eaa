"""`lab postgres`: a throwaway PostgreSQL cluster on a lab host (own data dir, port and socket dir)."""

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from .core import Lab, LabError, file_size, is_root

DEFAULT_PGBIN = "/usr/lib/postgresql/15/bin"
OS_USER = "postgres"
SUPERUSER = "postgres"
PASSWORD = "lab"
READY_TIMEOUT_S = 20.0
SOCKET_PATH_MAX = 107


def pgbin() -> Path:
    """Return the PostgreSQL bin directory ($CUTPILOT_LAB_PGBIN overrides the PostgreSQL 15 default)."""
    return Path(os.environ.get("CUTPILOT_LAB_PGBIN", DEFAULT_PGBIN))


def start(lab: Lab, host_name: str, logical: bool = False) -> dict:
    """Create (first time) and start the cluster of host_name; return what lab.json records.

    logical: wal_level = logical, so the cluster can publish (logical replication); without it
    the server keeps PostgreSQL's default (replica)."""
    hdir = lab.host_dir(host_name)
    bindir = pgbin()
    for name in ("initdb", "postgres", "pg_isready"):
        lab.require_binary(host_name, "postgres", bindir / name)
    if is_root():
        lab.require_user(host_name, "postgres", OS_USER)
    base = hdir / "postgres"
    data, run, log = base / "data", base / "run", base / "postgres.log"
    lab.check_reachable(base, OS_USER, f"postgres on lab host '{host_name}'")
    if len(str(run / ".s.PGSQL.65535")) > SOCKET_PATH_MAX:
        raise LabError(f"postgres on lab host '{host_name}': socket path under {run} is longer than "
                       f"{SOCKET_PATH_MAX} bytes; use a shorter --dir")

    base.mkdir(mode=0o755, exist_ok=True)
    for d in (data, run):
        d.mkdir(mode=0o700 if d == data else 0o755, exist_ok=True)
        lab.give_to(OS_USER, d)
    if not (data / "PG_VERSION").exists():
        if any(data.iterdir()):  # a half-finished earlier initdb
            shutil.rmtree(data)
            data.mkdir(mode=0o700)
            lab.give_to(OS_USER, data)
        _initdb(lab, host_name, bindir, base, data)

    def attempt(port: int) -> dict:
        """Start postgres on port and wait until pg_isready answers."""
        _write_lab_conf(data, port, run, logical)
        since = file_size(log)
        pid = lab.spawn([bindir / "postgres", "-D", data, "-p", port, "-k", run,
                         "-c", "listen_addresses=127.0.0.1"],
                        host_name, "postgres", log, user=OS_USER)

        def ready() -> bool:
            """Tell whether postgres answers; fail if it exited."""
            lab.expect_running(pid, log, f"postgres on lab host '{host_name}'", since)
            return _isready(bindir, run, port)

        lab.wait_until(ready, READY_TIMEOUT_S, f"postgres on lab host '{host_name}' (port {port}, log {log})")
        return {"port": port}

    port = lab.with_free_port(attempt)["port"]
    env = {"PGHOST": run, "PGPORT": port, "PGUSER": SUPERUSER, "PGPASSWORD_LAB": PASSWORD,
           "PG_TCP_HOST": "127.0.0.1", "PGBIN": bindir, "PGDATA": data,
           "PG_WAL_LEVEL": "logical" if logical else "replica"}
    lab.write_env_file(host_name, "postgres", env)
    return {"port": port, "host": "127.0.0.1", "socket_dir": run, "data": data, "log": log,
            "user": SUPERUSER, "bin": bindir, "logical": logical,
            "hint": f"{shlex.quote(str(bindir / 'psql'))} -h {shlex.quote(str(run))} -p {port} -U {SUPERUSER}   "
                    f"(TCP: PGPASSWORD={PASSWORD} psql -h 127.0.0.1 -p {port} -U {SUPERUSER})"}


def _initdb(lab: Lab, host_name: str, bindir: Path, base: Path, data: Path) -> None:
    """Run initdb into data as the postgres OS user, with the superuser's password from a pwfile."""
    pwfile = base / ".pwfile"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(PASSWORD + "\n")
    lab.give_to(OS_USER, pwfile)
    try:
        lab.run([bindir / "initdb", "-D", data, "-U", SUPERUSER, "--auth-local=trust",
                 "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C",
                 "--no-sync", "--no-instructions"],
                host_name, "postgres initdb", timeout_s=120, user=OS_USER)
    finally:
        pwfile.unlink(missing_ok=True)
    with open(data / "postgresql.conf", "a", encoding="utf-8") as f:
        f.write("\n# cutpilot lab: port, socket dir and speed settings\ninclude_if_exists = 'lab.conf'\n")


def _write_lab_conf(data: Path, port: int, run: Path, logical: bool) -> None:
    """Write data/lab.conf: where this cluster listens, durability off for speed, and (logical)
    what a publisher needs: wal_level, and slots and senders for a few subscriptions."""
    conf = data / "lab.conf"
    conf.write_text(f"port = {port}\n"
                    "listen_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{run}'\n"
                    "fsync = off\n"
                    "synchronous_commit = off\n"
                    "full_page_writes = off\n"
                    "logging_collector = off\n"
                    "shared_buffers = 32MB\n"
                    "max_connections = 100\n" +
                    ("wal_level = logical\n"
                     "max_replication_slots = 10\n"
                     "max_wal_senders = 10\n" if logical else ""),
                    encoding="utf-8")
    os.chmod(conf, 0o644)


def _isready(bindir: Path, run: Path, port: int) -> bool:
    """Tell whether the server accepts connections on its socket (pg_isready)."""
    try:
        res = subprocess.run([str(bindir / "pg_isready"), "-q", "-h", str(run), "-p", str(port),
                              "-U", SUPERUSER, "-d", "postgres", "-t", "2"],
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return res.returncode == 0
