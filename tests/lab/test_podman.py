"""Lab podman service: the Docker Engine API on a lab host's unix socket (tests/lab/lablib/podman.py)."""

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import unittest
import uuid
from pathlib import Path

from labcase import LAB, LabCase, marked_pids, proc_start, read_env_file

HOST = "h1"
IMAGE = "localhost/busybox:lab"


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket, the way a Docker client talks to dockerd."""

    def __init__(self, path, timeout=60):
        super().__init__("d", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def mounts_under(path):
    """Mount points at or below path."""
    with open("/proc/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    return [p for p in points if p == path or p.startswith(path + "/")]


class PodmanTest(LabCase):
    """Each case runs its own lab with one host (lab up) and stops it in cleanup (lab down)."""

    def setUp(self):
        self.dir = self.make_lab_dir()
        self.lab("up", "--dir", self.dir, HOST)

    def start_podman(self):
        t0 = time.monotonic()
        self.lab("podman", "--dir", self.dir, HOST)
        self.podman_seconds = time.monotonic() - t0
        sys.stderr.write(f"[lab podman took {self.podman_seconds:.2f} s] ")
        env = read_env_file(Path(self.dir, "hosts", HOST, "podman.env"))
        self.assertTrue(env["DOCKER_HOST"].startswith("unix://"), env)
        self.sock = env["DOCKER_HOST"][len("unix://"):]
        self.wrapper = env["PODMAN_WRAPPER"]
        self.assertEqual(env["CUTPILOT_LAB_IMAGE"], IMAGE)

    def api(self, method, path, body=None, expect=None):
        conn = UnixHTTPConnection(self.sock)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers=headers)
            resp = conn.getresponse()
            status, data = resp.status, resp.read()
        finally:
            conn.close()
        if expect is not None:
            self.assertEqual(status, expect, f"{method} {path}: {status} {data[:500]!r}")
        return status, data

    def inspect(self, name):
        return json.loads(self.api("GET", f"/containers/{name}/json", expect=200)[1])

    def podman(self, *args, check=True):
        res = subprocess.run([self.wrapper] + list(args), capture_output=True, text=True,
                             timeout=120, stdin=subprocess.DEVNULL)
        if check:
            self.assertEqual(res.returncode, 0, f"podman {' '.join(args)}: {res.stdout}{res.stderr}")
        return res

    def create_sleeper(self, healthcheck=None):
        name = "c-" + uuid.uuid4().hex[:8]
        body = {"Image": IMAGE, "Cmd": ["sleep", "600"]}
        if healthcheck:
            body["Healthcheck"] = healthcheck
        data = json.loads(self.api("POST", f"/containers/create?name={name}", body, expect=201)[1])
        self.assertRegex(data["Id"], "^[0-9a-f]{64}$")
        self.api("POST", f"/containers/{name}/start", expect=204)
        return name

    def test_api(self):
        self.start_podman()
        status, data = self.api("GET", "/_ping")
        self.assertEqual((status, data.strip()), (200, b"OK"))
        version = json.loads(self.api("GET", "/version", expect=200)[1])
        self.assertIn("ApiVersion", version)
        self.assertTrue(version["Version"], version)
        images = json.loads(self.api("GET", "/images/json", expect=200)[1])
        self.assertIn(IMAGE, [t for img in images for t in (img.get("RepoTags") or [])])
        # Isolated state: the service's storage lives in the lab host's directory.
        info = json.loads(self.api("GET", "/info", expect=200)[1])
        self.assertTrue(info["DockerRootDir"].startswith(f"{self.dir}/hosts/{HOST}/podman/"),
                        info["DockerRootDir"])
        record = self.state(self.dir)["hosts"][HOST]["services"]["podman"]
        self.assertEqual(record["socket"], self.sock)
        self.assertIn(record["pid"], record["pids"])
        self.assertLess(self.podman_seconds, 60, "lab podman is too slow")

    def test_container_health(self):
        self.start_podman()
        check = {"Test": ["CMD-SHELL", "test -f /tmp/ready"], "Interval": 2_000_000_000,
                 "Timeout": 2_000_000_000, "Retries": 1}
        name = self.create_sleeper(check)
        listed = json.loads(self.api("GET", "/containers/json", expect=200)[1])
        mine = [c for c in listed if "/" + name in c["Names"]]
        self.assertEqual(len(mine), 1, listed)
        self.assertEqual(mine[0]["State"], "running")
        state = self.inspect(name)["State"]
        self.assertTrue(state["Running"])
        self.assertIn(state["Health"]["Status"], ("starting", "unhealthy"))
        # The check fails while /tmp/ready is missing.
        self.assertNotEqual(self.podman("healthcheck", "run", name, check=False).returncode, 0)
        self.assertEqual(self.inspect(name)["State"]["Health"]["Status"], "unhealthy")
        self.podman("exec", name, "touch", "/tmp/ready")
        self.podman("healthcheck", "run", name)
        self.assertEqual(self.inspect(name)["State"]["Health"]["Status"], "healthy")
        # The limits of the lab's containers.conf reach containers created through the API.
        limits = self.podman("exec", name, "sh", "-c", "ulimit -n; ulimit -u").stdout.split()
        self.assertEqual(limits, ["1024", "1024"])
        self.api("POST", f"/containers/{name}/stop?t=1", expect=204)
        state = self.inspect(name)["State"]
        self.assertFalse(state["Running"])
        self.assertEqual(state["Status"], "exited")
        self.api("POST", f"/containers/{name}/start", expect=204)
        state = self.inspect(name)["State"]
        self.assertTrue(state["Running"])
        self.assertGreater(state["Pid"], 0)

    def test_checks_run_on_their_interval_and_logins_find_docker(self):
        """Nobody runs the check by hand: the lab runs it on its interval, as dockerd would,
        and a login on the host finds `docker` and DOCKER_HOST (a plan names no lab socket)."""
        self.start_podman()
        check = {"Test": ["CMD-SHELL", "test -f /tmp/ready"], "Interval": 500_000_000,
                 "Timeout": 2_000_000_000, "Retries": 1}
        name = self.create_sleeper(check)
        no_check = self.create_sleeper()

        def status():
            return self.inspect(name)["State"]["Health"]["Status"]

        self.wait_for(lambda: status() == "unhealthy", 60, f"{name} to fail its check")
        self.podman("exec", name, "touch", "/tmp/ready")
        self.wait_for(lambda: status() == "healthy", 60, f"{name} to pass its check")
        runs = self.inspect(name)["State"]["Health"]["Log"]
        self.assertGreaterEqual(len(runs), 2, runs)
        self.assertEqual(self.inspect(no_check)["State"]["Health"]["Status"], "")
        # Stopped and started again, the container is scheduled anew.
        self.api("POST", f"/containers/{name}/stop?t=1", expect=204)
        self.api("POST", f"/containers/{name}/start", expect=204)
        self.podman("exec", name, "rm", "/tmp/ready")
        self.wait_for(lambda: status() == "unhealthy", 60, f"{name} to fail again after a restart")
        # A login (the lab's user) gets the socket and the host's docker, which is this podman.
        env = self.ssh(self.dir, HOST, 'echo "$DOCKER_HOST"; command -v docker; docker ps --format "{{.Names}}"')
        lines = env.stdout.split()
        self.assertEqual(lines[0], f"unix://{self.sock}")
        self.assertEqual(lines[1], f"{self.dir}/hosts/{HOST}/bin/docker")
        self.assertIn(name, lines[2:])
        record = self.state(self.dir)["hosts"][HOST]["services"]
        self.assertIn(record["podman"]["healthchecks_pid"], record["healthchecks"]["pids"])

    def wait_for(self, predicate, timeout_s, what):
        """Poll predicate until it holds; fail naming what after timeout_s (a bound, not a pace)."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            self.assertLess(time.monotonic(), deadline, f"timed out waiting for {what}")
            time.sleep(0.1)

    def test_down_stops_everything(self):
        self.start_podman()
        name = self.create_sleeper()
        details = self.inspect(name)
        conmon = int(self.podman("inspect", "--format", "{{.State.ConmonPid}}", name).stdout)
        service = self.state(self.dir)["hosts"][HOST]["services"]["podman"]["pid"]
        pids = {"service": service, "conmon": conmon, "container": details["State"]["Pid"]}
        starts = {pid: proc_start(pid) for pid in pids.values()}
        for what, pid in pids.items():
            self.assertIsNotNone(starts[pid], f"{what} (pid {pid}) is not running before lab down")
        self.assertTrue(mounts_under(self.dir), "a running container has its root filesystem mounted")
        netns = details["NetworkSettings"].get("SandboxKey") or ""
        if netns:
            self.assertTrue(os.path.exists(netns), netns)
        self.lab("down", "--dir", self.dir)
        self.assert_gone(starts, "podman service, conmon or container")
        self.assertEqual(marked_pids(self.dir), [], "processes with this lab's marker remain")
        self.assertEqual(mounts_under(self.dir), [], "container mounts remain after lab down")
        if netns:  # only podman's own teardown (lablib.podman.stop) removes it
            self.assertFalse(os.path.exists(netns), f"network namespace {netns} remains")

    def test_missing_binary(self):
        empty = Path(self.dir, "empty-path")
        empty.mkdir()
        res = subprocess.run([sys.executable, str(LAB), "podman", "--dir", self.dir, HOST],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                             env=dict(os.environ, PATH=str(empty)))  # no podman on PATH
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn(f"'{HOST}'", res.stderr)
        self.assertIn("`podman` is not installed", res.stderr)
        self.assertNotIn("podman", self.state(self.dir)["hosts"][HOST].get("services", {}))
        self.assertFalse(Path(self.dir, "hosts", HOST, "podman").exists(), "nothing may be created")
        self.assertFalse(Path(self.dir, "hosts", HOST, "podman.env").exists())


if __name__ == "__main__":
    unittest.main()
