"""Lab hosts: one sshd per host on 127.0.0.1, the client key, DIR/ssh_config and DIR/known_hosts."""

import concurrent.futures
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from . import procs, relay
from .core import Lab, LabError, current_user, file_size, is_root, tail, write_atomic

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "/usr/bin/ssh-keygen"
SSH = "/usr/bin/ssh"
# How long a reloaded sshd may take to log a user in again.
RELOAD_LOGIN_TIMEOUT_S = 15.0
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
START_TIMEOUT_S = 10.0
BIND_ATTEMPTS = 5
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def quote(value: str) -> str:
    """Quote a value for ssh_config/sshd_config when it contains blanks or quotes."""
    if re.search(r'[\s"#]', value):
        return '"' + value.replace('"', '\\"') + '"'
    return value


def openssh_version() -> Tuple[int, int]:
    """Return the (major, minor) OpenSSH version, (0, 0) when unknown."""
    try:
        out = subprocess.run(["ssh", "-V"], capture_output=True, text=True, timeout=10).stderr
    except (OSError, subprocess.TimeoutExpired):
        return (0, 0)
    m = re.search(r"OpenSSH_(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def sshd_config(lab: Lab, name: str, port: int, version: Tuple[int, int],
                users: Optional[Dict[str, str]] = None,
                login_env: Optional[Dict[str, str]] = None) -> str:
    """Return the sshd_config text of one lab host.

    users maps the extra login users of the host (`lab ops`) to their homes; by default
    they are read from lab.json, so a restarted sshd keeps them.  Each gets a Match block
    at the end that reads only its own ~/.ssh/authorized_keys and sets its own HOME, as on
    a real host.  The lab's user keeps the global lines: a Match block's AuthorizedKeysFile
    and SetEnv replace the global lists whole (OpenSSH copies a matched block's lists over
    the global ones; `sshd -T -C user=...` shows it, test_ops.py logs in to prove it).
    Keeping them global (and no Match block without extra users) leaves the file as
    bench/benchlib.py (reads the first AuthorizedKeysFile line) and
    tests/transport/test_ssh_matrix.py (appends Port and PidFile) expect it."""
    hdir = lab.dir / "hosts" / name
    if users is None:
        users = login_users(lab, name)
    if login_env is None:
        login_env = _host_record(lab, name).get("login_env", {})
    main_user = current_user()
    extra = sorted(u for u in users if u != main_user)
    lines = [
        f"# sshd of lab host {name} (written by tests/lab/lab)",
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        "AddressFamily inet",
        f"HostKey {quote(str(hdir / 'ssh_host_ed25519_key'))}",
        f"PidFile {quote(str(hdir / 'sshd.pid'))}",
        # The lab's client key, then what the host's user (HOME) authorises, as sshd would read
        # ~/.ssh/authorized_keys: cutpilot's migration keys land there.
        f"AuthorizedKeysFile {quote(str(hdir / 'authorized_keys'))} "
        f"{quote(str(hdir / 'home' / '.ssh' / 'authorized_keys'))}",
        f"AllowUsers {' '.join([main_user] + extra)}",
        "UsePAM no",
        "StrictModes no",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "HostbasedAuthentication no",
        "PermitRootLogin prohibit-password",
        "AllowTcpForwarding yes",
        "AllowStreamLocalForwarding yes",
        "AllowAgentForwarding yes",
        "X11Forwarding no",
        "PrintMotd no",
        "PrintLastLog no",
        "UseDNS no",
        "MaxSessions 200",
        "MaxStartups 200:30:400",
        "LoginGraceTime 30",
        "LogLevel INFO",
        f"SetEnv {_setenv(lab, name, hdir / 'home', login_env)}",
        f"Subsystem sftp {SFTP_SERVER}",
    ]
    if version >= (9, 8):
        lines.append("PerSourcePenalties no")  # many quick test connections must not be throttled
    for user in extra:  # Match blocks last: nothing global may follow them
        lines += [f"Match User {user}",
                  "  AuthorizedKeysFile %h/.ssh/authorized_keys",
                  f"  SetEnv {_setenv(lab, name, Path(users[user]), login_env)}"]
    return "\n".join(lines) + "\n"


def _setenv(lab: Lab, name: str, home: Path, login_env: Dict[str, str]) -> str:
    """Return the SetEnv values of a login on lab host name: HOME, PATH, the lab markers and
    what add-ons set for every login (login_env: podman's DOCKER_HOST)."""
    hdir = lab.dir / "hosts" / name
    # The host's own bin/ comes first in PATH: add-ons put wrappers there (podman), and
    # tests put stand-ins there for what cannot happen here for real (a sudo that wants
    # a password, when everything runs as root).
    path = ":".join([str(hdir / "bin"), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
                     "/sbin", "/bin"])
    values = [("HOME", home), ("PATH", path), ("CUTPILOT_LAB_DIR", lab.dir),
              ("CUTPILOT_LAB_HOST", name)] + sorted(login_env.items())
    return " ".join(quote(f"{k}={v}") for k, v in values)


def _host_record(lab: Lab, name: str) -> dict:
    """Return lab.json's record of host name ({} before the lab exists)."""
    if not lab.state_path.exists():
        return {}
    return lab.load()["hosts"].get(name, {})


def login_users(lab: Lab, name: str) -> Dict[str, str]:
    """Return the extra login users recorded for lab host name (user -> home)."""
    return dict(_host_record(lab, name).get("login_users", {}))


def set_login_user(lab: Lab, name: str, user: str, home: Optional[Path]) -> None:
    """Record (home given) or forget (home None) an extra login user of a lab host, rewrite its
    sshd_config and, when the user is added, make the running sshd read it (SIGHUP)."""
    def change(h: dict) -> bool:
        users = h.setdefault("login_users", {})
        if home is None:
            users.pop(user, None)
        else:
            users[user] = str(home)
        return home is not None  # forgetting happens at `lab down`: that sshd is about to stop
    _reconfigure(lab, name, change)


def set_login_env(lab: Lab, name: str, values: Dict[str, str]) -> bool:
    """Add values to what every login on lab host name gets (SetEnv), as a real host's
    /etc/environment would give them; reload its sshd. Return whether anything changed."""
    def change(h: dict) -> bool:
        env = h.setdefault("login_env", {})
        before = dict(env)
        env.update({k: str(v) for k, v in values.items()})
        return env != before
    return _reconfigure(lab, name, change)


def _reconfigure(lab: Lab, name: str, change) -> bool:
    """Apply change(host record) in lab.json and, when it says so and the host's sshd runs,
    rewrite its sshd_config and make it read the file (SIGHUP). Return whether it reloaded.

    The new file is checked with `sshd -t` first: an sshd that re-reads a broken file exits."""
    with lab.transaction() as state:
        h = state["hosts"][name]
        reload = change(h)
        port, pid = h.get("sshd_port") or h.get("port"), h.get("pid")
        if not port:
            return False  # not started yet: _launch renders the config from lab.json
        conf = lab.dir / "hosts" / name / "sshd_config"
        text = sshd_config(lab, name, port, openssh_version(), h.get("login_users", {}),
                           h.get("login_env", {}))
        trial = conf.with_name(f".{conf.name}.check")
        write_atomic(trial, text)
        try:
            res = subprocess.run([SSHD, "-t", "-f", str(trial)], stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True, timeout=30)
        finally:
            trial.unlink(missing_ok=True)
        if res.returncode != 0:
            raise LabError(f"lab host '{name}': the new sshd_config fails `sshd -t`: {res.stderr.strip()}")
        starts = {r["pid"]: r.get("start") for r in state["pids"]}
        if reload and not (pid and procs.is_alive(pid, starts.get(pid))):
            raise LabError(f"lab host '{name}': its sshd (pid {pid}) is not running")
        write_atomic(conf, text)
        if reload:
            os.kill(pid, signal.SIGHUP)  # sshd -D re-executes itself with the same pid and reads the file
        return reload


def wait_for_login(lab: Lab, host_name: str, user: str) -> None:
    """Wait (bounded) until `ssh -l USER` logs in to the reloaded sshd and runs as USER."""
    state = lab.load()["hosts"][host_name]
    pid, log = state.get("pid"), Path(state.get("log") or lab.dir / "hosts" / host_name / "sshd.log")
    argv = [SSH, "-F", str(lab.dir / "ssh_config"), "-l", user, host_name, "id -un"]
    last = {"err": ""}

    def logged_in() -> bool:
        """Try one login; fail at once when the host's sshd died."""
        if not pid or not lab.alive(pid):
            raise LabError(f"lab host '{host_name}': its sshd exited after the reload; "
                           f"last lines of {log}:\n{tail(log, 15)}")
        try:
            res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired:
            return False
        last["err"] = res.stderr.strip()
        return res.returncode == 0 and res.stdout.strip() == user

    try:
        lab.wait_until(logged_in, RELOAD_LOGIN_TIMEOUT_S, f"`ssh -l {user} {host_name}` to log in")
    except LabError as e:
        raise LabError(f"lab host '{host_name}': {e}; last ssh error: {last['err'] or '-'}; "
                       f"last lines of {log}:\n{tail(log, 15)}") from None


def render_ssh_config(lab: Lab, state: dict) -> str:
    """Return DIR/ssh_config: one Host block per lab host that has a port."""
    out = [f"# ssh config of the cutpilot lab in {lab.dir} (written by tests/lab/lab)", ""]
    for name, h in state["hosts"].items():
        if not h.get("port"):
            continue
        out += [f"Host {name}",
                "  HostName 127.0.0.1",
                f"  Port {h['port']}",
                f"  User {state.get('user') or current_user()}",
                f"  IdentityFile {quote(str(lab.dir / 'id_ed25519'))}",
                "  IdentitiesOnly yes",
                f"  UserKnownHostsFile {quote(str(lab.dir / 'known_hosts'))}",
                "  GlobalKnownHostsFile /dev/null",
                "  StrictHostKeyChecking yes",
                "  BatchMode yes",
                "  ConnectTimeout 5",
                ""]
    return "\n".join(out)


def render_known_hosts(state: dict) -> str:
    """Return DIR/known_hosts: the host key of every lab host under [127.0.0.1]:PORT."""
    return "".join(f"[127.0.0.1]:{h['port']} {h['host_key']}\n"
                   for h in state["hosts"].values() if h.get("port") and h.get("host_key"))


def keygen(path: Path, comment: str) -> str:
    """Create an ed25519 key without passphrase at path (if missing); return 'TYPE BASE64' of its public half."""
    if not path.exists():
        res = subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        if res.returncode != 0:
            raise LabError(f"ssh-keygen failed for {path}: {res.stderr.strip()}")
    fields = Path(str(path) + ".pub").read_text().split()
    return f"{fields[0]} {fields[1]}"


def tcp_accepts(port: int) -> bool:
    """Tell whether 127.0.0.1:port accepts a TCP connection."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class _Start:
    """One sshd being started: its host, port, process and attempts."""

    def __init__(self, name: str, hdir: Path):
        self.name, self.hdir = name, hdir
        self.log = hdir / "sshd.log"
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.attempts = 0
        self.log_offset = 0


def validate_names(names: List[str]) -> None:
    """Fail on a bad or repeated host name."""
    if not names:
        raise LabError("up: give at least one host NAME")
    seen = set()
    for n in names:
        if not NAME_RE.match(n):
            raise LabError(f"bad host name '{n}': use letters, digits, '.', '_' and '-' (max 63)")
        if n in seen:
            raise LabError(f"host name '{n}' is given twice")
        seen.add(n)


def add_hosts(lab: Lab, names: List[str], rtt_ms: Optional[float] = None,
              window: int = relay.DEFAULT_WINDOW) -> List[dict]:
    """Start one sshd per name (in parallel), record them and rewrite ssh_config/known_hosts.
    With rtt_ms, each host's sshd hides behind a WAN relay (lablib/relay.py) whose port is the
    one ssh_config names."""
    validate_names(names)
    for binary in (SSHD, SSH_KEYGEN):
        if not os.access(binary, os.X_OK):
            raise LabError(f"up: required binary {binary} is missing (package openssh-server/openssh-client)")
    # Reserve the names first so that a concurrent `lab up` on the same DIR cannot take them too.
    with lab.transaction() as state:
        taken = [n for n in names if n in state["hosts"]]
        if taken:
            raise LabError(f"lab host {', '.join(repr(n) for n in taken)} already exists in {lab.dir}")
        for n in names:
            state["hosts"][n] = {"state": "starting", "dir": str(lab.dir / "hosts" / n), "services": {}}
        state["state"] = "up"
    starts: List[_Start] = []
    try:
        with lab.locked():  # one client key, even when two `lab up` run at once
            _prepare_dirs(lab)
            client_pub = keygen(lab.dir / "id_ed25519", f"cutpilot-lab@{lab.dir}")
        starts = [_Start(n, lab.dir / "hosts" / n) for n in names]
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            host_keys = list(pool.map(lambda s: _prepare_host(s, client_pub), starts))
        _start_all(lab, starts, openssh_version())
        relays = {} if rtt_ms is None else _start_relays(lab, starts, rtt_ms, window)
    except BaseException:
        _abandon(lab, names, starts)
        raise
    with lab.transaction() as state:
        for s, key in zip(starts, host_keys):
            if s.name in relays:
                state["hosts"][s.name].update(sshd_port=s.port, relay=relays[s.name])
            port = relays[s.name]["port"] if s.name in relays else s.port
            state["hosts"][s.name].update(
                state="running", port=port, pid=s.proc.pid, host_key=key, dir=str(s.hdir),
                home=str(s.hdir / "home"), log=str(s.log), sshd_config=str(s.hdir / "sshd_config"))
        write_atomic(lab.dir / "ssh_config", render_ssh_config(lab, state))
        write_atomic(lab.dir / "known_hosts", render_known_hosts(state))
        return [dict(state["hosts"][n], name=n) for n in names]


def _prepare_dirs(lab: Lab) -> None:
    """Create DIR/hosts, and as root /run/sshd plus modes that let service users pass through DIR."""
    hosts = lab.dir / "hosts"
    hosts.mkdir(exist_ok=True)
    if is_root():
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        for d in (lab.dir, hosts):
            if os.stat(d).st_mode & 0o111 != 0o111:
                os.chmod(d, os.stat(d).st_mode & 0o7777 | 0o711)


def _prepare_host(s: _Start, client_pub: str) -> str:
    """Create a host's directories, host key and authorized_keys; return its public host key."""
    (s.hdir / "home").mkdir(parents=True, exist_ok=True)
    os.chmod(s.hdir, 0o755)
    write_atomic(s.hdir / "authorized_keys", client_pub + "\n", 0o600)
    return keygen(s.hdir / "ssh_host_ed25519_key", f"lab-host-{s.name}")


def _launch(lab: Lab, s: _Start, version: Tuple[int, int]) -> None:
    """(Re)start the sshd of one host on a fresh free port."""
    s.port = lab.free_port()
    s.attempts += 1
    conf = s.hdir / "sshd_config"
    write_atomic(conf, sshd_config(lab, s.name, s.port, version))
    s.log_offset = file_size(s.log)
    s.proc = lab.launch([SSHD, "-D", "-e", "-f", str(conf)], s.name, s.log, None, None)


def _start_all(lab: Lab, starts: List[_Start], version: Tuple[int, int]) -> None:
    """Launch every sshd, record the PIDs, and wait until each listens (bounded)."""
    for s in starts:
        _launch(lab, s, version)
    lab.record_pids([{"pid": s.proc.pid, "host": s.name, "service": "sshd"} for s in starts])
    pending = list(starts)
    failed: Dict[str, str] = {}
    deadline = time.monotonic() + START_TIMEOUT_S
    while pending and time.monotonic() < deadline:
        relaunched = []
        for s in list(pending):
            rc = s.proc.poll()
            if rc is not None:
                pending.remove(s)
                text = tail(s.log, 20, s.log_offset)
                if "already in use" in text and s.attempts < BIND_ATTEMPTS:
                    _launch(lab, s, version)
                    relaunched.append(s)
                else:
                    failed[s.name] = f"sshd exited with status {rc}"
            elif (f"listening on 127.0.0.1 port {s.port}" in tail(s.log, 50, s.log_offset)
                  and tcp_accepts(s.port)):
                pending.remove(s)
        if relaunched:
            lab.record_pids([{"pid": s.proc.pid, "host": s.name, "service": "sshd"} for s in relaunched])
            pending += relaunched
        if pending:
            time.sleep(0.02)
    for s in pending:
        failed[s.name] = f"sshd did not accept connections on port {s.port} within {START_TIMEOUT_S:g} s"
    if failed:
        report = []
        for s in starts:
            if s.name in failed:
                report.append(f"lab host '{s.name}': {failed[s.name]}; last lines of {s.log}:\n"
                              f"{tail(s.log, 15, s.log_offset)}")
        raise LabError("up failed, stopped the hosts it started:\n" + "\n".join(report))


RELAY_SCRIPT = Path(__file__).resolve().with_name("relay.py")
RELAY_START_TIMEOUT_S = 15.0


def write_relay_conf(path: Path, rtt_ms: float, window: int) -> None:
    """Write what a host's relay reads at start and on SIGHUP."""
    write_atomic(path, json.dumps({"rtt_ms": rtt_ms, "window": window}) + "\n")


def _start_relays(lab: Lab, starts: List[_Start], rtt_ms: float, window: int) -> Dict[str, dict]:
    """Start a WAN relay in front of each started sshd; return host -> {port, rtt_ms, window, conf}."""
    launched = []
    for s in starts:
        conf, ready, log = s.hdir / "relay.json", s.hdir / "relay.port", s.hdir / "relay.log"
        write_relay_conf(conf, rtt_ms, window)
        ready.unlink(missing_ok=True)
        proc = lab.launch([sys.executable, RELAY_SCRIPT, "--to", s.port, "--conf", conf, "--ready", ready],
                          s.name, log, None, None)
        launched.append((s, proc, conf, ready, log))
    lab.record_pids([{"pid": proc.pid, "host": s.name, "service": "relay"} for s, proc, *_ in launched])
    out = {}
    for s, proc, conf, ready, log in launched:
        def listening(proc=proc, ready=ready, log=log, name=s.name):
            """The relay wrote its port (fail at once when it exited)."""
            if proc.poll() is not None:
                raise LabError(f"lab host '{name}': its relay exited; last lines of {log}:\n{tail(log, 15)}")
            return ready.exists() and int(ready.read_text())
        port = lab.wait_until(listening, RELAY_START_TIMEOUT_S, f"the relay of lab host '{s.name}'")
        out[s.name] = {"port": port, "rtt_ms": rtt_ms, "window": window, "conf": str(conf),
                       "pid": proc.pid, "log": str(log)}
    return out


def set_rtt(lab: Lab, name: str, rtt_ms: float, window: Optional[int]) -> dict:
    """Give the relay of lab host name a new RTT (and window) for the connections that come
    after; return its record."""
    with lab.transaction() as state:
        h = state["hosts"].get(name)
        if h is None:
            raise LabError(f"unknown lab host '{name}' in {lab.dir}")
        r = h.get("relay")
        if not r:
            raise LabError(f"lab host '{name}' has no relay: start it with `lab up --rtt RTT {name}`")
        starts = {p["pid"]: p.get("start") for p in state["pids"]}
        if not procs.is_alive(r["pid"], starts.get(r["pid"])):
            raise LabError(f"lab host '{name}': its relay (pid {r['pid']}) is not running")
        r["rtt_ms"] = rtt_ms
        if window is not None:
            r["window"] = window
        write_relay_conf(Path(r["conf"]), rtt_ms, r["window"])
        os.kill(r["pid"], signal.SIGHUP)
        return dict(r)


def _abandon(lab: Lab, names: List[str], starts: List[_Start]) -> None:
    """Stop what a failed `up` started and forget its reserved host names (files stay for inspection)."""
    with lab.transaction() as state:
        records = [r for r in state["pids"] if r.get("host") in names]
        pids = {s.proc.pid for s in starts if s.proc is not None}
        lab.stop_records(records + [{"pid": p, "start": procs.start_time(p)} for p in pids])
        state["pids"] = [r for r in state["pids"] if r.get("host") not in names]
        for n in names:
            state["hosts"].pop(n, None)
