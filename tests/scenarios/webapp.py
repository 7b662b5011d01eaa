#!/usr/bin/env python3
"""A stand-in for a scenario's Rails application (mongrel, unicorn): python3 webapp.py CONFIG.

Debian has neither mongrel nor the write-ups' apps; this serves what the scenarios look at.
CONFIG holds "key: value" lines:
  address, port          where it listens; cert and key: TLS when given
  site                   its name in the replies
  pghost, pgport, pguser, password, database
                         its PostgreSQL, by psql
  home, title, count_sql GET HOME answers "TITLE (SITE): COUNT_SQL's answer"
  take, insert_sql       GET TAKE+N runs INSERT_SQL with {n} replaced by N and answers "ok N"
  maintenance            a file: while it exists, every request gets 503 and its content
"""

import http.server
import os
import ssl
import subprocess
import sys

CONF = dict(line.split(": ", 1) for line in open(sys.argv[1]).read().splitlines() if ": " in line)


def sql(query):
    env = dict(os.environ, PGPASSWORD=CONF["password"], PGAPPNAME="webapp")
    res = subprocess.run(["psql", "-X", "-At", "-h", CONF["pghost"], "-p", CONF["pgport"], "-U", CONF["pguser"],
                          "-d", CONF["database"], "-v", "ON_ERROR_STOP=1", "-c", query],
                         capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise RuntimeError(res.stderr.strip())
    return res.stdout.strip()


class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        page = CONF.get("maintenance")
        if page and os.path.exists(page):
            with open(page) as f:
                return self.reply(503, f.read())
        try:
            if self.path == CONF["home"]:
                return self.reply(200, f"{CONF['title']} ({CONF['site']}): {sql(CONF['count_sql'])}\n")
            if self.path.startswith(CONF["take"]):
                n = int(self.path[len(CONF["take"]):])
                sql(CONF["insert_sql"].replace("{n}", str(n)))
                return self.reply(200, f"ok {n}\n")
        except (RuntimeError, ValueError) as e:
            return self.reply(500, f"error: {e}\n")
        return self.reply(404, "not found\n")

    def log_message(self, *args):
        pass


def main():
    server = http.server.ThreadingHTTPServer((CONF["address"], int(CONF["port"])), Handler)
    if CONF.get("cert"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(CONF["cert"], CONF["key"])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
