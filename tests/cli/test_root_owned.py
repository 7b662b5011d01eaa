"""Root-owned data between hardened hosts (issue 17): each lab host has an unprivileged SSH
user with passwordless sudo (`lab ops`), the data is root's with modes 0700/0600, and the plan
says `user = ops`, `sudo = true`. The copy logs in as ops, the migration key goes to ops's own
authorized_keys (never root's), rsync runs as root on both ends, and ownership, numeric ids,
modes, setgid, symlinks, hard links and extended attributes arrive as they were. A sudo that
wants a password on the source fails the step in sudo's words and changes nothing."""

import os
import stat
import unittest
from pathlib import Path

from runcase import RunCase
from labcase import read_env_file

COPY = '''
[[steps]]
id = "copy"
on = "target"
sync = { from = "source:${lab}/hosts/source/vol/", to = "${lab}/hosts/target/vol/", numeric_ids = true, hard_links = true, xattrs = true }
[[steps]]
id = "same"
on = "target"
needs = ["copy"]
sync = { from = "source:${lab}/hosts/source/vol/", to = "${lab}/hosts/target/vol/", numeric_ids = true, hard_links = true, xattrs = true, mode = "verify" }
'''

# sudo -n as a user whose sudo wants a password for rsync, and lets the agent start.
SUDO_WANTS_A_PASSWORD = '''#!/bin/sh
case " $* " in *" rsync "*) echo "sudo: a password is required" >&2; exit 1;; esac
exec /usr/bin/sudo "$@"
'''

MIGRATION = "cutpilot-migration:"


def snapshot(root: Path) -> dict:
    """Every path under root with what a copy must keep: type, mode, owner, size, content,
    link target, xattrs, and which paths share an inode (hard links)."""
    out, inodes = {}, {}
    for path in sorted([root, *root.rglob("*")]):
        st = os.lstat(path)
        rel = str(path.relative_to(root))
        entry = {"mode": oct(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
        if stat.S_ISLNK(st.st_mode):
            entry["link"] = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            entry["data"] = path.read_bytes()
            entry["xattrs"] = {n: os.getxattr(path, n) for n in os.listxattr(path)
                               if n.startswith("user.")}
            if st.st_nlink > 1:
                entry["same_inode_as"] = inodes.setdefault(st.st_ino, rel)
        out[rel] = entry
    return out


class RootOwnedTest(RunCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("lab ops creates OS users with sudo: it needs root (CI runs as root)")
        super().setUp()
        self.ops = {}
        for host in ("source", "target"):
            self.lab("ops", "--dir", self.dir, host)
            env = read_env_file(Path(self.dir, "hosts", host, "ops.env"))
            self.ops[host] = (env["LAB_OPS_USER"], Path(env["LAB_OPS_HOME"]))
        self.extra_env = {"OPS_SOURCE": self.ops["source"][0], "OPS_TARGET": self.ops["target"][0]}
        self.vol = Path(self.dir, "hosts", "source", "vol")
        self.copy = Path(self.dir, "hosts", "target", "vol")
        self.make_volume()

    def make_volume(self):
        """A volume as Docker leaves one: root's 0700 top, files of service uids, 0600 secrets."""
        v = self.vol
        (v / "_data" / "certs").mkdir(parents=True)
        (v / "_data" / "db").mkdir()
        (v / "_data" / "db" / "base.dat").write_bytes(os.urandom(70000))
        (v / "_data" / "certs" / "key.pem").write_text("secret\n")
        os.link(v / "_data" / "db" / "base.dat", v / "_data" / "db" / "base.hardlink")
        os.symlink("../db/base.dat", v / "_data" / "certs" / "link")
        os.setxattr(v / "_data" / "db" / "base.dat", "user.cutpilot.test", b"kept")
        for path, mode, uid, gid in (
                (v, 0o700, 0, 0), (v / "_data", 0o755, 999, 999),
                (v / "_data" / "db", 0o2750, 70, 4242), (v / "_data" / "db" / "base.dat", 0o600, 70, 4242),
                (v / "_data" / "certs", 0o700, 4243, 4243),
                (v / "_data" / "certs" / "key.pem", 0o600, 4243, 4243)):
            os.chown(path, uid, gid)
            os.chmod(path, mode)  # after chown, which clears setgid
        os.lchown(v / "_data" / "certs" / "link", 4243, 4243)

    def plan_with_ops(self, source_sudo=True):
        header = ('[plan]\nname = "root-owned"\nssh_config = "${env:CUTPILOT_LAB}/ssh_config"\n'
                  '[vars]\nlab = "${env:CUTPILOT_LAB}"\n'
                  '[hosts.source]\nuser = "${env:OPS_SOURCE}"\nsudo = ' +
                  ("true" if source_sudo else "false") +
                  '\n[hosts.target]\nuser = "${env:OPS_TARGET}"\nsudo = true\n')
        path = Path(self.dir, "plan.toml")
        path.write_text(header + COPY)
        return str(path)

    def migration_lines(self, path: Path):
        return [line for line in path.read_text().splitlines() if MIGRATION in line] \
            if path.exists() else []

    def test_root_owned_volume_is_copied_as_root_while_logging_in_as_ops(self):
        ops_user, ops_home = self.ops["source"]
        # The premise: ops itself cannot read the volume.
        denied = self.ssh(self.dir, "source", f"cat {self.vol}/_data/certs/key.pem", "-l", ops_user,
                          check=False)
        self.assertNotEqual(denied.returncode, 0, "the source's ops user can read root's files")
        plan = self.plan_with_ops()
        shown = self.cutpilot("plan", plan)
        self.assertEqual(shown.returncode, 0, shown.stderr)
        self.assertIn(f"(as root via sudo on target; logs in to source as {ops_user}, rsync there "
                      "as root via sudo)", shown.stdout)
        self.assertIn("'--rsync-path=sudo -n rsync'", shown.stdout)
        before = snapshot(self.vol)
        res = self.cutpilot("run", plan, "--headless", "--approve-all", "--on-failure", "exit",
                            "--state-dir", self.state, timeout=300)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(snapshot(self.copy), before, "the copy differs from the volume")
        self.assertEqual(snapshot(self.vol), before, "the copy changed the source")
        # The key went to ops's own authorized_keys (and is gone again), never to root's.
        keys = ops_home / ".ssh" / "authorized_keys"
        self.assertIn(f"source run: target may now reach this host for the run (in {keys})",
                      res.stdout)
        self.assertIn(f"source run: revoked target's migration key (in {keys})", res.stdout)
        self.assertEqual(self.migration_lines(keys), [], "the run's key was not revoked")
        self.assertEqual(os.stat(keys).st_uid, os.stat(ops_home).st_uid)
        root_keys = Path(self.dir, "hosts", "source", "home", ".ssh", "authorized_keys")
        self.assertEqual(self.migration_lines(root_keys), [])

    def test_a_sudo_that_wants_a_password_fails_the_copy_and_changes_nothing(self):
        stand_in = Path(self.dir, "hosts", "source", "bin", "sudo")
        stand_in.parent.mkdir(exist_ok=True)
        stand_in.write_text(SUDO_WANTS_A_PASSWORD)
        stand_in.chmod(0o755)
        plan = self.plan_with_ops()
        res = self.cutpilot("run", plan, "--headless", "--approve-all", "--on-failure", "exit",
                            "--state-dir", self.state, timeout=300)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        out = res.stdout + res.stderr
        self.assertIn("sudo: a password is required", out)
        self.assertIn("needs passwordless sudo for rsync", out)
        self.assertRegex(out, r"copy.*target|target.*copy")
        self.assertFalse(any(self.copy.rglob("*")), "a refused copy wrote files on the target")

    def test_without_sudo_on_the_source_the_files_it_cannot_read_are_named(self):
        plan = self.plan_with_ops(source_sudo=False)
        shown = self.cutpilot("plan", plan)
        self.assertNotIn("rsync-path", shown.stdout)
        res = self.cutpilot("run", plan, "--headless", "--approve-all", "--on-failure", "exit",
                            "--state-dir", self.state, timeout=300)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("Permission denied", res.stdout + res.stderr)

    def test_a_command_that_says_sudo_false_runs_as_the_login_user_not_root(self):
        """Under sudo the agent is root; a command with sudo = false must not be."""
        ops_user, ops_home = self.ops["source"]
        out = Path(self.dir, "hosts", "source", "as-root")
        path = Path(self.dir, "plan.toml")
        path.write_text(
            '[plan]\nname = "who"\nssh_config = "${env:CUTPILOT_LAB}/ssh_config"\n'
            '[hosts.source]\nuser = "${env:OPS_SOURCE}"\nsudo = true\n'
            '[[steps]]\nid = "root"\non = "source"\n'
            f'exec = {{ shell = "id -un > {out}" }}\n'
            '[[steps]]\nid = "login"\non = "source"\nneeds = ["root"]\n'
            'exec = { shell = "id -un > $$HOME/as-login; echo $$HOME >> $$HOME/as-login", sudo = false }\n')
        res = self.cutpilot("run", str(path), "--headless", "--approve-all", "--on-failure", "exit",
                            "--state-dir", self.state, timeout=300)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(out.read_text(), "root\n")
        self.assertEqual((ops_home / "as-login").read_text(), f"{ops_user}\n{ops_home}\n")
        self.assertEqual(os.stat(ops_home / "as-login").st_uid, os.stat(ops_home).st_uid)

if __name__ == "__main__":
    unittest.main()
