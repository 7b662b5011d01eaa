"""Write-up 003: a Rails + PostgreSQL shop moves to a new server by a checklist
(plans/examples/rails-postgres-checklist.toml).

The world, on lab hosts `old`, `new` and `ops`:
  - old and new each run PostgreSQL (`lab postgres`): old has shopweb_production (role
    shopweb, with a password), new has the deploy's empty `shop` (role shop);
  - the application (a Python stand-in for Rails under unicorn, started and stopped by an
    init script in the host's init.d): GET / counts the orders, GET /order?id=N takes one.
    On old it listens on 127.0.0.1 behind old's nginx, which terminates TLS for the
    production name on old's own address (127.A.B.10:443) and answers 503 with
    public/system/maintenance.html while that file exists; on new it serves TLS itself on
    new's address (.20) for both names;
  - the background worker, `./script/delayed_job start|stop` in the app: each run of it says
    in a shared log which host it runs on, and "TWICE" if another host's worker was alive;
  - stand-ins on each host's login PATH for what cannot run here: ufw (the rules it would
    install, in a file), systemctl (reload postgresql and nginx: pg_ctl reload and nginx -s
    reload, the real ones), crontab (the host's table, in a file), bundle exec whenever (writes
    the app's schedule into it) and certbot (records its request: no ACME server here);
  - ops runs Knot (`lab dns`): shop.example.org is old's address, one-hour TTL.
A client orders at the production address for the whole run and keeps what was acknowledged.
"""

import os
import ssl
import subprocess
import unittest
from pathlib import Path

from scenariocase import EXAMPLES, Client, ScenarioCase, https_get, wait_for, write_file

PLAN = str(EXAMPLES / "rails-postgres-checklist.toml")
DOMAIN = "shop.example.org"
NEW_NAME = "prod2.shop.example.org"
APP_HOSTS = ("old", "new")
OLD_PASSWORD, NEW_PASSWORD = "shopweb-lab-password", "shop-lab-password"
SCHEDULE = "0 3 * * * cd APP && RAILS_ENV=production bundle exec rake ofn:cache:check\n"

# start|stop a process from a pid file; DAEMON is its command line.
SERVICE = r'''#!/bin/sh
pidf="{pidfile}"
running() {{ [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; }}
case $1 in
  start)
    if running; then echo "{what} is running already"; exit 0; fi
    {prelude}
    setsid {daemon} < /dev/null >> "{log}" 2>&1 &
    echo $! > "$pidf"; echo "started {what} (pid $(cat "$pidf"))" ;;
  stop)
    if running; then
      pid=$(cat "$pidf"); kill "$pid"
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
      echo "stopped {what} (pid $pid)"
    else
      echo "{what} is not running"
    fi
    rm -f "$pidf" ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
'''

WORKER = r'''#!/bin/sh
# The delayed_job worker: a line in the shared log per job, naming its host.
trap 'echo "stop {host}" >> "{log}"; exit 0' TERM
echo "start {host}" >> "{log}"
while :; do echo "job {host}" >> "{log}"; sleep 0.2; done
'''

# Another host's worker alive when this one starts: the one thing the write-up guards against.
WORKER_PRELUDE = ('for p in "{workers}"/*.pid; do [ "$p" = "$pidf" ] || ! [ -f "$p" ] || '
                  '! kill -0 "$(cat "$p")" 2>/dev/null || echo "TWICE: {host} started beside $p" >> "{log}"; done')

UFW = r'''#!/bin/sh
# ufw allow|delete allow RULE...: the rules, one per line, in a file (no firewall here).
f="{rules}"
touch "$f"
case $1 in
  allow) shift; echo "allow $*" >> "$f" ;;
  delete) shift; shift; grep -vxF "allow $*" "$f" > "$f.new" || true; mv "$f.new" "$f" ;;
  *) echo "ufw stand-in: $*" >&2; exit 2 ;;
esac
echo "Rule updated"
'''

SYSTEMCTL = r'''#!/bin/sh
# systemctl reload postgresql|nginx, done as the units would.
case "$1 $2" in
  "reload postgresql") exec runuser -u postgres -- "{pgbin}/pg_ctl" reload -s -D "{pgdata}" ;;
  "reload nginx") exec nginx -s reload ;;
  *) echo "systemctl stand-in: $*" >&2; exit 2 ;;
esac
'''

CRONTAB = r'''#!/bin/sh
# crontab -l | -r | FILE: this host's table, in a file (never the machine's own cron).
f="{table}"
case $1 in
  -l) [ -f "$f" ] || {{ echo "no crontab for $(id -un)" >&2; exit 1; }}; cat "$f" ;;
  -r) [ -f "$f" ] || {{ echo "no crontab for $(id -un)" >&2; exit 1; }}; rm -f "$f" ;;
  *) cat "$1" > "$f" ;;
esac
'''

BUNDLE = r'''#!/bin/sh
# bundle exec whenever --update-crontab|--clear-crontab: the app's schedule into the table.
[ "$1 $2" = "exec whenever" ] || {{ echo "bundle stand-in: $*" >&2; exit 2; }}
case $3 in
  --update-crontab) cat config/schedule.cron > "{table}" ;;
  --clear-crontab) rm -f "{table}" ;;
esac
echo "[write] crontab file updated"
'''

CERTBOT = '#!/bin/sh\n# certbot: the request, recorded (no ACME server here).\necho "$*" >> "{log}"\necho "Congratulations!"\n'

NGINX_CONF = '''user root;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log notice;
events {{ worker_connections 256; }}
http {{
  access_log {prefix}/access.log;
  client_body_temp_path {prefix}/tmp/body;
  proxy_temp_path {prefix}/tmp/proxy;
  fastcgi_temp_path {prefix}/tmp/fastcgi;
  uwsgi_temp_path {prefix}/tmp/uwsgi;
  scgi_temp_path {prefix}/tmp/scgi;
  include {site};
}}
'''

SITE = '''upstream unicorn {{ server 127.0.0.1:{port}; }}

server {{
  listen {ip}:443 ssl;
  server_name {domain};
  ssl_certificate {certs}/fullchain.pem;
  ssl_certificate_key {certs}/privkey.pem;
  root {public};
  error_page 503 /system/maintenance.html;
  location = /system/maintenance.html {{ }}
  location / {{
    if (-f $document_root/system/maintenance.html) {{ return 503; }}
    proxy_pass http://unicorn;
  }}
}}
'''


class RailsChecklist(ScenarioCase):
    PLAN = PLAN

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("the world needs PostgreSQL's OS user, nginx and port 443: root")
        super().setUp()
        self.web_world(APP_HOSTS, "ops")
        self.make_certs(DOMAIN, NEW_NAME)
        self.jobs_log = Path(self.dir, "delayed_job.log")
        self.fill_databases()
        for host in APP_HOSTS:
            self.deploy(host)
            self.addCleanup(self.service, host, "unicorn", "stop")
            self.addCleanup(self.service, host, "delayed_job", "stop")
        self.addCleanup(self.stop_nginx)
        self.hba_before = self.pg_hba().read_bytes()
        self.dns_update(self.dns, f"update delete {DOMAIN} A", f"update add {DOMAIN} 3600 A {self.ip['old']}")
        for host in APP_HOSTS:
            self.service(host, "unicorn", "start")
        self.service("old", "delayed_job", "start")
        res = subprocess.run([str(self.hdir("old") / "bin" / "nginx")], capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        wait_for(lambda: self.home("old").startswith("Shop (old)"), 60, "old's shop")
        wait_for(lambda: self.home("new").startswith("Shop (new)"), 60, "new's shop (the deploy)")
        self.plan_env = {
            "SHOP_SSH_CONFIG": f"{self.dir}/ssh_config", "SHOP_USER": "root", "SHOP_OPS_USER": "root",
            "SHOP_OLD_HOST": "old", "SHOP_NEW_HOST": "new", "SHOP_OPS_HOST": "ops",
            "SHOP_NEW_PEER_ADDRESS": "127.0.0.1",
            "SHOP_DOMAIN": DOMAIN, "SHOP_NEW_NAME": NEW_NAME, "SHOP_ZONE": self.dns["DNS_ZONE"],
            "SHOP_DNS_SERVER": f"127.0.0.1:{self.dns['DNS_PORT']}", "SHOP_DNS_KEY": self.dns["DNS_TSIG_NAME"],
            "SHOP_DNS_SECRET": self.dns["DNS_TSIG_SECRET"],
            "SHOP_RESOLVER_A": f"127.0.0.1:{self.dns['DNS_PORT']}",
            "SHOP_RESOLVER_B": f"127.0.0.1:{self.dns['DNS_PORT']}",
            "SHOP_OLD_IP": self.ip["old"], "SHOP_NEW_IP": self.ip["new"],
            "SHOP_OLD_APP": str(self.app("old")), "SHOP_NEW_APP": str(self.app("new")),
            "SHOP_OLD_UNICORN": str(self.init("old", "unicorn")),
            "SHOP_NEW_UNICORN": str(self.init("new", "unicorn")),
            "SHOP_SITE": str(self.site()), "SHOP_CERTS": str(self.ca.parent),
            "SHOP_LISTEN": f"{self.ip['old']}:443", "SHOP_PG_HBA": str(self.pg_hba()),
            "SHOP_OLD_DB_ADDRESS": "127.0.0.1", "SHOP_OLD_DB_PORT": self.pg["old"]["PGPORT"],
            "SHOP_NEW_DB_SOCKET": self.pg["new"]["PGHOST"], "SHOP_NEW_DB_PORT": self.pg["new"]["PGPORT"],
            "OLD_DB_PASSWORD": OLD_PASSWORD, "NEW_DB_PASSWORD": NEW_PASSWORD,
            "SHOP_CA_FILE": str(self.ca),
        }

    # ---- the world -----------------------------------------------------------------------

    def hdir(self, host) -> Path:
        return Path(self.dir, "hosts", host)

    def app(self, host) -> Path:
        return self.hdir(host) / "apps" / ("shopweb" if host == "old" else "shop")

    def init(self, host, service) -> Path:
        return self.hdir(host) / "init.d" / service

    def site(self) -> Path:
        return self.hdir("old") / "nginx" / "shop.conf"

    def pg_hba(self) -> Path:
        return Path(self.pg["old"]["PGDATA"]) / "pg_hba.conf"

    def table(self, host) -> Path:
        return self.hdir(host) / "crontab"

    def fill_databases(self):
        """Old: shopweb_production with its orders. New: the deploy's empty shop."""
        self.psql("old", "postgres", f"CREATE ROLE shopweb LOGIN PASSWORD '{OLD_PASSWORD}'")
        self.psql("old", "postgres", "CREATE DATABASE shopweb_production OWNER shopweb")
        self.psql("old", "shopweb_production", "CREATE TABLE orders (id int PRIMARY KEY, at timestamptz "
                  "NOT NULL DEFAULT now()); INSERT INTO orders (id) SELECT -i FROM generate_series(1, 1000) i",
                  user="shopweb", password=OLD_PASSWORD)
        self.psql("new", "postgres", f"CREATE ROLE shop LOGIN CREATEDB PASSWORD '{NEW_PASSWORD}'")
        self.psql("new", "postgres", "CREATE DATABASE shop OWNER shop")
        self.psql("new", "shop", "CREATE TABLE orders (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())",
                  user="shop", password=NEW_PASSWORD)

    def deploy(self, host):
        """The app as its deploy leaves it, its init scripts and the host's stand-ins."""
        app, hdir, bin_ = self.app(host), self.hdir(host), self.hdir(host) / "bin"
        current = app / "current"
        (current / "public" / "system").mkdir(parents=True)
        (current / "log").mkdir()
        (app / "hooks").mkdir()  # the git deploy's hooks
        for name in ("settings.yml", "database.yml"):
            write_file(app / "shared" / "config" / name, f"# {name} of the shop on {host}\n")
        write_file(current / "config" / "schedule.cron", SCHEDULE.replace("APP", str(current)))
        conf = {"site": host, "pguser": "shopweb" if host == "old" else "shop",
                "password": OLD_PASSWORD if host == "old" else NEW_PASSWORD,
                "database": "shopweb_production" if host == "old" else "shop",
                "pghost": "127.0.0.1", "pgport": self.pg[host]["PGPORT"], "home": "/", "title": "Shop",
                "count_sql": "SELECT count(*) || ' orders' FROM orders", "take": "/order?id=",
                "insert_sql": "INSERT INTO orders (id) VALUES ({n})"}
        if host == "old":
            conf.update(address="127.0.0.1", port=self.free_port())
            for i in range(40):
                (current / "public" / "system" / f"upload-{i:02}.png").write_bytes(os.urandom(2000 + i))
        else:
            conf.update(address=self.ip["new"], port=443, cert=self.cert, key=self.key)
        write_file(current / "config" / "unicorn.conf", "".join(f"{k}: {v}\n" for k, v in conf.items()))
        write_file(self.init(host, "unicorn"), SERVICE.format(
            pidfile=hdir / "unicorn.pid", what="unicorn", prelude=":", log=current / "log" / "unicorn.log",
            daemon=f'python3 "{self.WEBAPP}" "{current}/config/unicorn.conf"'), 0o755)
        workers = Path(self.dir, "workers")
        workers.mkdir(exist_ok=True)
        write_file(current / "script" / "delayed_job.run", WORKER.format(host=host, log=self.jobs_log), 0o755)
        write_file(current / "script" / "delayed_job", SERVICE.format(
            pidfile=workers / f"{host}.pid", what="delayed_job", log=current / "log" / "delayed_job.log",
            prelude=WORKER_PRELUDE.format(workers=workers, host=host, log=self.jobs_log),
            daemon=f'"{current}/script/delayed_job.run"'), 0o755)
        write_file(bin_ / "crontab", CRONTAB.format(table=self.table(host)), 0o755)
        write_file(bin_ / "bundle", BUNDLE.format(table=self.table(host)), 0o755)
        write_file(bin_ / "certbot", CERTBOT.format(log=hdir / "certbot.log"), 0o755)
        if host == "old":
            write_file(self.table(host), SCHEDULE.replace("APP", str(current)))
            prefix = hdir / "nginx"
            (prefix / "tmp").mkdir(parents=True)
            write_file(prefix / "nginx.conf", NGINX_CONF.format(prefix=prefix, site=self.site()))
            write_file(self.site(), SITE.format(port=conf["port"], ip=self.ip["old"], domain=DOMAIN,
                                           certs=self.ca.parent, public=current / "public"))
            write_file(bin_ / "nginx", f'#!/bin/sh\nexec /usr/sbin/nginx -p "{prefix}/" -c "{prefix}/nginx.conf" "$@"\n',
                  0o755)
            write_file(bin_ / "ufw", UFW.format(rules=hdir / "ufw.rules"), 0o755)
            write_file(bin_ / "systemctl", SYSTEMCTL.format(pgbin=self.pg["old"]["PGBIN"],
                                                       pgdata=self.pg["old"]["PGDATA"]), 0o755)

    @staticmethod
    def free_port():
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def service(self, host, name, verb):
        path = self.init(host, name) if name == "unicorn" else self.app(host) / "current" / "script" / name
        return subprocess.run([str(path), verb], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL).returncode

    def stop_nginx(self):
        try:
            os.kill(int((self.hdir("old") / "nginx" / "nginx.pid").read_text()), 15)
        except (OSError, ValueError):
            pass

    def home(self, host, name=DOMAIN):
        """The body of / at host's address under name ("STATUS BODY" when not 200, "" when none)."""
        try:
            status, body = https_get(self.ip[host], name, ssl.create_default_context(cafile=str(self.ca)), "/")
        except (OSError, ValueError, IndexError):
            return ""
        return body if status == 200 else f"{status} {body}"

    def answer(self):
        return self.dns_answer(self.dns, DOMAIN)

    def jobs(self):
        return self.jobs_log.read_text() if self.jobs_log.exists() else ""

    def orders(self, host, db, user, password):
        return {int(x) for x in self.psql(host, db, "SELECT id FROM orders", user=user, password=password).split()}

    # ---- the migration -------------------------------------------------------------------

    def test_the_checklist_moves_the_shop_its_worker_and_cron_and_switches_dns(self):
        client = Client(self.ip["old"], DOMAIN, self.ca, lambda n: f"/order?id={n}")
        client.start()
        self.addCleanup(client.stop)
        wait_for(lambda: len(client.acked) >= 20, 60, "the client's first orders")
        res = self.cutpilot(*self.run_args("--approve-all", "--on-failure", "exit"), timeout=900)
        self.assertEqual(res.returncode, 0, res.stdout[-6000:] + res.stderr[-3000:])
        acked = len(client.acked)
        wait_for(lambda: len(client.acked) >= acked + 20, 60, "orders through the old address after the run")
        client.stop()

        # Every order the production address acknowledged is in the new database, the
        # orders taken through the proxy included; the old database took none after the copy.
        new = self.orders("new", "shop", "shop", NEW_PASSWORD)
        old = self.orders("old", "shopweb_production", "shopweb", OLD_PASSWORD)
        self.assertEqual(sorted(set(client.acked) - new), [], "acknowledged orders the new database lacks")
        self.assertTrue(old < new, "the old database took orders the new one lacks")
        self.assertTrue(self.home("old").startswith("Shop (new)"), self.home("old"))
        # The background worker moved and never ran on both hosts at once.
        jobs = self.jobs()
        self.assertNotIn("TWICE", jobs)
        self.assertLess(jobs.index("stop old"), jobs.index("start new"))
        self.assertNotIn("job old", jobs[jobs.index("start new"):])
        # Uploads and configs came over; cron moved (old's table kept in a file).
        for path in (self.app("old") / "current" / "public" / "system").glob("upload-*"):
            self.assertEqual((self.app("new") / "current" / "public" / "system" / path.name).read_bytes(),
                             path.read_bytes())
        self.assertTrue((self.app("new") / "shared" / "config" / "settings.yml").exists())
        self.assertFalse(self.table("old").exists())
        self.assertIn("rake ofn:cache:check", self.table("new").read_text())
        self.assertIn(f"-d {NEW_NAME} -d {DOMAIN} --expand", (self.hdir("new") / "certbot.log").read_text())
        # DNS: the new address; the old server's firewall still lets the new one in.
        self.assertEqual(self.answer(), [["300", "IN", "A", self.ip["new"]]])
        self.assertIn("allow from 127", (self.hdir("old") / "ufw.rules").read_text())
        self.report_downtime("003")

    def test_a_client_left_on_the_old_database_stops_the_switch_and_an_abort_puts_old_back(self):
        """A report someone left running holds a connection to the old database: the check
        names it and the run stops before the proxy. The operator aborts: old serves again,
        out of maintenance, its worker back (and never beside new's), firewall, pg_hba, cron
        and DNS as they were."""
        env = dict(os.environ, PGPASSWORD=OLD_PASSWORD, PGAPPNAME="monthly-report")
        stray = subprocess.Popen([f"{self.pg['old']['PGBIN']}/psql", "-X", "-h", "127.0.0.1", "-p",
                                  self.pg["old"]["PGPORT"], "-U", "shopweb", "-d", "shopweb_production"],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
        self.addCleanup(stray.wait, 30)
        self.addCleanup(stray.stdin.close)  # psql leaves at the end of its input
        proc, out = self.start(*self.run_args("--approve-all"))
        wait_for(lambda: self.state_of("no-old-clients") == "failed" or proc.poll() is not None, 600,
                 "the check for clients of the old database to fail")
        self.assertIsNone(proc.poll(), "the run ended instead of waiting for the operator")
        out.seek(0)
        text = out.read()
        self.assertIn("1 client still connected to shopweb_production (at most 0 allowed): "
                      "shopweb from 127.0.0.1/32 (monthly-report)", text)
        self.assertEqual(self.state_of("proxy-to-new"), "pending")
        text = self.abort_run(proc, out)
        self.assertIn("downtime ended by rollback", text)
        self.assertFalse((self.app("old") / "current" / "public" / "system" / "maintenance.html").exists())
        wait_for(lambda: self.home("old").startswith("Shop (old)"), 60, "old's shop again")
        self.assertEqual(self.pg_hba().read_bytes(), self.hba_before)
        self.assertEqual((self.hdir("old") / "ufw.rules").read_text(), "")
        self.assertIn("rake ofn:cache:check", self.table("old").read_text())
        self.assertEqual(self.answer(), [["3600", "IN", "A", self.ip["old"]]])
        jobs = self.jobs()
        self.assertNotIn("TWICE", jobs)
        self.assertGreater(jobs.rindex("start old"), jobs.rindex("stop new"), jobs[-300:])
        wait_for(lambda: self.jobs().rstrip().endswith("job old"), 60, "old's worker to take jobs again")


if __name__ == "__main__":
    unittest.main()
