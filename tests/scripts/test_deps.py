"""scripts/deps with stand-in dpkg-query, apt-get and sudo on PATH: what it would install.

The stand-ins answer like the real ones: dpkg-query prints `PACKAGE STATUS` for the packages it
knows and exits 1 with "dpkg-query: no packages found matching P" on stderr for the others (a
fresh Debian knows none of the build dependencies); apt-get only records its arguments."""

import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPS = ROOT / "scripts" / "deps"

DPKG_QUERY = r"""#!/bin/sh
# Stand-in dpkg-query -W -f=FORMAT PACKAGE...: $FAKE_UNKNOWN are unheard of, $FAKE_NOT_INSTALLED
# are known (removed, config files left), every other package is installed.
[ "$1" = -W ] || exit 2
shift 2
printf '%s\n' "$@" >>"$FAKE_LOG/dpkg-query.args"
rc=0
for p in "$@"; do
  case " $FAKE_UNKNOWN " in *" $p "*)
    echo "dpkg-query: no packages found matching $p" >&2; rc=1; continue ;;
  esac
  case " $FAKE_NOT_INSTALLED " in *" $p "*) echo "$p config-files"; continue ;; esac
  echo "$p installed"
done
exit $rc
"""

APT_GET = r"""#!/bin/sh
# Stand-in apt-get: records each call; `install` fails when $FAKE_APT_FAILS is set.
echo "$*" >>"$FAKE_LOG/apt-get.calls"
case " $* " in *" install "*) [ -z "$FAKE_APT_FAILS" ] || { echo "E: Unable to locate package" >&2; exit 100; } ;; esac
exit 0
"""

SUDO = r"""#!/bin/sh
# Stand-in sudo -n COMMAND...: runs the command (the test need not be root).
[ "$1" = -n ] && shift
exec "$@"
"""


class DepsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="cp-deps-")
        self.addCleanup(self.tmp.cleanup)
        self.bin = Path(self.tmp.name, "bin")
        self.log = Path(self.tmp.name, "log")
        self.bin.mkdir()
        self.log.mkdir()
        for name, text in (("dpkg-query", DPKG_QUERY), ("apt-get", APT_GET), ("sudo", SUDO)):
            path = self.bin / name
            path.write_text(text)
            path.chmod(0o755)

    def deps(self, unknown=(), not_installed=(), apt_fails=False):
        env = dict(os.environ, PATH=f"{self.bin}:{os.environ['PATH']}", FAKE_LOG=str(self.log),
                   FAKE_UNKNOWN=" ".join(unknown), FAKE_NOT_INSTALLED=" ".join(not_installed),
                   FAKE_APT_FAILS="1" if apt_fails else "")
        return subprocess.run([str(DEPS)], capture_output=True, text=True, timeout=60, env=env)

    def asked(self):
        """Every package scripts/deps asked dpkg-query about."""
        return set((self.log / "dpkg-query.args").read_text().split())

    def apt_calls(self):
        calls = self.log / "apt-get.calls"
        return calls.read_text().splitlines() if calls.exists() else []

    def test_unknown_and_removed_packages_are_installed_and_nothing_else(self):
        res = self.deps(unknown=["cmake", "libssh-dev", "pssh"], not_installed=["ansible", "rsync"])
        self.assertEqual(res.returncode, 0, res.stderr)
        calls = self.apt_calls()
        self.assertEqual(len(calls), 2, calls)
        self.assertEqual(calls[0].split(), ["update", "-qq"])
        words = calls[1].split()
        self.assertEqual(words[:3], ["install", "-y", "-qq"], calls[1])
        # Exactly the missing packages; never dpkg-query's own words ("dpkg-query:", "found").
        self.assertEqual(sorted(words[3:]), ["ansible", "cmake", "libssh-dev", "pssh", "rsync"])
        self.assertIn("scripts/deps: installing ansible cmake libssh-dev pssh rsync", res.stderr)

    def test_a_fresh_machine_that_knows_no_package_installs_them_all(self):
        # First ask which packages scripts/deps wants, then answer "never heard of" for all.
        self.assertEqual(self.deps().returncode, 0)
        wanted = self.asked()
        (self.log / "dpkg-query.args").unlink()
        res = self.deps(unknown=sorted(wanted))
        self.assertEqual(res.returncode, 0, res.stderr)
        calls = self.apt_calls()
        self.assertEqual(sorted(calls[-1].split()[3:]), sorted(wanted))

    def test_nothing_is_installed_when_everything_is_there(self):
        res = self.deps()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(self.apt_calls(), [])
        self.assertEqual(res.stderr, "")

    def test_every_bench_contender_is_a_dependency(self):
        self.assertEqual(self.deps().returncode, 0)
        self.assertLessEqual({"pssh", "ansible", "fpart", "pgcopydb"}, self.asked())

    def test_a_failing_install_fails_the_script(self):
        res = self.deps(unknown=["cmake"], apt_fails=True)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("cmake", res.stderr)


class BenchContendersTest(unittest.TestCase):
    """A bench with a contender missing fails, naming it and its package, before it starts a lab:
    it never prints a table with a side missing ("n/a") and exits 0."""

    def bench(self, harness):
        with tempfile.TemporaryDirectory(prefix="cp-bench-") as empty:
            return subprocess.run([sys.executable, str(ROOT / "bench" / harness / "run.py"), "--smoke"],
                                  capture_output=True, text=True, timeout=60,
                                  env=dict(os.environ, PATH=empty))

    def test_fanout_without_parallel_ssh_and_ansible_fails(self):
        res = self.bench("fanout")
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("parallel-ssh (Debian package pssh)", res.stderr)
        self.assertIn("ansible (Debian package ansible)", res.stderr)
        self.assertNotIn("n/a", res.stdout)

    def test_sync_without_fpsync_fails(self):
        res = self.bench("sync")
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("fpsync (Debian package fpart)", res.stderr)

    def test_db_without_pgcopydb_fails(self):
        res = self.bench("db")
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("pgcopydb (Debian package pgcopydb)", res.stderr)


if __name__ == "__main__":
    unittest.main()
