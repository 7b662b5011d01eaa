"""`lab mariadb`: a throwaway MariaDB server on a lab host (own data dir, socket and port)."""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict

from .core import Lab, LabError, file_size, is_root

OS_USER = "mysql"
READY_TIMEOUT_S = 30.0
SOCKET_PATH_MAX = 107
# Small and fast: a lab server holds test data only.
INNODB_OPTIONS = ("--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
                  "--innodb-use-native-aio=0", "--innodb-flush-log-at-trx-commit=0")


def binaries() -> Dict[str, Path]:
    """Return the MariaDB programs the add-on needs ($CUTPILOT_LAB_MARIADB_BIN overrides their directory)."""
    override = os.environ.get("CUTPILOT_LAB_MARIADB_BIN")
    names = ("mariadb-install-db", "mariadbd", "mariadb-admin")
    if override:
        return {n: Path(override) / n for n in names}
    path = os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin:/sbin:/bin"
    return {n: Path(shutil.which(n, path=path) or f"/usr/sbin/{n}") for n in names}


def start(lab: Lab, host_name: str, binlog: bool = False) -> dict:
    """Install (first time) and start the MariaDB server of host_name; return what lab.json records.

    binlog: a replication source: a binary log in ROW format (GTIDs are always on in MariaDB)
    and a server_id of its own (its port, unique in the lab); without it no binary log and
    the default server_id 1, as installed."""
    hdir = lab.host_dir(host_name)
    bins = binaries()
    for b in bins.values():
        lab.require_binary(host_name, "mariadb", b)
    if is_root():
        lab.require_user(host_name, "mariadb", OS_USER)
    base = hdir / "mariadb"
    data, run, tmp = base / "data", base / "run", base / "tmp"
    sock, errlog, out = run / "mysqld.sock", base / "mariadbd.err", base / "mariadbd.log"
    lab.check_reachable(base, OS_USER, f"mariadb on lab host '{host_name}'")
    if any(c.isspace() for c in str(base)):
        raise LabError(f"mariadb on lab host '{host_name}': mariadb-install-db cannot handle blanks in "
                       f"{base}; use a --dir without blanks")
    if len(str(sock)) > SOCKET_PATH_MAX:
        raise LabError(f"mariadb on lab host '{host_name}': socket path {sock} is longer than "
                       f"{SOCKET_PATH_MAX} bytes; use a shorter --dir")

    base.mkdir(mode=0o755, exist_ok=True)
    for d in (data, run, tmp) + ((base / "binlog",) if binlog else ()):
        d.mkdir(mode=0o750 if d == data else 0o755, exist_ok=True)
        lab.give_to(OS_USER, d)
    errlog.touch(mode=0o644)  # mariadbd (as mysql) cannot create files in base
    lab.give_to(OS_USER, errlog)
    fresh = not (data / "mysql").is_dir()

    def attempt(port: int) -> dict:
        """Start mariadbd on port and wait until it answers ping."""
        since = file_size(errlog)
        source = (f"--log-bin={base / 'binlog' / 'mariadb-bin'}", "--binlog-format=ROW",
                  f"--server-id={port}", "--log-slave-updates") if binlog else ()
        pid = lab.spawn([bins["mariadbd"], "--no-defaults", f"--datadir={data}", f"--socket={sock}",
                         f"--port={port}", "--bind-address=127.0.0.1", f"--pid-file={run / 'mariadbd.pid'}",
                         f"--log-error={errlog}", f"--tmpdir={tmp}", "--skip-name-resolve",
                         *INNODB_OPTIONS, *source],
                        host_name, "mariadb", out, user=OS_USER)

        def ready() -> bool:
            """Tell whether mariadbd answers; fail if it exited."""
            lab.expect_running(pid, errlog, f"mariadbd on lab host '{host_name}'", since)
            return _ping(bins["mariadb-admin"], sock)

        lab.wait_until(ready, READY_TIMEOUT_S, f"mariadb on lab host '{host_name}' (port {port}, log {errlog})")
        return {"port": port}

    try:
        if fresh:
            _install_db(lab, host_name, bins["mariadb-install-db"], data)
        port = lab.with_free_port(attempt)["port"]
    except LabError as first:
        # Twice in CI (beside busy loops) a new server failed to come up for a reason the
        # test did not keep. A server that exited (or an install that failed) is tried once
        # more from a clean install, saying why; one still starting is not touched.
        if not fresh or "timed out" in str(first):
            raise
        print(f"lab: {first}\nlab: mariadb on lab host '{host_name}': trying once more", file=sys.stderr)
        _install_db(lab, host_name, bins["mariadb-install-db"], data)  # it empties the data dir
        port = lab.with_free_port(attempt)["port"]
    env = {"MYSQL_UNIX_PORT": sock, "MYSQL_TCP_PORT": port, "MYSQL_USER": "root",
           "MARIADB_TCP_HOST": "127.0.0.1", "MARIADB_DATADIR": data,
           "MARIADB_BINLOG": "1" if binlog else "0"}
    lab.write_env_file(host_name, "mariadb", env)
    return {"port": port, "host": "127.0.0.1", "socket": sock, "data": data, "log": errlog, "user": "root",
            "binlog": binlog,
            "hint": f"mariadb -uroot -S {shlex.quote(str(sock))}   (TCP: mariadb -uroot -h 127.0.0.1 -P {port})"}


def _install_db(lab: Lab, host_name: str, install_db: Path, data: Path) -> None:
    """Create the system tables in data, root@localhost with an empty password."""
    if any(data.iterdir()):  # a half-finished earlier install
        shutil.rmtree(data)
        data.mkdir(mode=0o750)
        lab.give_to(OS_USER, data)
    argv = [install_db, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
            "--skip-test-db", "--skip-name-resolve", *INNODB_OPTIONS]
    if is_root():
        argv.append(f"--user={OS_USER}")
    lab.run(argv, host_name, "mariadb-install-db", timeout_s=120)


def _ping(admin: Path, sock: Path) -> bool:
    """Tell whether the server answers `mariadb-admin ping` on its socket."""
    try:
        res = subprocess.run([str(admin), "--no-defaults", "-uroot", f"--socket={sock}",
                              "--connect-timeout=2", "ping"],
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return res.returncode == 0
