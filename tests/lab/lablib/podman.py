"""Podman's Docker-compatible API service on one lab host (`lab podman --dir DIR NAME`).

Each lab host gets its own podman state under DIR/hosts/NAME/podman/ (storage,
runroot, tmpdir, file locks, networks, events), selected with CONTAINERS_CONF and
CONTAINERS_STORAGE_CONF, so it never touches the machine's podman storage and two
labs never share containers, images or locks.  The service listens on
DIR/hosts/NAME/podman/docker.sock and speaks the Docker Engine API; the image
localhost/busybox:lab is imported from the machine's busybox-static (no registry).

Shutdown: `lab down` calls stop(lab, host, record) (commands._stop_hooks) before it
kills the lab's processes: it stops and removes every container, so podman itself
unmounts their storage and removes their network namespaces, veths and firewall
rules.  As a safety net conmon and every container process carry
CUTPILOT_LAB_DIR/CUTPILOT_LAB_HOST in their environment, so the marker scan of
`lab down` kills them even without stop() (but then mounts and netns stay behind).
"""

import http.client
import io
import json
import os
import pwd
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from . import sshd
from .core import LabError, current_user
from .mounts import mounts_under

IMAGE = "localhost/busybox:lab"
SERVICE = "podman"
APPLETS = (  # linked to /bin/busybox in the image
    "sh", "ash", "sleep", "test", "[", "[[", "cat", "echo", "touch", "ls", "wget", "nc",
    "httpd", "true", "false", "env", "ps", "kill", "mkdir", "rm", "cp", "mv", "ln",
    "grep", "sed", "awk", "head", "tail", "wc", "date", "id", "hostname", "ip", "ping",
    "printf", "stat", "chmod", "chown", "du", "df", "find", "xargs", "tr", "sort",
    "uniq", "cut", "tee", "seq", "yes", "pwd", "uname", "vi", "tar", "gzip", "gunzip",
    "md5sum", "sha256sum", "dd", "netstat", "nslookup", "timeout", "usleep",
    "basename", "dirname", "readlink", "which", "pidof", "expr", "base64", "od",
    "hexdump", "less", "diff", "cmp", "uptime", "free", "top", "whoami", "crond",
)
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SOCKET_MAX = 107  # sun_path holds 108 bytes including the terminating NUL
REMOTE_VARS = ("CONTAINER_HOST", "CONTAINER_CONNECTION", "CONTAINER_SSHKEY")
LAB_LIB_ROOT = Path(__file__).resolve().parent.parent  # holds lablib/, for `python3 -m`


class PodmanError(LabError):
    """The lab podman service cannot be set up; the message names the host and the cause."""


class _UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket, as a Docker client talks to dockerd."""

    def __init__(self, path, timeout):
        super().__init__("d", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def request(sock_path, method, path, body=None, timeout=30.0):
    """Send one Docker Engine API request over the unix socket; return (status, body bytes)."""
    conn = _UnixHTTPConnection(str(sock_path), timeout)
    try:
        headers = {}
        if body is not None:
            if not isinstance(body, (bytes, bytearray)):
                body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _ping(sock_path):
    try:
        status, data = request(sock_path, "GET", "/_ping", timeout=2.0)
    except OSError:
        return False
    return status == 200 and data.strip() == b"OK"


def paths(lab, host_name):
    """Return this host's podman paths (root, socket, configs, storage, log, wrapper)."""
    host_dir = lab.host_dir(host_name)
    root = host_dir / "podman"
    names = {"socket": "docker.sock", "containers_conf": "containers.conf",
             "storage_conf": "storage.conf", "graphroot": "storage", "runroot": "run",
             "tmpdir": "tmp", "networks": "networks", "events": "events.log",
             "log": "service.log", "rootfs": "rootfs.tar", "xdg": "xdg"}
    p = {key: root / name for key, name in names.items()}
    p.update(root=root, wrapper=host_dir / "bin" / "podman", docker=host_dir / "bin" / "docker",
             healthchecks_log=root / "healthchecks.log")
    return p


def _rootless():
    return os.geteuid() != 0


def _q(value):
    """A TOML basic string."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _qlist(items):
    return "[" + ", ".join(_q(i) for i in items) + "]"


def _config_env(p):
    """The variables that select this host's isolated podman configuration."""
    env = {"CONTAINERS_CONF": str(p["containers_conf"]),
           "CONTAINERS_STORAGE_CONF": str(p["storage_conf"])}
    if _rootless():  # rootless podman keeps its runroot and pause process there
        env["XDG_RUNTIME_DIR"] = str(p["xdg"])
    return env


def _env(lab, host_name, p):
    env = dict(lab.env(host_name), **_config_env(p))
    for key in REMOTE_VARS:  # never let the CLI turn into a remote client
        env.pop(key, None)
    return env


def _netns():
    """Default network mode: bridge, or host for a non-root user without /dev/net/tun."""
    if _rootless() and not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        return "host"  # slirp4netns cannot work; API clients must ask for NetworkMode host
    return "bridge"


def _write_configs(lab, host_name, p, driver, tools):
    marker = {k: v for k, v in lab.env(host_name).items()
              if k in ("CUTPILOT_LAB_DIR", "CUTPILOT_LAB_HOST")}
    marker_list = ["%s=%s" % kv for kv in sorted(marker.items())]
    conmon_env = ["%s=%s" % kv for kv in sorted(_config_env(p).items())] + marker_list
    p["containers_conf"].write_text("\n".join([
        "# lab host %s: isolated podman, written by tests/lab/lablib/podman.py" % host_name,
        "[containers]",
        'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
        'log_driver = "k8s-file"',
        "env = %s" % _qlist(marker_list),  # the lab marker reaches every container process
        "netns = %s" % _q(_netns()),
        "[engine]",
        'runtime = "runc"',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        "events_logfile_path = %s" % _q(p["events"]),
        "tmp_dir = %s" % _q(p["tmpdir"]),
        "image_copy_tmp_dir = %s" % _q(p["tmpdir"]),
        'lock_type = "file"',  # shm locks are machine-wide; a fresh runroot would free them all
        "conmon_path = %s" % _qlist([tools["conmon"]]),
        "conmon_env_vars = %s" % _qlist(conmon_env),  # conmon and its cleanup find this config
        "[engine.runtimes]",
        "runc = %s" % _qlist([tools["runc"]]),
        "[network]",
        "network_config_dir = %s" % _q(p["networks"]),
        ""]))
    p["storage_conf"].write_text("\n".join([
        "[storage]",
        "driver = %s" % _q(driver),
        "graphroot = %s" % _q(p["graphroot"]),
        "rootless_storage_path = %s" % _q(p["graphroot"]),
        "runroot = %s" % _q(p["runroot"]),
        ""]))
    exports = dict(_config_env(p), **marker)
    p["wrapper"].parent.mkdir(parents=True, exist_ok=True)
    text = ("#!/bin/sh\n# podman of lab host %s (isolated state under %s)\n" % (host_name, p["root"])
            + "unset %s\n" % " ".join(REMOTE_VARS)
            + "".join("export %s=%s\n" % (k, shlex.quote(v)) for k, v in sorted(exports.items()))
            + 'exec %s "$@"\n' % shlex.quote(tools["podman"]))
    # `docker` too, as Debian's podman-docker gives it: a plan's `docker exec` works on the host.
    for wrapper in (p["wrapper"], p["docker"]):
        wrapper.write_text(text)
        wrapper.chmod(0o755)


def _is_static_elf(path):
    """True when the ELF file has no PT_INTERP program header (statically linked)."""
    with open(path, "rb") as fh:
        head = fh.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        fh.seek(phoff)
        table = fh.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def _preflight(host_name):
    """Find podman, runc, conmon and a static busybox, or fail naming the missing one."""
    path = os.environ.get("PATH", "")
    found = {"podman": shutil.which("podman", path=path),
             "runc": shutil.which("runc", path=path + ":" + SYSTEM_PATH),
             "conmon": shutil.which("conmon", path=path + ":" + SYSTEM_PATH + ":/usr/libexec/podman"),
             "busybox": shutil.which("busybox", path="/bin:/usr/bin:" + path)}
    for name, package in (("podman", "podman"), ("runc", "runc"), ("conmon", "conmon"),
                          ("busybox", "busybox-static")):
        if not found[name]:
            raise PodmanError("podman on lab host '%s': required binary `%s` is not installed "
                              "(apt-get install -y %s)" % (host_name, name, package))
    if not _is_static_elf(found["busybox"]):
        raise PodmanError("podman on lab host '%s': %s is not statically linked; the lab image "
                          "needs busybox-static (apt-get install -y busybox-static)"
                          % (host_name, found["busybox"]))
    return found


def _subid_hint():
    """For a non-root user without /etc/subuid or /etc/subgid entries, say so; else ''."""
    if not _rootless():
        return ""
    uid = os.geteuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    missing = []
    for name in ("/etc/subuid", "/etc/subgid"):
        try:
            with open(name) as fh:
                owners = {line.split(":", 1)[0] for line in fh if ":" in line}
        except OSError:
            owners = set()
        if user not in owners and str(uid) not in owners:
            missing.append(name)
    if not missing:
        return ""
    return ("\nrootless podman needs subordinate UID/GID ranges for user '%s', and %s has no "
            "entry for it; as root run: usermod --add-subuids 100000-165535 "
            "--add-subgids 100000-165535 %s" % (user, " and ".join(missing), user))


def build_rootfs(busybox, dest):
    """Write a tiny busybox-static root filesystem tar (applet links, /etc/passwd, /tmp) to dest."""
    with tarfile.open(dest, "w") as tar:
        def add(name, kind=tarfile.DIRTYPE, mode=0o755, data=None, link=""):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname, info.mtime = kind, mode, link, 0
            info.size = len(data) if data is not None else 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        for d in ("bin", "etc", "dev", "proc", "sys", "root", "run", "usr", "var", "var/www"):
            add(d)
        add("tmp", mode=0o1777)
        add("var/tmp", mode=0o1777)
        with open(busybox, "rb") as fh:
            add("bin/busybox", tarfile.REGTYPE, 0o755, fh.read())
        for applet in APPLETS:
            add("bin/" + applet, tarfile.SYMTYPE, 0o777, link="busybox")
        for name, target in (("sbin", "bin"), ("usr/bin", "../bin"), ("usr/sbin", "../bin")):
            add(name, tarfile.SYMTYPE, 0o777, link=target)
        add("etc/passwd", tarfile.REGTYPE, 0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        add("etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\nnogroup:x:65534:\n")


def _run(argv, env, timeout):
    try:
        res = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=timeout, cwd="/")
    except subprocess.TimeoutExpired:
        return 124, "timed out after %d s" % timeout
    return res.returncode, (res.stdout + res.stderr).strip()


def _wipe(host_name, p):
    left = mounts_under(p["root"])
    if left:
        raise PodmanError("podman on lab host '%s': mounts of an earlier run remain (%s); "
                          "stop the lab with `lab down` first" % (host_name, ", ".join(left[:3])))
    for key in ("graphroot", "runroot", "tmpdir"):
        shutil.rmtree(p[key], ignore_errors=True)


def _import_image(lab, host_name, p, tools):
    """Import the busybox image with the overlay driver, falling back to vfs; return the driver."""
    try:
        old = p["storage_conf"].read_text()
    except OSError:
        old = ""
    drivers = ("vfs",) if 'driver = "vfs"' in old else ("overlay", "vfs")
    errors = []
    for i, driver in enumerate(drivers):
        if i:  # a failed driver leaves state the next one must not see
            _wipe(host_name, p)
        for key in ("graphroot", "runroot", "tmpdir", "networks"):
            p[key].mkdir(parents=True, exist_ok=True)
        _write_configs(lab, host_name, p, driver, tools)
        env = _env(lab, host_name, p)
        if old and _run([str(p["wrapper"]), "image", "exists", IMAGE], env, 60)[0] == 0:
            return driver  # an earlier `lab podman` on this host imported it
        build_rootfs(tools["busybox"], p["rootfs"])
        rc, out = _run([str(p["wrapper"]), "import", "--quiet", "--change", 'CMD ["/bin/sh"]',
                        str(p["rootfs"]), IMAGE], env, 120)
        p["rootfs"].unlink()
        if rc == 0:
            return driver
        errors.append("with the %s driver: %s" % (driver, "\n".join(out.splitlines()[-5:])))
    raise PodmanError("podman on lab host '%s': `podman import` of %s failed %s%s"
                      % (host_name, IMAGE, "; ".join(errors), _subid_hint()))


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def start(lab, host_name):
    """Start podman's Docker API service on host_name with the lab image; return its lab.json record."""
    t0 = time.monotonic()
    p = paths(lab, host_name)  # an unknown host fails here, before anything happens
    tools = _preflight(host_name)
    sock = p["socket"]
    if len(str(sock)) > SOCKET_MAX:
        raise PodmanError("podman on lab host '%s': socket path %s is longer than the %d bytes a "
                          "unix socket allows; use a shorter --dir" % (host_name, sock, SOCKET_MAX))
    if _ping(sock):
        raise PodmanError("podman on lab host '%s': a service already answers on %s"
                          % (host_name, sock))
    p["root"].mkdir(parents=True, exist_ok=True)
    if _rootless():
        p["xdg"].mkdir(mode=0o700, exist_ok=True)
    if os.path.lexists(sock):
        os.unlink(sock)
    driver = _import_image(lab, host_name, p, tools)
    t_import = time.monotonic() - t0
    log_start = p["log"].stat().st_size if p["log"].exists() else 0
    pid = lab.spawn([tools["podman"], "system", "service", "--time", "0", "unix://%s" % sock],
                    host_name, SERVICE, p["log"], env=_env(lab, host_name, p))

    def ready():
        if _ping(sock):
            return True
        if not _alive(pid):
            with open(p["log"], errors="replace") as fh:
                fh.seek(log_start)
                text = "\n".join(fh.read().strip().splitlines()[-15:]) or "(no output)"
            raise PodmanError("podman on lab host '%s': `podman system service` (pid %d) exited; "
                              "last lines of %s:\n%s%s" % (host_name, pid, p["log"], text,
                                                          _subid_hint()))
        return False

    lab.wait_until(ready, 30, "podman API on %s (lab host '%s', log %s)" % (sock, host_name, p["log"]))
    # Health checks on their interval (no systemd timers here), and DOCKER_HOST for every
    # login on the host, as /etc/environment would give it: a plan names no lab socket.
    checker = lab.spawn([sys.executable, "-m", "lablib.healthchecks", str(sock), str(p["wrapper"])],
                        host_name, "healthchecks", p["healthchecks_log"],
                        env=dict(_env(lab, host_name, p), PYTHONPATH=str(LAB_LIB_ROOT)))
    if sshd.set_login_env(lab, host_name, {"DOCKER_HOST": "unix://%s" % sock}):
        sshd.wait_for_login(lab, host_name, current_user())
    lab.write_env_file(host_name, SERVICE, {
        "DOCKER_HOST": "unix://%s" % sock,
        "PODMAN_WRAPPER": str(p["wrapper"]),
        "CUTPILOT_LAB_IMAGE": IMAGE,
        "CONTAINERS_CONF": str(p["containers_conf"]),
        "CONTAINERS_STORAGE_CONF": str(p["storage_conf"]),
    })
    return {
        "socket": str(sock),
        "docker_host": "unix://%s" % sock,
        "wrapper": str(p["wrapper"]),
        "pid": pid,
        "healthchecks_pid": checker,
        "docker": str(p["docker"]),
        "image": IMAGE,
        "storage_driver": driver,
        "network": _netns(),
        "log": str(p["log"]),
        "hint": "%s ps   (Docker API: DOCKER_HOST=unix://%s)" % (p["wrapper"], sock),
        "import_seconds": round(t_import, 3),
        "start_seconds": round(time.monotonic() - t0, 3),
    }


def stop(lab, host_name, record=None, timeout_s=60):
    """Stop and remove host_name's containers (call before the lab kills its PIDs); return problems."""
    record = record or {}
    wrapper = record.get("wrapper") or str(lab.dir / "hosts" / host_name / "bin" / "podman")
    if not os.path.exists(wrapper):
        return []
    env = lab.env(host_name)  # the wrapper selects the lab's config and unsets remote settings
    problems = []
    deadline = time.monotonic() + timeout_s
    for argv in (["stop", "--all", "--time", "1"], ["pod", "rm", "--all", "--force"],
                 ["rm", "--all", "--force", "--time", "0"]):
        rc, out = _run([wrapper] + argv, env, max(5, int(deadline - time.monotonic())))
        if rc != 0:
            problems.append("lab host '%s': podman %s: %s" % (host_name, " ".join(argv), out[-400:]))
    return problems
