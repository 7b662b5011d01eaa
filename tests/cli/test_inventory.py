"""Plans whose hosts come from an Ansible inventory, through the real binary against lab hosts.

The plan names an empty ssh config, so only what the inventory says (address, port, user and
the key file) can get cutpilot to the lab hosts; known_hosts is the lab's."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from labcase import LabCase  # noqa: E402

CUTPILOT = os.environ.get("CUTPILOT_BIN", str(Path(__file__).resolve().parents[2] / "build/bin/cutpilot"))


class InventoryTest(LabCase):
    def setUp(self):
        self.dir = self.make_lab_dir()
        self.lab("up", "--dir", self.dir, "web1", "web2", "db")
        hosts = self.state(self.dir)["hosts"]
        self.port = {name: hosts[name]["port"] for name in ("web1", "web2", "db")}
        config = Path(self.dir, "ssh_config").read_text()
        self.user = re.search(r"^\s*User (\S+)", config, re.M).group(1)
        Path(self.dir, "inv").mkdir()
        Path(self.dir, "empty_ssh_config").write_text("")
        # The key file is relative to the inventory's directory, as Ansible users write it.
        Path(self.dir, "inv/inventory.ini").write_text(
            "# the lab as an ops team would list it\n"
            "[web]\n"
            f"app1 ansible_host=127.0.0.1 ansible_port={self.port['web1']}\n"
            f"app2 ansible_host=127.0.0.1 ansible_port={self.port['web2']}\n"
            "[db]\n"
            f"data1 ansible_host=127.0.0.1 ansible_port={self.port['db']}\n"
            "[all:vars]\n"
            f"ansible_user={self.user}\n"
            "ansible_ssh_private_key_file=../id_ed25519\n")
        Path(self.dir, "inv/inventory.yml").write_text(
            "all:\n"
            "  vars:\n"
            f"    ansible_user: {self.user}\n"
            "    ansible_ssh_private_key_file: ../id_ed25519\n"
            "  children:\n"
            "    web:\n"
            "      hosts:\n"
            f"        app1: {{ansible_host: 127.0.0.1, ansible_port: {self.port['web1']}}}\n"
            f"        app2: {{ansible_host: 127.0.0.1, ansible_port: {self.port['web2']}}}\n"
            "    db:\n"
            "      hosts:\n"
            f"        data1: {{ansible_host: 127.0.0.1, ansible_port: {self.port['db']}}}\n")

    def plan(self, inventory, hosts_body="", name="plan.toml"):
        path = Path(self.dir, name)
        path.write_text('[plan]\nname = "inventory test"\n'
                        'ssh_config = "${env:CUTPILOT_LAB}/empty_ssh_config"\n'
                        'known_hosts = "${env:CUTPILOT_LAB}/known_hosts"\n'
                        f'inventory = "{inventory}"\n'
                        + hosts_body +
                        '[[steps]]\nid = "ping-web"\non = "group:web"\nexec = { run = ["true"] }\n')
        return str(path)

    def cutpilot(self, *args):
        env = dict(os.environ, CUTPILOT_LAB=self.dir)
        env.pop("SSH_AUTH_SOCK", None)  # only the inventory's key may get us in
        return subprocess.run([CUTPILOT, *args], capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL, env=env)

    def test_hosts_reach_lab_hosts_named_by_an_inventory(self):
        for inventory, line in (("inv/inventory.ini", {"app1": 3, "app2": 4, "data1": 6}),
                                ("inv/inventory.yml", {"app1": 8, "app2": 9, "data1": 12})):
            with self.subTest(inventory=inventory):
                plan = self.plan(inventory, '[hosts.data1]\nrole = "db"\n')
                res = self.cutpilot("hosts", plan, "--json")
                self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
                by_host = {j["host"]: j for j in map(json.loads, res.stdout.splitlines())}
                self.assertEqual(list(by_host), ["app1", "app2", "data1"])
                for host, j in by_host.items():
                    self.assertEqual(j["state"], "ready", j)
                    self.assertIsNone(j["error"])
                self.assertEqual(by_host["app1"]["origin"], f"{inventory}:{line['app1']}")
                self.assertEqual(by_host["app2"]["origin"], f"{inventory}:{line['app2']}")
                self.assertEqual(by_host["data1"]["origin"], f"{inventory}:{line['data1']}+plan")
                # The table says where each host came from, in its last column.
                res = self.cutpilot("hosts", plan)
                self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
                header, *rows = res.stdout.splitlines()
                self.assertEqual(header.split()[-1], "FROM")
                cells = {row.split()[0]: row.split() for row in rows if " ready " in row}
                self.assertEqual(cells["app2"][-1], f"{inventory}:{line['app2']}")
                self.assertIn("3 of 3 hosts ready", res.stdout)
                res = self.cutpilot("plan", "--hosts", plan)
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertEqual(res.stdout.split(), ["app1", "app2", "data1"])
                # group:web is the inventory's web hosts, in its order, and no other.
                res = self.cutpilot("plan", plan)
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertEqual(re.findall(r"^\s+on (\S+): true$", res.stdout, re.M),
                                 ["app1", "app2"])

    def test_without_the_inventory_key_file_the_hosts_are_not_reached(self):
        # The control for the test above: the same inventory without the key fails to log in.
        ini = Path(self.dir, "inv/inventory.ini")
        ini.write_text(ini.read_text().replace("ansible_ssh_private_key_file=../id_ed25519\n", ""))
        res = self.cutpilot("hosts", self.plan("inv/inventory.ini"), "--json")
        self.assertEqual(res.returncode, 1, res.stdout)
        by_host = {j["host"]: j for j in map(json.loads, res.stdout.splitlines())}
        self.assertEqual({h: j["state"] for h, j in by_host.items()},
                         {"app1": "failed", "app2": "failed", "data1": "failed"})
        for j in by_host.values():
            self.assertIn("authentication failed", j["error"])

    def test_check_rejects_a_conflict_with_line_and_column(self):
        plan = self.plan("inv/inventory.ini", '[hosts.app1]\nrole = "web"\nport = 1\n')
        res = self.cutpilot("check", plan)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn(f"{plan}:8:1: error: 'port' in [hosts.app1] is '1', but "
                      f"inv/inventory.ini:3 sets ansible_port='{self.port['web1']}' for 'app1'",
                      res.stderr)
        # A garbled inventory names its file and line, at the plan's inventory key.
        Path(self.dir, "inv/broken.ini").write_text("[web]\napp1\n[web:kids]\napp2\n")
        res = self.cutpilot("check", self.plan("inv/broken.ini", name="broken.toml"))
        self.assertEqual(res.returncode, 1)
        self.assertRegex(res.stderr, re.escape(str(Path(self.dir, "broken.toml"))) +
                         r":5:13: error: inv/broken\.ini:3: section \[web:kids\] has an unknown kind")
        # And `hosts` on the conflicting plan connects nothing.
        res = self.cutpilot("hosts", plan)
        self.assertEqual(res.returncode, 1)
        self.assertEqual(res.stdout, "")
        self.assertFalse(Path(self.dir, "hosts/web1/home/.cache/cutpilot").exists(),
                         "nothing may be deployed from a plan with a conflict")
