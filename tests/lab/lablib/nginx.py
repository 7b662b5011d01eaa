"""`lab nginx`: nginx on a lab host, with its own prefix and port, serving DIR/hosts/NAME/www."""

import html
import os
import pwd
import urllib.error
import urllib.request
from pathlib import Path

from .core import Lab, file_size, is_root, write_atomic

DEFAULT_NGINX = "/usr/sbin/nginx"
READY_TIMEOUT_S = 10.0
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_binary() -> Path:
    """Return the nginx program ($CUTPILOT_LAB_NGINX overrides /usr/sbin/nginx)."""
    return Path(os.environ.get("CUTPILOT_LAB_NGINX", DEFAULT_NGINX))


def worker_user() -> str:
    """Return the OS user nginx workers run as when the lab runs as root."""
    for name in ("www-data", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return "root"


def q(path: Path) -> str:
    """Quote a path for nginx.conf."""
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_conf(prefix: Path, www: Path, host_name: str, port: int) -> str:
    """Return nginx.conf: every pid, lock, log and temp path inside prefix."""
    mime = "include /etc/nginx/mime.types;" if Path("/etc/nginx/mime.types").exists() \
        else "types { text/html html; text/plain txt; }"
    user = f"user {worker_user()};\n" if is_root() else ""
    temps = "".join(f"    {t}_temp_path {q(prefix / 'tmp' / t)};\n" for t in TEMP_PATHS)
    return (f"# nginx of lab host {host_name} (written by tests/lab/lab)\n"
            f"{user}"
            "worker_processes 1;\n"
            f"pid {q(prefix / 'nginx.pid')};\n"
            f"lock_file {q(prefix / 'nginx.lock')};\n"
            f"error_log {q(prefix / 'logs' / 'error.log')} notice;\n"
            "env CUTPILOT_LAB_DIR;\n"
            "env CUTPILOT_LAB_HOST;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"    {mime}\n"
            "    default_type application/octet-stream;\n"
            f"    access_log {q(prefix / 'logs' / 'access.log')};\n"
            f"{temps}"
            "    server {\n"
            f"        listen 127.0.0.1:{port};\n"
            f"        server_name {host_name} localhost;\n"
            f"        root {q(www)};\n"
            "        index index.html;\n"
            "    }\n"
            "}\n")


def start(lab: Lab, host_name: str) -> dict:
    """Start nginx for host_name; return what lab.json records."""
    hdir = lab.host_dir(host_name)
    binary = lab.require_binary(host_name, "nginx", nginx_binary())
    prefix, www = hdir / "nginx", hdir / "www"
    conf, error_log, out = prefix / "nginx.conf", prefix / "logs" / "error.log", prefix / "logs" / "nginx.out"
    if is_root():
        lab.check_reachable(www / "index.html", worker_user(), f"nginx on lab host '{host_name}'")
    for d in (prefix, prefix / "logs", prefix / "tmp", www):
        d.mkdir(mode=0o755, exist_ok=True)
    index = www / "index.html"
    if not index.exists():
        name = html.escape(host_name)
        write_atomic(index, f"<!doctype html>\n<title>lab host {name}</title>\n"
                            f"<h1>cutpilot lab host {name}</h1>\n")

    def attempt(port: int) -> dict:
        """Start nginx on port and wait until it serves the index page."""
        write_atomic(conf, render_conf(prefix, www, host_name, port))
        since = file_size(error_log)
        pid = lab.spawn([binary, "-p", f"{prefix}/", "-c", conf, "-e", error_log, "-g", "daemon off;"],
                        host_name, "nginx", out)

        def ready() -> bool:
            """Tell whether nginx answers; fail if it exited."""
            lab.expect_running(pid, error_log, f"nginx on lab host '{host_name}'", since)
            return _answers(port, host_name)

        lab.wait_until(ready, READY_TIMEOUT_S, f"nginx on lab host '{host_name}' (port {port}, log {error_log})")
        return {"port": port}

    port = lab.with_free_port(attempt)["port"]
    env = {"NGINX_PORT": port, "NGINX_PREFIX": prefix, "NGINX_CONF": conf, "NGINX_ROOT": www,
           "NGINX_URL": f"http://127.0.0.1:{port}/"}
    lab.write_env_file(host_name, "nginx", env)
    return {"port": port, "host": "127.0.0.1", "prefix": prefix, "conf": conf, "root": www, "log": error_log,
            "hint": f"curl http://127.0.0.1:{port}/"}


def _answers(port: int, host_name: str) -> bool:
    """Tell whether nginx serves this host's index page."""
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via $http_proxy
        with opener.open(f"http://127.0.0.1:{port}/", timeout=2) as r:
            return r.status == 200 and host_name.encode() in r.read()
    except (OSError, urllib.error.URLError):
        return False
