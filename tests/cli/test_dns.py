"""The dns check against a real authoritative server (Knot DNS, `lab dns`): the TTL bound a
day ahead, propagation after a switch (the wait ends when the server answers the new
address), and what the operator reads when a server answers something else."""

import base64
import json
import subprocess
import unittest
from pathlib import Path

from runcase import RunCase, wait_for
from labcase import read_env_file


class DnsTest(RunCase):
    def setUp(self):
        super().setUp()
        self.lab("dns", "--dir", self.dir, "source")
        self.dns = read_env_file(Path(self.dir, "hosts", "source", "dns.env"))
        self.server = f"127.0.0.1:{self.dns['DNS_PORT']}"

    def status(self):
        res = self.cutpilot("status", "--json", "--state-dir", self.state)
        return json.loads(res.stdout) if res.returncode == 0 else None

    def switch_www(self, address):
        """What the provider's API would do: a signed update of www's A record."""
        script = (f"server 127.0.0.1 {self.dns['DNS_PORT']}\nzone example.org\n"
                  f"update delete www.example.org A\nupdate add www.example.org 300 A {address}\nsend\n")
        key = f"{self.dns['DNS_TSIG_ALGORITHM']}:{self.dns['DNS_TSIG_NAME']}:{self.dns['DNS_TSIG_SECRET']}"
        res = subprocess.run(["knsupdate", "-y", key], input=script, capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)

    def test_a_ttl_above_the_bound_fails_naming_the_server_the_address_and_the_ttl(self):
        plan = self.plan(f'''
[[steps]]
id = "app-ttl"
on = "target"
health = {{ dns = "app.example.org", servers = ["{self.server}"], max_ttl = "5m", mode = "once" }}
[[steps]]
id = "www-ttl"
on = "target"
needs = ["app-ttl"]
health = {{ dns = "www.example.org", servers = ["{self.server}"], max_ttl = "5m", mode = "once" }}
''')
        shown = self.cutpilot("plan", plan)
        self.assertIn(f"check once that {self.server} answer www.example.org A with any address, "
                      "TTL at most 5m", shown.stdout)
        res = self.cutpilot("run", plan, "--headless", "--on-failure", "exit", "--state-dir", self.state)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        out = res.stdout + res.stderr
        self.assertIn(f"app-ttl: {self.server} is answering 192.0.2.20", out)
        self.assertIn(f"www-ttl: failed: not healthy: {self.server} (answering 192.0.2.10: TTL 3600 s, "
                      "TTL above 300 s)", out)
        status = json.loads(self.cutpilot("status", "--json", "--state-dir", self.state).stdout)
        self.assertEqual({s["step"]: s["state"] for s in status["steps"]},
                         {"app-ttl": "succeeded", "www-ttl": "failed"})

    def test_the_wait_ends_when_the_server_answers_the_switched_address(self):
        plan = self.plan(f'''
[[steps]]
id = "propagated"
on = "target"
health = {{ dns = "www.example.org", servers = ["{self.server}"], expect = "192.0.2.99", interval = "200ms", timeout = "2m" }}
''')
        proc, out = self.start("run", plan, "--headless", "--on-failure", "exit", "--state-dir", self.state)

        def waiting():
            out.seek(0)
            return f"{self.server} is answering 192.0.2.10" in out.read()
        wait_for(waiting, 60, "the check to see the old address")
        self.assertIsNone(proc.poll(), "the wait ended before the switch")
        self.switch_www("192.0.2.99")
        self.assertEqual(proc.wait(120), 0)
        out.seek(0)
        self.assertIn(f"{self.server} is answering 192.0.2.99", out.read())

    def test_a_name_the_server_does_not_know_fails_with_its_answer_code(self):
        port = self.dns["DNS_PORT"]
        plan = self.plan(f'''
[[steps]]
id = "nx"
on = "target"
health = {{ dns = "nope.example.org", servers = ["127.0.0.1:{port}"], mode = "once" }}
''')
        res = self.cutpilot("run", plan, "--headless", "--on-failure", "exit", "--state-dir", self.state)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn(f"failed: not healthy: 127.0.0.1:{port} (NXDOMAIN: no A record for nope.example.org)",
                      res.stdout)

    def update_plan(self, address="192.0.2.99", rollback_to="192.0.2.10", key_env="TSIG_SECRET"):
        return self.plan(f'''
[[steps]]
id = "switch"
on = "target"
dns = {{ update = "www.example.org", zone = "example.org", server = "{self.server}", address = "{address}", ttl = "5m", key = "{self.dns['DNS_TSIG_NAME']}", key_env = "{key_env}" }}
rollback = {{ dns = {{ update = "www.example.org", zone = "example.org", server = "{self.server}", address = "{rollback_to}", ttl = "1h", key = "{self.dns['DNS_TSIG_NAME']}", key_env = "{key_env}" }} }}
[[steps]]
id = "seen"
on = "target"
needs = ["switch"]
gate = "approve"
health = {{ dns = "www.example.org", servers = ["{self.server}"], expect = "{address}", mode = "once" }}
''')

    def answer(self):
        res = subprocess.run(["kdig", "@127.0.0.1", "-p", self.dns["DNS_PORT"], "+noall", "+answer",
                              "www.example.org", "A"], capture_output=True, text=True, timeout=30)
        return [line.split()[1::3] for line in res.stdout.splitlines()]  # [ttl, address]

    def test_a_signed_update_switches_the_name_and_an_abort_puts_it_back(self):
        self.extra_env = {"TSIG_SECRET": self.dns["DNS_TSIG_SECRET"]}
        plan = self.update_plan()
        shown = self.cutpilot("plan", plan)
        self.assertIn(f"update www.example.org A to 192.0.2.99 (TTL 5m) at {self.server} (zone "
                      f"example.org), signed with key {self.dns['DNS_TSIG_NAME']} ($TSIG_SECRET, "
                      "hmac-sha256)", shown.stdout)
        proc, out = self.start("run", plan, "--headless", "--on-failure", "exit", "--state-dir", self.state)
        wait_for(lambda: self.status() and any(s["step"] == "seen" and s["state"] == "awaiting-approval"
                                               for s in self.status()["steps"]), 60, "the gate after the switch")
        self.assertEqual(self.answer(), [["300", "192.0.2.99"]])
        out.seek(0)
        text = out.read()
        self.assertIn(f"{self.server}: www.example.org A is 192.0.2.10 (TTL 3600 s)", text)
        self.assertIn(f"{self.server}: www.example.org A is now 192.0.2.99 (TTL 300 s)", text)
        self.assertNotIn(self.dns["DNS_TSIG_SECRET"], text)
        self.assertNotIn(self.dns["DNS_TSIG_SECRET"], Path(self.state, "journal.jsonl").read_text())
        self.assertEqual(self.cutpilot("abort", "--state-dir", self.state).returncode, 0)
        self.assertEqual(proc.wait(120), 3)
        self.assertEqual(self.answer(), [["3600", "192.0.2.10"]])

    def test_a_wrong_secret_is_refused_and_changes_nothing(self):
        self.extra_env = {"TSIG_SECRET": base64.b64encode(b"not the secret" * 2).decode()}
        res = self.cutpilot("run", self.update_plan(), "--headless", "--approve-all", "--on-failure",
                            "exit", "--state-dir", self.state)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertRegex(res.stdout, r"switch: failed: the server refused the update('s signature)?: "
                                     r"(NOTAUTH|TSIG error 16)")
        self.assertEqual(self.answer(), [["3600", "192.0.2.10"]])

    def test_an_unset_secret_is_named_before_anything_runs(self):
        plan = self.update_plan(key_env="CP_TEST_NO_SUCH_SECRET")
        check = self.cutpilot("check", plan)
        self.assertIn("'key_env' in dns of step 'switch': environment variable "
                      "'CP_TEST_NO_SUCH_SECRET' is not set (the step fails without it)", check.stderr)
        res = self.cutpilot("run", plan, "--headless", "--approve-all", "--on-failure", "exit",
                            "--state-dir", self.state)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("'CP_TEST_NO_SUCH_SECRET' (key_env: the TSIG secret of key", res.stdout + res.stderr)
        self.assertEqual(self.answer(), [["3600", "192.0.2.10"]])

if __name__ == "__main__":
    unittest.main()
