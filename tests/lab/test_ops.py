"""End-to-end tests of `lab ops`: a real OS user with real sudo, logged in through the host's real sshd."""

import os
import pwd
import re
import stat
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from labcase import LabCase, proc_start, read_env_file  # noqa: E402
from lablib import core, ops, sshd  # noqa: E402


def getent(database: str, name: str) -> subprocess.CompletedProcess:
    """Look a name up in passwd or group as the system does."""
    return subprocess.run(["getent", database, name], capture_output=True, text=True, timeout=30)


class OpsTest(LabCase):
    """Each case starts its own lab; `lab ops` adds a real Unix user with passwordless sudo."""

    def setUp(self):
        """Skip unless root: the add-on changes /etc/passwd and /etc/sudoers.d."""
        if os.geteuid() != 0:
            self.skipTest("lab ops creates OS users and sudoers files: it needs root (CI runs as root)")

    def up_with_ops(self, *hosts: str) -> tuple:
        """Start a lab with the given hosts, run `lab ops` on the first; return (DIR, user, home)."""
        d = self.make_lab_dir()
        self.lab("up", "--dir", d, *hosts)
        out = self.lab("ops", "--dir", d, hosts[0]).stdout
        env = read_env_file(Path(d, "hosts", hosts[0], "ops.env"))
        user, home = env["LAB_OPS_USER"], env["LAB_OPS_HOME"]
        self.addCleanup(self._forget_user, user)
        self.assertIn(f"-l {user} {hosts[0]}", out)
        return d, user, home

    def _forget_user(self, user: str) -> None:
        """Safety net after `lab down`: never leave a test's OS user or sudoers file on the machine."""
        if getent("passwd", user).returncode == 0 and pwd.getpwnam(user).pw_gecos == ops.COMMENT:
            subprocess.run(["pkill", "-KILL", "-u", user], capture_output=True)
            subprocess.run(["userdel", user], capture_output=True)
        ops.sudoers_path(user).unlink(missing_ok=True)

    def ssh_key(self, d: str, host: str, key: Path, user: str, command: str) -> subprocess.CompletedProcess:
        """ssh to a lab host as user offering only key (not the lab's client key, no agent)."""
        port = self.state(d)["hosts"][host]["port"]
        return subprocess.run(
            ["ssh", "-F", "/dev/null", "-p", str(port), "-i", str(key), "-l", user,
             "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={d}/known_hosts", "-o", "GlobalKnownHostsFile=/dev/null",
             "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5", "127.0.0.1", command],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    def new_key(self, d: str, name: str) -> Path:
        """Create a fresh ed25519 key in DIR and return its private half."""
        key = Path(d, name)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
                       check=True, capture_output=True, timeout=30)
        return key

    def assert_refused(self, res: subprocess.CompletedProcess, what: str) -> None:
        """Assert that sshd refused the key (not that the connection failed for another reason)."""
        self.assertEqual(res.returncode, 255, f"{what} was let in: {res.stdout!r}")
        self.assertIn("Permission denied (publickey)", res.stderr, what)

    def test_login_and_sudo(self):
        """The ops user logs in with the lab key, is itself, has its HOME and PATH, and sudo -n gives root."""
        d, user, home = self.up_with_ops("a", "b")
        self.assertEqual(user, ops.user_name(d, "a"))
        self.assertRegex(user, r"^cpo[0-9a-f]{8}$")
        self.assertNotEqual(user, ops.user_name(d, "b"), "hosts of one lab must not share a user")
        self.assertEqual(home, f"{d}/hosts/a/users/{user}")
        res = self.ssh(d, "a", 'id -un; sudo -n id -u; echo "$HOME|$PATH|$CUTPILOT_LAB_DIR|$CUTPILOT_LAB_HOST"',
                       "-l", user)
        name, uid, env = res.stdout.strip().splitlines()
        self.assertEqual(name, user)
        self.assertEqual(uid, "0", "passwordless sudo does not give root")
        self.assertEqual(env, f"{home}|{d}/hosts/a/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                              f"/sbin:/bin|{d}|a")
        pw = pwd.getpwnam(user)
        self.assertEqual((pw.pw_dir, pw.pw_shell), (home, "/bin/sh"))
        self.assertNotEqual(pw.pw_uid, 0)
        for path, mode in ((home, 0o700), (f"{home}/.ssh", 0o700), (f"{home}/.ssh/authorized_keys", 0o600)):
            st = os.stat(path)
            self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (pw.pw_uid, mode), path)
        # Under sudo the login's PATH (the host's bin/ first) and the lab markers stay.
        under_sudo = self.ssh(d, "a", 'sudo -n sh -c \'echo "$PATH|$CUTPILOT_LAB_HOST"\'', "-l", user)
        self.assertEqual(under_sudo.stdout.strip(), f"{d}/hosts/a/bin:/usr/local/sbin:/usr/local/bin:"
                                                    "/usr/sbin:/usr/bin:/sbin:/bin|a")
        sudoers = ops.sudoers_path(user)
        self.assertEqual(sudoers.read_text().splitlines()[0], f"{user} ALL=(ALL:ALL) NOPASSWD: ALL")
        self.assertEqual(stat.S_IMODE(sudoers.stat().st_mode), 0o440)
        # The main user is unchanged, and host b does not know a's ops user.
        self.assertEqual(self.ssh(d, "a", "echo $HOME").stdout.strip(), f"{d}/hosts/a/home")
        other = self.ssh(d, "b", "id -un", "-l", user, check=False)
        self.assertEqual(other.returncode, 255, "host b let in the ops user of host a")

    def test_each_user_has_only_its_own_authorized_keys(self):
        """A key in the ops user's file logs in only as it; a key in the main user's file only as that user."""
        d, user, home = self.up_with_ops("a")
        main = core.current_user()
        ops_key, main_key = self.new_key(d, "ops_only"), self.new_key(d, "main_only")
        with open(f"{home}/.ssh/authorized_keys", "a") as f:
            f.write(Path(f"{ops_key}.pub").read_text())
        main_keys = Path(d, "hosts", "a", "home", ".ssh", "authorized_keys")
        main_keys.parent.mkdir(exist_ok=True)
        main_keys.write_text(Path(f"{main_key}.pub").read_text())
        # Readable by the ops user (sshd reads key files as the user logging in): a refusal
        # below then comes from sshd's config, not from file modes.
        main_keys.parent.chmod(0o755)
        main_keys.chmod(0o644)
        res = self.ssh_key(d, "a", ops_key, user, "id -un")
        self.assertEqual((res.returncode, res.stdout.strip()), (0, user), res.stderr)
        self.assert_refused(self.ssh_key(d, "a", ops_key, main, "id -un"),
                            f"a key only in {user}'s authorized_keys, for {main}")
        res = self.ssh_key(d, "a", main_key, main, "id -un")
        self.assertEqual((res.returncode, res.stdout.strip()), (0, main), res.stderr)
        self.assert_refused(self.ssh_key(d, "a", main_key, user, "id -un"),
                            f"a key only in {main_keys}, for {user}")

    def test_down_removes_user_sudoers_and_processes(self):
        """`lab down` kills the user's processes (even unmarked ones), removes its sudoers file and the user."""
        d, user, _ = self.up_with_ops("a")
        self.assertEqual(getent("passwd", user).returncode, 0)
        # A process without the lab marker: only the stop hook can find it, and userdel refuses while it runs.
        res = self.ssh(d, "a", "env -u CUTPILOT_LAB_DIR sleep 600 </dev/null >/dev/null 2>&1 & echo $!",
                       "-l", user)
        pid = int(res.stdout.strip())
        start = proc_start(pid)
        self.assertIsNotNone(start, "the user's sleep is not running")
        self.assertEqual(pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name, user)
        out = self.lab("down", "--dir", d).stdout
        self.assertNotIn("warning", out)
        self.assertNotEqual(proc_start(pid), start, "the ops user's process survived lab down")
        self.assertEqual(getent("passwd", user).returncode, 2, f"user {user} still exists")
        self.assertEqual(getent("group", user).returncode, 2, f"group {user} still exists")
        self.assertFalse(ops.sudoers_path(user).exists(), "the sudoers file is still there")
        self.assertNotIn(user, self.state(d)["hosts"]["a"].get("login_users", {}))
        self.lab("down", "--dir", d)  # a second down has nothing left to remove and does not fail

    def test_reuses_and_repairs_a_left_over_user(self):
        """A user left by a crashed lab (wrong shell, sudoers gone) is reused and repaired by `lab ops`."""
        d, user, home = self.up_with_ops("a")
        uid = pwd.getpwnam(user).pw_uid
        subprocess.run(["usermod", "-s", "/usr/sbin/nologin", user], check=True, capture_output=True)
        ops.sudoers_path(user).unlink()
        Path(home, ".ssh", "authorized_keys").unlink()
        self.lab("ops", "--dir", d, "a")
        pw = pwd.getpwnam(user)
        self.assertEqual((pw.pw_uid, pw.pw_shell), (uid, "/bin/sh"))
        res = self.ssh(d, "a", "id -un; sudo -n id -u", "-l", user)
        self.assertEqual(res.stdout.split(), [user, "0"])

    def test_restart_keeps_the_user(self):
        """sshd_config() rendered from lab.json (as a restarted sshd is) is the running one, ops user included."""
        d, user, home = self.up_with_ops("a")
        port = self.state(d)["hosts"]["a"]["port"]
        running = Path(d, "hosts", "a", "sshd_config").read_text()
        self.assertRegex(running, rf"(?m)^AllowUsers {re.escape(core.current_user())} {user}$")
        self.assertIn(f"Match User {user}\n  AuthorizedKeysFile %h/.ssh/authorized_keys\n  SetEnv HOME={home} ",
                      running)
        self.assertEqual(sshd.sshd_config(core.Lab(d), "a", port, sshd.openssh_version()), running)

    def test_a_bad_sudoers_line_never_lands(self):
        """A sudoers text visudo rejects fails clearly and leaves /etc/sudoers.d as it was."""
        before = sorted(os.listdir(ops.SUDOERS_DIR))
        with self.assertRaisesRegex(core.LabError, "fails `visudo -cf`, not installed"):
            ops._install_sudoers("cpotest0000", "cpotest0000 ALL=(ALL NOPASSWD ALL\n", "ops test")
        self.assertEqual(sorted(os.listdir(ops.SUDOERS_DIR)), before)
        res = subprocess.run(["sudo", "-n", "true"], capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 0, f"sudo is broken: {res.stderr}")

    def test_needs_root(self):
        """Without root `lab ops` fails saying why and creates no user, file or record."""
        d = self.make_lab_dir()
        self.lab("up", "--dir", d, "a")
        before = Path(d, "lab.json").read_bytes()
        lab = core.Lab(d)
        real = ops.is_root
        ops.is_root = lambda: False
        try:
            with self.assertRaisesRegex(core.LabError, "needs root"):
                ops.start(lab, "a")
        finally:
            ops.is_root = real
        user = ops.user_name(d, "a")
        self.assertEqual(getent("passwd", user).returncode, 2)
        self.assertFalse(ops.sudoers_path(user).exists())
        self.assertFalse(Path(d, "hosts", "a", "users").exists())
        self.assertEqual(Path(d, "lab.json").read_bytes(), before)


if __name__ == "__main__":
    unittest.main()
