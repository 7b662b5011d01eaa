"""Write-up 000: a Docker-based IoT platform moves to a new host (plans/examples/docker-volumes.toml).

The world, on lab hosts `old` and `new`:
  - each host is reached as an unprivileged `ops` user with passwordless sudo (`lab ops`),
    and runs podman as its Docker API (`lab podman`: `docker` on PATH, DOCKER_HOST for
    logins, health checks run on their interval);
  - compose project `or` on both: or-manager-1 (the platform; serves /manager/ and, while
    its device agent is enabled, takes the MQTT broker's messages, which go to one
    subscriber only), or-postgresql-1 (writes all the time, data of uid 999 mode 0700) and
    or-proxy-1 (a TLS certificate for its own host name), each with a named volume and a
    health check;
  - the Docker volume directory is root's 0700: the ops user cannot read it;
  - old serves with the agent enabled; new is a fresh deployment (empty volumes, its own
    certificate), as the CI/CD left it.
The broker is a directory both managers share: each message taken is a line naming the
host that took it. The one thing write-up 000 guards against is a line from new.
"""

import os
import socket
import stat
import unittest
from pathlib import Path

from scenariocase import EXAMPLES, ScenarioCase, wait_for

PLAN = str(EXAMPLES / "docker-volumes.toml")
PROJECT = "or"
VOLUMES = ("or_manager-data", "or_postgresql-data", "or_proxy-data")
CONTAINERS = ("or-manager-1", "or-postgresql-1", "or-proxy-1")

AGENT = r'''#!/bin/sh
# agent enable|disable|is-disabled NAME: the platform's switch for a device agent (in /storage).
f=/storage/agents/$2
case $1 in
  enable|disable) mkdir -p /storage/agents && echo "${1}d" > "$f.new" && mv "$f.new" "$f" ;;
  is-disabled) [ "$(cat "$f" 2>/dev/null)" = disabled ] ;;
  *) echo "usage: agent enable|disable|is-disabled NAME" >&2; exit 2 ;;
esac
'''

MANAGER = r'''#!/bin/sh
# The platform's manager: serves /manager/ and, while the p1-meters agent is enabled, takes
# the broker's messages (the broker gives each to one subscriber): a line per message.
trap 'exit 0' TERM
mkdir -p /storage/agents /www/manager
echo "manager on $SITE" > /www/manager/index.html
httpd -p "127.0.0.1:$HTTP_PORT" -h /www
while :; do
  if [ "$(cat /storage/agents/p1-meters 2>/dev/null)" = enabled ]; then
    echo "$SITE" >> /broker/messages.log
    date > /storage/last-message
  fi
  sleep 0.2
done
'''

POSTGRES = r'''#!/bin/sh
# A database server's disk traffic: its data directory is uid 999's, mode 0700, always written.
trap 'exit 0' TERM
d=/var/lib/postgresql/data
[ -f $d/PG_VERSION ] || { mkdir -p $d/base && echo 15 > $d/PG_VERSION; }
chown -R 999:999 $d && chmod 700 $d
while :; do date >> $d/base/wal; sleep 0.1; done
'''

PROXY = r'''#!/bin/sh
# The proxy keeps the certificate its deployment issued for this host's name.
[ -f /deployment/cert.pem ] || { echo "CN=$SITE" > /deployment/cert.pem; chmod 600 /deployment/cert.pem; }
trap 'exit 0' TERM
sleep 86400 & wait
'''


def snapshot(root: Path) -> dict:
    """Every path under root with its type, mode, owner and content (what a copy keeps)."""
    out = {}
    for path in sorted([root, *root.rglob("*")]):
        st = os.lstat(path)
        entry = (oct(st.st_mode), st.st_uid, st.st_gid)
        if stat.S_ISREG(st.st_mode):
            entry += (path.read_bytes(),)
        out[str(path.relative_to(root))] = entry
    return out


class DockerVolumes(ScenarioCase):
    PLAN = PLAN
    CONTAINERS = CONTAINERS

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("the world needs `lab ops` (OS users, sudo) and rootful podman: root")
        super().setUp()
        self.lab("up", "--dir", self.dir, "old", "new")
        self.ops, self.site, self.http = {}, {}, {}
        for host in ("old", "new"):
            self.lab("ops", "--dir", self.dir, host)
            self.lab("podman", "--dir", self.dir, host, timeout=180)
            self.ops[host] = self.host_env(host, "ops")["LAB_OPS_USER"]
            self.site[host] = f"{host}.iot.example.com"
        self.app = Path(self.dir, "app")  # the platform's code, as its image would hold it
        (self.app / "bin").mkdir(parents=True)
        for name, text in (("agent", AGENT), ("manager", MANAGER), ("postgres", POSTGRES),
                           ("proxy", PROXY)):
            (self.app / "bin" / name).write_text(text)
            (self.app / "bin" / name).chmod(0o755)
        self.broker = Path(self.dir, "broker")
        self.broker.mkdir()
        self.messages = self.broker / "messages.log"
        for host in ("old", "new"):
            self.deploy(host)
        self.docker("old", "exec", "or-manager-1", "/opt/openremote/bin/agent", "enable", "p1-meters")
        self.fill_old()
        for host in ("old", "new"):
            wait_for(lambda h=host: self.all_healthy(h), 120, f"the platform on {host} to be healthy")
        wait_for(lambda: "old.iot" in self.read_messages(), 60, "old's agent to take a message")
        self.plan_env = {
            "IOT_SSH_CONFIG": f"{self.dir}/ssh_config",
            "IOT_OLD_HOST": "old", "IOT_NEW_HOST": "new",
            "IOT_OLD_USER": self.ops["old"], "IOT_NEW_USER": self.ops["new"],
            "IOT_NEW_PEER_ADDRESS": "127.0.0.1",
            "IOT_OLD_VOLUMES": str(self.volumes("old")), "IOT_NEW_VOLUMES": str(self.volumes("new")),
            "IOT_MANAGER_URL": f"http://127.0.0.1:{self.http['new']}/manager/",
            "IOT_MIN_FREE": "1GiB",
        }

    # ---- the world -----------------------------------------------------------------------

    def volumes(self, host) -> Path:
        return Path(self.dir, "hosts", host, "podman", "storage", "volumes")

    def deploy(self, host):
        """What the CI/CD deployment leaves: project `or`'s three containers on named volumes."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.http[host] = s.getsockname()[1]
        common = ["run", "-d", "--label", f"com.docker.compose.project={PROJECT}",
                  "--health-interval", "1s", "--health-retries", "1", "--health-timeout", "5s",
                  "-e", f"SITE={self.site[host]}", "-v", f"{self.app}:/opt/openremote:ro"]
        image = "localhost/busybox:lab"
        self.docker(host, *common, "--name", "or-manager-1", "--network", "host",
                    "-e", f"HTTP_PORT={self.http[host]}", "-v", "or_manager-data:/storage",
                    "-v", f"{self.broker}:/broker",
                    "--health-cmd", "wget -q -O /dev/null http://127.0.0.1:$HTTP_PORT/manager/",
                    image, "/opt/openremote/bin/manager")
        # No bridge network (netavark's iptables chains are machine-wide, shared by every
        # lab's podman): the manager uses the host's, the others need none.
        self.docker(host, *common, "--name", "or-postgresql-1", "--network", "none",
                    "-v", "or_postgresql-data:/var/lib/postgresql/data",
                    "--health-cmd", "test -f /var/lib/postgresql/data/PG_VERSION",
                    image, "/opt/openremote/bin/postgres")
        self.docker(host, *common, "--name", "or-proxy-1", "--network", "none",
                    "-v", "or_proxy-data:/deployment",
                    "--health-cmd", "test -s /deployment/cert.pem",
                    image, "/opt/openremote/bin/proxy")
        os.chmod(self.volumes(host), 0o700)  # as /var/lib/docker: root's alone

    def fill_old(self):
        """The old platform's assets: many files, some of a service user and 0600."""
        data = self.volumes("old") / "or_manager-data" / "_data" / "assets"
        data.mkdir()
        for i in range(200):
            (data / f"asset-{i:03}.json").write_bytes(os.urandom(2000 + i))
        secret = data / "keystore.p12"
        secret.write_bytes(os.urandom(4096))
        os.chown(secret, 1000, 1000)
        os.chmod(secret, 0o600)

    def read_messages(self):
        return self.messages.read_text() if self.messages.exists() else ""

    def agent_state(self, host):
        path = self.volumes(host) / "or_manager-data" / "_data" / "agents" / "p1-meters"
        return path.read_text().strip() if path.exists() else None


    # ---- the migration -------------------------------------------------------------------

    def test_the_volumes_move_the_agent_never_runs_twice_and_new_serves(self):
        # The premise: the SSH user cannot read the volumes; only root can.
        denied = self.ssh(self.dir, "old", f"ls {self.volumes('old')}", "-l", self.ops["old"], check=False)
        self.assertNotEqual(denied.returncode, 0, "the ops user can read the Docker volumes")
        self.assertEqual(self.cutpilot("check", PLAN).returncode, 0)
        new_cert = (self.volumes("new") / "or_proxy-data" / "_data" / "cert.pem").read_bytes()

        res = self.cutpilot(*self.run_args("--approve-all", "--on-failure", "exit"), timeout=900)
        self.assertEqual(res.returncode, 0, res.stdout[-4000:] + res.stderr[-4000:])

        # Every volume but the proxy's is on new as it was on old when old stopped: the
        # manager's as it is (its agent is disabled: it writes nothing); the database has
        # written on since new started it, after all of old's writes.
        self.assertEqual(snapshot(self.volumes("new") / "or_manager-data"),
                         snapshot(self.volumes("old") / "or_manager-data"))
        old_pg, new_pg = (snapshot(self.volumes(h) / "or_postgresql-data") for h in ("old", "new"))
        self.assertEqual(sorted(new_pg), sorted(old_pg))
        self.assertEqual(new_pg["_data/PG_VERSION"], old_pg["_data/PG_VERSION"])
        old_wal, new_wal = old_pg["_data/base/wal"][3], new_pg["_data/base/wal"][3]
        self.assertGreater(len(old_wal), 0)
        self.assertTrue(new_wal.startswith(old_wal), "writes old made before it stopped are missing")
        pg = os.stat(self.volumes("new") / "or_postgresql-data" / "_data")
        self.assertEqual((pg.st_uid, stat.S_IMODE(pg.st_mode)), (999, 0o700))
        self.assertEqual((self.volumes("new") / "or_proxy-data" / "_data" / "cert.pem").read_bytes(),
                         new_cert, "the old host's proxy volume was copied over new's certificate")
        # New runs the platform, healthy, and answers; old is stopped.
        self.assertTrue(self.all_healthy("new"), self.inspect("new"))
        self.assertEqual({s for s, _ in self.inspect("old").values()}, {"exited"})
        # The agent: disabled in both copies, and the broker never heard from new.
        self.assertEqual((self.agent_state("old"), self.agent_state("new")), ("disabled", "disabled"))
        self.assertNotIn("new.iot", self.read_messages())
        self.report_downtime("000")

    def test_an_abort_at_the_final_copy_brings_old_back_and_never_starts_new(self):
        """The operator aborts at the final copy's confirm, with old already stopped: the
        rollbacks start old's platform and its agent again; new's containers stay stopped
        (stop-docker-new has rollback = "none"), so the agent never runs on new."""
        proc, out = self.run_until_gate("final-sync", "disable-agent", "stop-old")
        self.assertEqual({s for s, _ in self.inspect("old").values()}, {"exited"})
        self.assertEqual(self.agent_state("old"), "disabled")
        text = self.abort_run(proc, out)
        self.assertIn("downtime ended by rollback", text)
        # Old is back: healthy, agent enabled, taking messages again.
        self.assertTrue(self.all_healthy("old"), self.inspect("old"))
        self.assertEqual(self.agent_state("old"), "enabled")
        before = len(self.read_messages())
        wait_for(lambda: len(self.read_messages()) > before, 60, "old's agent to take messages again")
        # New: its containers were stopped before the copy and stay stopped; its copy of the
        # data says disabled; the broker never heard from it.
        self.assertEqual({s for s, _ in self.inspect("new").values()}, {"exited"})
        self.assertEqual(self.agent_state("new"), "disabled")
        self.assertNotIn("new.iot", self.read_messages())


if __name__ == "__main__":
    unittest.main()
