"""`lab ops --dir DIR NAME`: an unprivileged SSH user with passwordless sudo on a lab host.

A hardened production host is reached as such a user (say `ops`), whose own
~/.ssh/authorized_keys is the only one that counts for it, and it reaches root-owned
data through sudo.  This add-on gives lab host NAME a real Unix user like that:

  - its name is "cpo" + the first 8 hex digits of sha256("DIR\\0NAME"), so parallel labs
    and the hosts of one lab never share a user (user_name());
  - home DIR/hosts/NAME/users/USER (mode 0700, owned by it), shell /bin/sh, its own group,
    no password (`*`, not the locked `!`: sshd without PAM refuses locked accounts);
  - ~/.ssh/authorized_keys holds the lab's client key, so
    `ssh -F DIR/ssh_config -l USER NAME` logs in;
  - /etc/sudoers.d/cutpilot-lab-USER grants `ALL=(ALL:ALL) NOPASSWD: ALL`, checked with
    `visudo -cf` before it is put in place.  It also keeps the login's PATH (no
    secure_path) and the lab's login variables (DOCKER_HOST, the lab markers) under sudo:
    a lab host's /usr/bin is its bin/ first in PATH, so `sudo docker` finds the host's
    docker as it would on a real host, and `lab down` finds the processes sudo started;
  - the host's sshd allows it, with its own Match block (sshd.sshd_config()).

It needs root (it changes /etc/passwd and /etc/sudoers.d).  `lab down` calls stop(): it
kills the user's processes, removes the sudoers file and deletes the user; its home goes
with DIR (`lab down --rm`).  A user left by a crashed lab is reused and repaired.
"""

import grp
import hashlib
import os
import pwd
import shlex
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import List, Optional

from . import sshd
from .core import Lab, LabError, is_root, tail, write_atomic

SERVICE = "ops"
USERADD, USERMOD, USERDEL = "/usr/sbin/useradd", "/usr/sbin/usermod", "/usr/sbin/userdel"
VISUDO, SUDO, SSH = "/usr/sbin/visudo", "/usr/bin/sudo", "/usr/bin/ssh"
SUDOERS_DIR = Path("/etc/sudoers.d")
SUDO_TS_DIR = Path("/run/sudo/ts")
# What a lab login has that sudo keeps for the command (as a real host's /usr/bin would be).
SUDO_ENV_KEEP = ("PATH", "DOCKER_HOST", "CUTPILOT_LAB_DIR", "CUTPILOT_LAB_HOST")
COMMENT = "cutpilot lab ops user"  # GECOS: marks users this add-on may reuse and delete
PASSWD_LOCK_TIMEOUT_S = 30.0  # useradd/userdel of parallel labs wait for each other's lock
STOP_TIMEOUT_S = 5.0


def user_name(lab_dir, host_name: str) -> str:
    """Return the OS user name of lab host host_name in lab_dir: "cpo" + 8 hex digits (11 chars)."""
    digest = hashlib.sha256(f"{os.path.abspath(str(lab_dir))}\0{host_name}".encode()).hexdigest()
    return "cpo" + digest[:8]


def sudoers_path(user: str) -> Path:
    """Return the sudoers drop-in that gives user passwordless sudo (no '.': sudo reads it)."""
    return SUDOERS_DIR / f"cutpilot-lab-{user}"


def sudoers_text(user: str) -> str:
    """Return the sudoers drop-in of user: passwordless sudo, the login's PATH and lab variables."""
    keep = " ".join(SUDO_ENV_KEEP)
    return (f"{user} ALL=(ALL:ALL) NOPASSWD: ALL\n"
            f"Defaults:{user} !secure_path\n"
            f"Defaults:{user} env_keep += \"{keep}\"\n")


def start(lab: Lab, host_name: str) -> dict:
    """Create (or repair) the ops user of host_name, let its sshd log it in, and return its record."""
    hdir = lab.host_dir(host_name)
    what = f"ops on lab host '{host_name}'"
    if not is_root():
        raise LabError(f"{what}: needs root: it adds an OS user, a file in {SUDOERS_DIR} and "
                       f"chowns the user's home (CI runs the lab as root); nothing was changed")
    for binary in (USERADD, USERMOD, USERDEL, VISUDO, SUDO, SSH):
        lab.require_binary(host_name, SERVICE, binary)
    client_pub = lab.dir / "id_ed25519.pub"
    if not client_pub.is_file():
        raise LabError(f"{what}: the lab's client key {client_pub} is missing")
    user = user_name(lab.dir, host_name)
    home = hdir / "users" / user
    _check_traversable(home, what)
    _check_reusable(user, what)
    try:
        pw = _ensure_user(user, home, what)
        _make_home(pw, home, client_pub.read_text())
        _install_sudoers(user, sudoers_text(user), what)
        got = lab.run([SUDO, "-n", "id", "-u"], host_name, f"{what}: sudo -n as {user}",
                      timeout_s=30, user=user).strip()
        if got != "0":
            raise LabError(f"{what}: `sudo -n id -u` as {user} printed {got!r}, not 0")
        sshd.set_login_user(lab, host_name, user, home)
        sshd.wait_for_login(lab, host_name, user)
    except BaseException:
        _remove(lab, host_name, user)
        raise
    lab.write_env_file(host_name, SERVICE, {"LAB_OPS_USER": user, "LAB_OPS_HOME": home})
    return {"user": user, "uid": pw.pw_uid, "home": home, "sudoers": sudoers_path(user),
            "hint": f"ssh -F {shlex.quote(str(lab.dir / 'ssh_config'))} -l {user} {host_name}   "
                    f"(passwordless sudo)"}


def stop(lab: Lab, host_name: str, record: dict) -> List[str]:
    """Kill the ops user's processes, remove its sudoers file and delete it; return the problems."""
    user = record.get("user") or user_name(lab.dir, host_name)
    if not is_root():
        return [f"cannot delete OS user {user} and {sudoers_path(user)}: not root"]
    return _remove(lab, host_name, user)


def _check_traversable(home: Path, what: str) -> None:
    """Fail naming the directory when a new user (in no group of ours) cannot pass a parent of home."""
    for d in reversed(home.parents):
        if not d.exists():
            break  # created below with mode 0755
        mode = stat.S_IMODE(os.stat(d).st_mode)
        if not mode & stat.S_IXOTH:
            raise LabError(f"{what}: a new OS user cannot reach {home}: directory {d} is not "
                           f"traversable (mode {mode:04o}); chmod o+x {d} or use another --dir")


def _check_reusable(user: str, what: str) -> None:
    """Fail when an OS user of that name exists but was not made by this add-on."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return
    if pw.pw_gecos != COMMENT:
        raise LabError(f"{what}: OS user {user} exists but is not a cutpilot lab user "
                       f"(comment {pw.pw_gecos!r}); left alone")


def _ensure_user(user: str, home: Path, what: str) -> pwd.struct_passwd:
    """Create the user (own group, /bin/sh, no password, home not created), or repair an old one."""
    try:
        pwd.getpwnam(user)
        _passwd_tool([USERMOD, "-d", str(home), "-s", "/bin/sh", "-p", "*", "-e", "", user], what)
    except KeyError:
        group = ["-g", user] if _group_exists(user) else ["-U"]  # a group left by a crash
        _passwd_tool([USERADD, *group, "-M", "-d", str(home), "-s", "/bin/sh", "-c", COMMENT,
                      "-p", "*", user], what)
    return pwd.getpwnam(user)


def _group_exists(name: str) -> bool:
    """Tell whether an OS group of that name exists."""
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def _passwd_tool(argv: List[str], what: str, ok=(0,)) -> int:
    """Run useradd/usermod/userdel, retrying while another process holds the passwd lock."""
    deadline = time.monotonic() + PASSWD_LOCK_TIMEOUT_S
    delay = 0.05
    while True:
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        if res.returncode in ok:
            return res.returncode
        locked = "lock" in res.stderr.lower()
        if not locked or time.monotonic() + delay > deadline:
            raise LabError(f"{what}: {' '.join(shlex.quote(a) for a in argv)} failed "
                           f"(exit {res.returncode}): {res.stderr.strip()}")
        time.sleep(delay)  # back off: another lab edits /etc/passwd right now
        delay = min(delay * 2, 1.0)


def _make_home(pw: pwd.struct_passwd, home: Path, client_pub: str) -> None:
    """Create home (0700), ~/.ssh (0700) and ~/.ssh/authorized_keys (0600), all owned by the user."""
    home.parent.mkdir(mode=0o755, exist_ok=True)
    os.chmod(home.parent, 0o755)
    home.mkdir(mode=0o700, exist_ok=True)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    write_atomic(keys, client_pub if client_pub.endswith("\n") else client_pub + "\n", 0o600)
    for path, mode in ((home, 0o700), (ssh_dir, 0o700), (keys, 0o600)):
        os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(path, mode)


def _install_sudoers(user: str, text: str, what: str) -> Path:
    """Put text in /etc/sudoers.d/cutpilot-lab-USER (0440) only after `visudo -cf` accepted it.

    A drop-in that sudo cannot parse breaks sudo for the whole machine, so the text is
    checked in a file sudo never reads (its name has a '.'), then renamed into place."""
    final = sudoers_path(user)
    trial = SUDOERS_DIR / f".{final.name}.{os.getpid()}.check"
    fd = os.open(trial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o440)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chown(trial, 0, 0)
        os.chmod(trial, 0o440)
        res = subprocess.run([VISUDO, "-cf", str(trial)], stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=30)
        if res.returncode != 0:
            raise LabError(f"{what}: the sudoers line for {user} fails `visudo -cf`, not installed: "
                           f"{(res.stdout + res.stderr).strip()}")
        os.replace(trial, final)
    finally:
        trial.unlink(missing_ok=True)
    return final


def _remove(lab: Lab, host_name: str, user: str) -> List[str]:
    """Undo start(): kill the user's processes, remove its sudoers file and user; return the problems."""
    problems = []
    try:
        pw: Optional[pwd.struct_passwd] = pwd.getpwnam(user)
    except KeyError:
        pw = None
    if pw is not None and pw.pw_gecos != COMMENT:
        return [f"OS user {user} is not a cutpilot lab user; left alone"]
    if pw is not None:
        left = _kill_user_processes(pw.pw_uid)
        if left:
            problems.append(f"processes of {user} still alive: {sorted(left)}")
    for path in (sudoers_path(user), SUDO_TS_DIR / user):
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            problems.append(f"cannot remove {path}: {e.strerror}")
    if pw is not None:
        try:
            if _passwd_tool([USERDEL, user], f"ops on lab host '{host_name}'", ok=(0, 8)) == 8:
                # 8: "currently used by a process": zombies nobody reaped (the live ones are killed)
                _passwd_tool([USERDEL, "-f", user], f"ops on lab host '{host_name}'")
        except LabError as e:
            problems.append(str(e))
    try:
        sshd.set_login_user(lab, host_name, user, None)
    except (LabError, OSError, KeyError) as e:
        problems.append(f"cannot forget {user} in the sshd_config of '{host_name}': {e}")
    return problems


def _uid_processes(uid: int) -> dict:
    """Return pid -> state letter of the processes whose real, effective or saved uid is uid."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", encoding="utf-8", errors="replace") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if str(uid) in fields.get("Uid", "").split()[:3]:
            found[int(name)] = fields.get("State", "?").split()[0]
    return found


def _kill_user_processes(uid: int) -> set:
    """SIGKILL every process of uid until none runs (bounded); return the survivors.

    Zombies are waited for too (userdel counts them), but not reported: their parent may
    be a PID 1 that never reaps, and userdel -f copes with them."""
    deadline = time.monotonic() + STOP_TIMEOUT_S
    found = _uid_processes(uid)
    while found and time.monotonic() < deadline:
        live = [pid for pid, st in found.items() if st not in ("Z", "X")]
        for pid in live:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if not live and time.monotonic() > deadline - STOP_TIMEOUT_S + 1.0:
            break  # only zombies, for a second already
        time.sleep(0.05)  # a killed process goes once its parent (an sshd, root) reaps it
        found = _uid_processes(uid)
    return {pid for pid, st in found.items() if st not in ("Z", "X")}
