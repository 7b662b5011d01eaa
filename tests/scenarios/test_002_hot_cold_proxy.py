"""Write-up 002: a Pryv.io core moves to a new machine (plans/examples/rsync-hot-cold-proxy.toml).

The world, on lab hosts `source`, `dest`, `reg-master` and `reg-slave`:
  - source and dest each have a PRYV_CONF_ROOT (DIR/hosts/NAME/pryv) with run-core and
    stop-containers, as the deployment leaves them, and podman as their Docker API
    (`lab podman`);
  - the core: container `core` (busybox httpd on the host network, a CGI that stores each
    event as a line in the MongoDB directory and a file in the attachments directory, both
    bind mounts of the conf root), `preview` and `hfs` (sleepers with health checks);
  - nginx on the host (its own prefix in the conf root) terminates TLS for
    core1.example.org on the machine's own address (127.A.B.10 for source, .20 for dest,
    port 443) with a certificate from a CA this test makes, and proxies to the core;
    `nginx` on the login PATH is a wrapper with that prefix, so the plan's `nginx -t` works;
  - the registers run Knot (`lab dns`) serving example.org from their dns/dns.json, as
    the write-up's `reg-{master,slave}/dns/dns.json`: restart-dns renders it into the zone;
  - source serves with its data; dest is deployed, with no data.
A client posts events to the old address for the whole run and keeps the ones acknowledged.
"""

import os
import socket
import ssl
import subprocess
import unittest
from pathlib import Path

from scenariocase import EXAMPLES, Client, ScenarioCase, https_get, loopback_net, wait_for, write_file

PLAN = str(EXAMPLES / "rsync-hot-cold-proxy.toml")
NAME = "core1.example.org"
CORES = ("source", "dest")
REGISTERS = ("reg-master", "reg-slave")
CONTAINERS = ("core", "preview", "hfs")

EVENT_CGI = r'''#!/bin/sh
# POST an event: a line in the MongoDB files and an attachment, then "ok ID SITE".
id=${QUERY_STRING#id=}
case $id in ''|*[!0-9]*) printf 'Status: 400 Bad Request\r\n\r\n'; exit 0 ;; esac
site=$(cat /app/site)
head -c 2048 /dev/urandom > /attachments/.att-$id && mv /attachments/.att-$id /attachments/att-$id
echo "event $id" >> /mongo/events.log
printf 'Content-Type: text/plain\r\n\r\nok %s %s\n' "$id" "$site"
'''

CORE = r'''#!/bin/sh
# The core: serves /reg/service/info and /cgi-bin/event on the port in /app/port.
trap 'exit 0' TERM
mkdir -p /mongo /attachments
httpd -f -p "127.0.0.1:$(cat /app/port)" -h /app/www &
wait
'''

RUN_CORE = r'''#!/bin/sh
# run-core: the core's containers and its nginx (started, or reloaded when it runs).
set -e
docker start core preview hfs > /dev/null
pid=$(cat "{prefix}/nginx.pid" 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  nginx -s reload
else
  nginx < /dev/null > "{prefix}/logs/start.out" 2>&1 || { cat "{prefix}/logs/start.out" >&2; exit 1; }
fi
'''

STOP_CONTAINERS = r'''#!/bin/sh
# stop-containers: the core's containers and its nginx.
set -e
docker stop -t 2 core preview hfs > /dev/null
pid=$(cat "{prefix}/nginx.pid" 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  nginx -s stop
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
fi
'''

NGINX_CONF = '''user root;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log notice;
events {{ worker_connections 256; }}
http {{
  access_log {prefix}/logs/access.log;
  client_body_temp_path {prefix}/tmp/body;
  proxy_temp_path {prefix}/tmp/proxy;
  fastcgi_temp_path {prefix}/tmp/fastcgi;
  uwsgi_temp_path {prefix}/tmp/uwsgi;
  scgi_temp_path {prefix}/tmp/scgi;
  include {prefix}/conf/site-443.conf;
}}
'''

SITE = '''upstream core_server {{ server 127.0.0.1:{port} max_fails=3 fail_timeout=30s; }}

server {{
  listen {ip}:443 ssl;
  server_name {name};
  ssl_certificate {certs}/fullchain.pem;
  ssl_certificate_key {certs}/privkey.pem;
  location / {{ proxy_pass http://core_server; }}
}}
'''

RESTART_DNS = r'''#!/bin/sh
# restart-dns: the register's DNS serves what dns/dns.json says (a new zone serial each time).
set -e
d=$(cd "$(dirname "$0")" && pwd)
serial=$(( $(cat "$d/dns/serial" 2>/dev/null || echo 1) + 1 ))
{{
  printf '$ORIGIN example.org.\n$TTL 60\n@ SOA ns1 hostmaster %s 3600 600 86400 60\n@ NS ns1\nns1 A 127.0.0.1\n' "$serial"
  jq -r '.dns.staticDataInDomain | to_entries[] | "\(.key) A \(.value.ip)"' "$d/dns/dns.json"
}} > "{zone}.new"
mv "{zone}.new" "{zone}"
echo "$serial" > "$d/dns/serial"
knotc -b -c "{conf}" zone-reload example.org > /dev/null
'''


def tree(root: Path) -> dict:
    """Every file under root (relative path -> content)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class HotColdProxy(ScenarioCase):
    PLAN = PLAN
    CONTAINERS = CONTAINERS

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("the world needs rootful podman and nginx on port 443: root")
        super().setUp()
        self.lab("up", "--dir", self.dir, *CORES, *REGISTERS)
        for host in CORES:
            self.lab("podman", "--dir", self.dir, host, timeout=180)
        for host in REGISTERS:
            self.lab("dns", "--dir", self.dir, host)
        net = loopback_net()
        self.ip = {"source": f"{net}.10", "dest": f"{net}.20"}
        self.make_certs(NAME)
        self.certs = self.ca.parent
        for host in CORES:
            self.deploy(host)
            self.addCleanup(self.stop_nginx, host)
        self.fill_source()
        for host in REGISTERS:
            self.deploy_register(host)
        self.run_script("source", "run-core")
        wait_for(lambda: self.all_healthy("source"), 120, "the core on source to be healthy")
        wait_for(lambda: self.serves("source") == "source", 60, "source's nginx to serve its core")
        dns = {h: self.host_env(h, "dns") for h in REGISTERS}
        self.plan_env = {
            "PRYV_SSH_CONFIG": f"{self.dir}/ssh_config", "PRYV_USER": "root",
            "PRYV_SOURCE_HOST": "source", "PRYV_DEST_HOST": "dest",
            "PRYV_REG_MASTER_HOST": "reg-master", "PRYV_REG_SLAVE_HOST": "reg-slave",
            "PRYV_DEST_PEER_ADDRESS": "127.0.0.1",
            "PRYV_SOURCE_CONF": str(self.conf("source")), "PRYV_DEST_CONF": str(self.conf("dest")),
            "PRYV_REG_MASTER_CONF": str(self.conf("reg-master")),
            "PRYV_REG_SLAVE_CONF": str(self.conf("reg-slave")),
            "PRYV_CORE_SUB": "core1", "PRYV_CORE_NAME": NAME,
            "PRYV_SOURCE_IP": self.ip["source"], "PRYV_DEST_IP": self.ip["dest"],
            "PRYV_LISTEN": f"{self.ip['source']}:443", "PRYV_CERTS": str(self.certs),
            "PRYV_REG_MASTER_DNS": f"127.0.0.1:{dns['reg-master']['DNS_PORT']}",
            "PRYV_REG_SLAVE_DNS": f"127.0.0.1:{dns['reg-slave']['DNS_PORT']}",
            "PRYV_CA_FILE": str(self.ca), "PRYV_HOT_UNTIL_BELOW": "1MiB",
        }

    # ---- the world -----------------------------------------------------------------------

    def conf(self, host) -> Path:
        return Path(self.dir, "hosts", host, "pryv")

    def prefix(self, host) -> Path:
        return self.conf(host) / "core" / "nginx"

    def data(self, host, which) -> Path:
        return self.conf(host) / "core" / {"mongo": "mongodb/data", "attachments": "core/data"}[which]

    def site(self, host) -> Path:
        return self.prefix(host) / "conf" / "site-443.conf"

    def deploy(self, host):
        """What the deployment leaves: the conf root, nginx's config and the containers (created)."""
        conf, prefix = self.conf(host), self.prefix(host)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        app = conf / "app"
        write_file(app / "port", f"{port}\n")
        write_file(app / "site", f"{host}\n")
        write_file(app / "core", CORE, 0o755)
        write_file(app / "www" / "cgi-bin" / "event", EVENT_CGI, 0o755)
        write_file(app / "www" / "reg" / "service" / "info", f'{{"serial": "{host}"}}\n')
        for which in ("mongo", "attachments"):
            self.data(host, which).mkdir(parents=True)
        for d in ("logs", "tmp"):
            (prefix / d).mkdir(parents=True, exist_ok=True)
        write_file(prefix / "nginx.conf", NGINX_CONF.format(prefix=prefix))
        write_file(self.site(host), SITE.format(port=port, ip=self.ip[host], name=NAME, certs=self.certs))
        write_file(Path(self.dir, "hosts", host, "bin", "nginx"),
              f'#!/bin/sh\nexec /usr/sbin/nginx -p "{prefix}/" -c "{prefix}/nginx.conf" "$@"\n', 0o755)
        write_file(conf / "run-core", RUN_CORE.replace("{prefix}", str(prefix)), 0o755)
        write_file(conf / "stop-containers", STOP_CONTAINERS.replace("{prefix}", str(prefix)), 0o755)
        common = ["create", "--health-interval", "1s", "--health-retries", "1",
                  "--health-timeout", "5s", "localhost/busybox:lab"]
        image = common.pop()
        self.docker(host, *common, "--name", "core", "--network", "host",
                    "-v", f"{app}:/app:ro", "-v", f"{self.data(host, 'mongo')}:/mongo",
                    "-v", f"{self.data(host, 'attachments')}:/attachments",
                    "--health-cmd", f"wget -q -O /dev/null http://127.0.0.1:{port}/reg/service/info",
                    image, "/app/core")
        for name in ("preview", "hfs"):
            self.docker(host, *common, "--name", name, "--network", "none",
                        "--health-cmd", "true", image, "sh", "-c", "trap 'exit 0' TERM; sleep 86400 & wait")

    def fill_source(self):
        """The source's data: MongoDB's files and attachments, enough for a hot round or two."""
        mongo = self.data("source", "mongo")
        for i in range(4):
            (mongo / f"collection-{i}.wt").write_bytes(os.urandom(1 << 20))
        (mongo / "events.log").write_text("".join(f"event old-{i}\n" for i in range(1000)))
        attachments = self.data("source", "attachments")
        for i in range(300):
            (attachments / f"old-{i:03}").write_bytes(os.urandom(4096 + i))

    def deploy_register(self, host):
        """A register's dns.json (the core at the old address) and restart-dns, then run it."""
        dns = self.host_env(host, "dns")
        root = self.conf(host) / host
        write_file(root / "dns" / "dns.json",
              '{"dns": {"domain": "example.org", "staticDataInDomain": '
              f'{{"core1": {{"ip": "{self.ip["source"]}"}}, "sw": {{"ip": "192.0.2.44"}}}}}}}}\n')
        zone = Path(self.dir, "hosts", host, "dns", "zones", "example.org.zone")
        write_file(root / "restart-dns", RESTART_DNS.format(zone=zone, conf=dns["DNS_CONF"]), 0o755)
        self.run_script(host, f"{host}/restart-dns")
        self.assertEqual(self.answer(host), [self.ip["source"]])

    def run_script(self, host, name):
        res = self.ssh(self.dir, host, str(self.conf(host) / name), check=False)
        self.assertEqual(res.returncode, 0, f"{name} on {host}: {res.stdout}{res.stderr}")

    def answer(self, register):
        port = self.host_env(register, "dns")["DNS_PORT"]
        res = subprocess.run(["kdig", "@127.0.0.1", "-p", port, "+short", NAME, "A"], capture_output=True,
                             text=True, timeout=30, stdin=subprocess.DEVNULL)
        return res.stdout.split()

    def stop_nginx(self, host):
        try:
            os.kill(int((self.prefix(host) / "nginx.pid").read_text()), 15)
        except (OSError, ValueError):
            pass

    def serves(self, host):
        """Which core answers https://core1.example.org/ at host's address, or None."""
        try:
            status, body = https_get(self.ip[host], NAME, ssl.create_default_context(cafile=str(self.ca)),
                                     "/reg/service/info")
        except (OSError, ValueError, IndexError):
            return None
        return body.split('"')[3] if status == 200 and body.count('"') >= 4 else None

    def events(self, host):
        path = self.data(host, "mongo") / "events.log"
        return path.read_text() if path.exists() else ""


    # ---- the migration -------------------------------------------------------------------

    def test_hot_rounds_then_cold_sync_then_old_proxies_and_the_registers_answer_new(self):
        self.assertEqual(self.cutpilot("check", PLAN).returncode, 0)
        client = Client(self.ip["source"], NAME, self.ca, lambda n: f"/cgi-bin/event?id={n}", 0.02)
        client.start()
        self.addCleanup(client.stop)
        wait_for(lambda: len(client.acked) >= 20, 60, "the client's first events")
        res = self.cutpilot(*self.run_args("--approve-all", "--on-failure", "exit"), timeout=900)
        # Events keep coming through the proxy once the run is over.
        acked = len(client.acked)
        wait_for(lambda: len(client.acked) >= acked + 20, 60, "events through the old address after the run")
        client.stop()
        self.assertEqual(res.returncode, 0, res.stdout[-5000:] + res.stderr[-3000:])

        # The hot rounds repeated until a round moved little, before the cold one.
        self.assertIn("hot-mongo", res.stdout)
        self.assertRegex(res.stdout, r"hot-mongo: round 1 moved .* \(not below 1(\.0)? ?MiB\): another round")
        # Every event the old address acknowledged, before, during and after the move, is in
        # the new core's data, attachment included.
        dest_events = self.events("dest").splitlines()
        missing = sorted(set(client.acked) - {int(line.split()[1]) for line in dest_events
                                              if line.split()[1].isdigit()})
        self.assertEqual(missing, [], "acknowledged events the new core does not have")
        for n in client.acked:
            self.assertTrue((self.data("dest", "attachments") / f"att-{n}").exists(), n)
        # Both cores answered the old address in turn (source, then dest through the proxy).
        self.assertEqual(client.who, {"source", "dest"})
        # Nothing reached the old core after its final copy, though run-core booted it again
        # (the write-up's "we just boot all services"): its data is a prefix of the new one's.
        source_events = self.events("source")
        self.assertTrue(self.events("dest").startswith(source_events))
        self.assertGreater(len(self.events("dest")), len(source_events))
        src = tree(self.data("source", "attachments"))
        dst = tree(self.data("dest", "attachments"))
        self.assertEqual({k: dst.get(k) for k in src}, src)
        self.assertTrue(self.all_healthy("dest"), self.inspect("dest"))
        # The old address is served by the new core; the old nginx passed `nginx -t` and kept
        # a backup of its site.
        self.assertEqual(self.serves("source"), "dest")
        self.assertIn(f"server {self.ip['dest']}:443", self.site("source").read_text())
        self.assertIn("validation passed", res.stdout + res.stderr)
        # Both registers answer the new address.
        for host in REGISTERS:
            self.assertEqual(self.answer(host), [self.ip["dest"]], host)
        self.report_downtime("002")

    def test_an_abort_before_the_proxy_starts_puts_the_old_core_back(self):
        """Aborted at the proxy's gate: the old core is stopped, its data copied, the new core
        serves and the old nginx's site already says proxy. The rollbacks restore the site
        byte for byte, start the old core (it serves at the old address again, on its own
        data) and stop the new one; the registers were never touched."""
        site_before = self.site("source").read_bytes()
        proc, out = self.run_until_gate("proxy-start", "stop-source", "cold-mongo=final sync",
                                     "cold-attachments=final sync")
        self.assertIn(f"server {self.ip['dest']}:443", self.site("source").read_text())
        self.assertIsNone(self.serves("source"))  # in the window: nothing answers there
        text = self.abort_run(proc, out)
        self.assertIn("downtime ended by rollback", text)
        self.assertEqual(self.site("source").read_bytes(), site_before)
        wait_for(lambda: self.all_healthy("source"), 120, "the old core to be healthy again")
        self.assertEqual(self.serves("source"), "source")
        self.assertEqual({s for s, _ in self.inspect("dest").values()}, {"exited"})
        self.assertIsNone(self.serves("dest"))
        for host in REGISTERS:
            self.assertEqual(self.answer(host), [self.ip["source"]], host)

    def test_an_abort_past_the_point_of_no_return_keeps_the_proxy_and_says_why(self):
        """Aborted at the registers' gate, with the old nginx proxying: clients' writes have
        landed on the new core since, so nothing before the proxy is rolled back (the old core
        would lose them). The operator is told; the old address still reaches the new core."""
        proc, out = self.run_until_gate("dns-master", "stop-source", "cold-mongo=final sync",
                                     "cold-attachments=final sync", "proxy-start=proxy to the new core")
        text = self.abort_run(proc, out)
        self.assertIn("point of no return: the steps before it are not rolled back", text)
        self.assertIn(f"server {self.ip['dest']}:443", self.site("source").read_text())
        self.assertEqual(self.serves("source"), "dest")
        self.assertTrue(self.all_healthy("dest"), self.inspect("dest"))
        for host in REGISTERS:
            self.assertEqual(self.answer(host), [self.ip["source"]], host)


if __name__ == "__main__":
    unittest.main()
