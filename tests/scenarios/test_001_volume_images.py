"""Write-up 001: the root and data volumes of three instances move to new instances in another
region as raw images (plans/examples/volume-image-copy.toml).

The world, on lab hosts app-old, db-old, web-old (reached as an unprivileged `ops` user with
passwordless sudo, `lab ops`) and app-new, db-new, web-new:
  - each old instance's volumes are disk images in its dev/ directory, xvda (root) and xvdf
    (data): random data around long runs of zeros, as a file system leaves them; root's, mode
    0600 in a 0700 directory, so only root reads them, as with block devices;
  - `mount -o remount,ro|rw /` on each old host's PATH is a stand-in that only root may run; it
    records the root file system's mode (root-mode) and every change (mount.log);
  - each new instance has an empty images/ directory.
"""

import hashlib
import json
import os
import stat
import unittest
from pathlib import Path

from scenariocase import EXAMPLES, ScenarioCase, write_file

PLAN = str(EXAMPLES / "volume-image-copy.toml")
PAIRS = ("app", "db", "web")
VOLUMES = {"xvda": "root", "xvdf": "data"}

MOUNT = r'''#!/bin/sh
# mount -o remount,ro|rw /: a stand-in that records the root file system's mode.
[ "$(id -u)" = 0 ] || { echo "mount: only root can use \"--options\" option" >&2; exit 1; }
[ "$1 $3" = "-o /" ] || { echo "mount: this stand-in only remounts /" >&2; exit 2; }
case $2 in remount,ro) mode=ro ;; remount,rw) mode=rw ;; *) echo "mount: $2?" >&2; exit 2 ;; esac
echo "$mode" > "{host}/root-mode"
echo "$(date +%s.%N) $mode" >> "{host}/mount.log"
'''


class VolumeImages(ScenarioCase):
    PLAN = PLAN

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("the world needs `lab ops` (OS users, sudo) and root-owned volumes: root")
        super().setUp()
        self.lab("up", "--dir", self.dir, *(f"{p}-old" for p in PAIRS), *(f"{p}-new" for p in PAIRS))
        self.ops, self.source = {}, {}
        for pair in PAIRS:
            old = f"{pair}-old"
            self.lab("ops", "--dir", self.dir, old)
            self.ops[old] = self.host_env(old, "ops")["LAB_OPS_USER"]
            dev = self.dev(old)
            dev.mkdir(mode=0o700)
            for i, name in enumerate(VOLUMES):
                # Data, a hole of zeros, data: sizes differ per volume so no two images match.
                head, zeros, tail = (2 + i) << 20, (8 + 2 * PAIRS.index(pair)) << 20, 1 << 20
                data = os.urandom(head) + bytes(zeros) + os.urandom(tail)
                write_file(dev / name, "", 0o600)
                (dev / name).write_bytes(data)
                self.source[(pair, name)] = hashlib.sha256(data).hexdigest(), len(data)
            write_file(self.host(old) / "root-mode", "rw\n")
            write_file(self.host(old) / "bin" / "mount", MOUNT.replace("{host}", str(self.host(old))), 0o755)
            self.images(f"{pair}-new").mkdir(parents=True)
        self.plan_env = {"IMAGES_SSH_CONFIG": f"{self.dir}/ssh_config", "IMAGES_MIN_FREE": "64MiB",
                         "IMAGES_NEW_USER": "root"}
        for pair in PAIRS:
            up = pair.upper()
            self.plan_env.update({
                f"IMAGES_{up}_OLD": f"{pair}-old", f"IMAGES_{up}_NEW": f"{pair}-new",
                f"IMAGES_{up}_OLD_USER": self.ops[f"{pair}-old"], f"IMAGES_{up}_OLD_PEER": "127.0.0.1",
                f"IMAGES_{up}_DEV": str(self.dev(f"{pair}-old")),
                f"IMAGES_{up}_DIR": str(self.images(f"{pair}-new"))})

    def host(self, host) -> Path:
        return Path(self.dir, "hosts", host)

    def dev(self, host) -> Path:
        return self.host(host) / "dev"

    def images(self, host) -> Path:
        return self.host(host) / "images"

    def root_mode(self, pair):
        return (self.host(f"{pair}-old") / "root-mode").read_text().strip()

    def status(self):
        res = self.cutpilot("status", "--json", "--state-dir", self.state, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        return json.loads(res.stdout)

    def test_every_volume_arrives_whole_and_the_map_names_old_and_new(self):
        # The premise: the SSH user cannot read the volumes; only root can.
        denied = self.ssh(self.dir, "db-old", f"cat {self.dev('db-old')}/xvda > /dev/null", "-l",
                          self.ops["db-old"], check=False)
        self.assertNotEqual(denied.returncode, 0, "the ops user can read the volumes")
        self.assertEqual(self.cutpilot("check", PLAN).returncode, 0)

        res = self.cutpilot(*self.run_args("--approve-all", "--on-failure", "exit"), timeout=900)
        self.assertEqual(res.returncode, 0, res.stdout[-4000:] + res.stderr[-4000:])

        # Each image is its volume byte for byte, the holes kept, and only root's.
        for (pair, name), (digest, size) in self.source.items():
            image = self.images(f"{pair}-new") / f"{pair}-{VOLUMES[name]}.img"
            self.assertEqual(hashlib.sha256(image.read_bytes()).hexdigest(), digest, image)
            st = os.stat(image)
            self.assertEqual(st.st_size, size)
            self.assertLess(st.st_blocks * 512, size - (6 << 20), f"{image} is not sparse")
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        for pair in PAIRS:
            self.assertEqual([p.name for p in self.images(f"{pair}-new").iterdir()
                              if p.name.endswith(".cutpilot-partial")], [])

        # The old instances were read-only for the whole copy, and are writable again.
        steps = {s["step"]: s for s in self.status()["steps"]}
        copies = [s for s in steps.values() if s["step"].startswith("copy-")]
        self.assertEqual(len(copies), 6)
        self.assertTrue(all(c["state"] == "succeeded" for c in copies), copies)
        self.assertLessEqual(steps["read-only"]["ended"], min(c["started"] for c in copies))
        self.assertGreaterEqual(steps["writable"]["started"], max(c["ended"] for c in copies))
        for pair in PAIRS:
            self.assertEqual(self.root_mode(pair), "rw")
            log = (self.host(f"{pair}-old") / "mount.log").read_text().split()
            self.assertEqual(log[1::2], ["ro", "rw"], "one read-only window per instance")
        downtime = self.report_downtime("001")
        self.assertTrue(downtime["ended"])

        # The map of old -> new, as CSV and JSON: one row per volume, the checksums the sources'.
        csv = self.cutpilot("report", "--csv", "--state-dir", self.state, timeout=60)
        self.assertEqual(csv.returncode, 0, csv.stderr)
        lines = csv.stdout.splitlines()
        self.assertEqual(lines[0], "step,volume,old_host,old_path,new_host,new_path,size,sha256")
        rows = sorted(line.split(",") for line in lines[1:])
        expected = sorted([f"copy-{pair}-{VOLUMES[name]}", f"{pair}-{VOLUMES[name]}", f"{pair}-old",
                           f"{self.dev(f'{pair}-old')}/{name}", f"{pair}-new",
                           f"{self.images(f'{pair}-new')}/{pair}-{VOLUMES[name]}.img", str(size), digest]
                          for (pair, name), (digest, size) in self.source.items())
        self.assertEqual(rows, expected)
        as_json = self.cutpilot("report", "--json", "--state-dir", self.state, timeout=60)
        self.assertEqual(as_json.returncode, 0, as_json.stderr)
        images = json.loads(as_json.stdout)["images"]
        self.assertEqual(sorted([i["step"], i["volume"], i["old_host"], i["old_path"], i["new_host"],
                                 i["new_path"], str(i["size"]), i["sha256"]] for i in images), expected)

    def test_a_volume_missing_on_one_instance_fails_its_copy_and_every_instance_is_writable_again(self):
        """db-old's data volume was detached: its copy fails naming the host and the device, and
        the run rolls back, so no old instance is left read-only and no half image is left."""
        (self.dev("db-old") / "xvdf").unlink()
        res = self.cutpilot(*self.run_args("--approve-all", "--on-failure", "rollback"), timeout=900)
        # The failure rolls the run back: it ends as aborted (3), as an operator's abort would.
        self.assertEqual(res.returncode, 3, res.stdout[-4000:] + res.stderr[-4000:])
        self.assertIn(f"cannot copy db-old:{self.dev('db-old')}/xvdf: it does not exist", res.stdout + res.stderr)
        steps = {s["step"]: s for s in self.status()["steps"]}
        self.assertEqual(steps["copy-db-data"]["state"], "failed")
        self.assertEqual(steps["read-only"]["state"], "rolled-back")
        for pair in PAIRS:
            self.assertEqual(self.root_mode(pair), "rw", f"{pair}-old was left read-only")
            self.assertEqual([p.name for p in self.images(f"{pair}-new").iterdir()
                              if p.name.endswith(".cutpilot-partial")], [])
        self.assertFalse((self.images("db-new") / "db-data.img").exists())


if __name__ == "__main__":
    unittest.main()
