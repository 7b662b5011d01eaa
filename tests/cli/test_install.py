"""cutpilot installed like a tool: `cmake --install BUILD --prefix P` and the .deb of
`cpack -G DEB`, then `cutpilot hosts` against real lab hosts from the installed files."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from labcase import LabCase  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("CUTPILOT_BUILD_DIR", str(ROOT / "build")))
INSTALLED = ["bin/cutpilot", "libexec/cutpilot/cutpilot-agent", "share/man/man1/cutpilot.1",
             "share/man/man5/cutpilot-plan.5", "share/bash-completion/completions/cutpilot",
             "share/zsh/vendor-completions/_cutpilot"]


class InstallTest(LabCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cp-install-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.dir = self.make_lab_dir()
        self.lab("up", "--dir", self.dir, "source", "target")

    def run_ok(self, argv, **kw):
        res = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300,
                             stdin=subprocess.DEVNULL, **kw)
        self.assertEqual(res.returncode, 0, f"{' '.join(map(str, argv))}:\n{res.stdout}{res.stderr}")
        return res

    def hosts(self, prefix):
        """`cutpilot hosts --json` from PREFIX/bin against the two-host lab, with no CUTPILOT_AGENT:
        the cockpit must find its agent by itself."""
        plan = Path(self.dir, "plan.toml")
        plan.write_text('[plan]\nname = "installed"\nssh_config = "${env:CUTPILOT_LAB}/ssh_config"\n'
                        '[hosts.source]\n[hosts.target]\n')
        env = {k: v for k, v in os.environ.items() if k != "CUTPILOT_AGENT"}
        env["CUTPILOT_LAB"] = self.dir
        return subprocess.run([str(Path(prefix, "bin/cutpilot")), "hosts", str(plan), "--json"],
                              capture_output=True, text=True, timeout=180, env=env,
                              stdin=subprocess.DEVNULL)

    def assert_both_hosts_ready(self, res):
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        rows = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
        ready = {r.get("host") for r in rows if r.get("state", "ready") == "ready"}
        self.assertEqual(ready, {"source", "target"}, res.stdout)

    def test_an_installed_cutpilot_finds_its_agent_in_libexec_and_reaches_the_lab(self):
        prefix = Path(self.tmp, "prefix")
        self.run_ok(["cmake", "--install", BUILD, "--prefix", prefix])
        for path in INSTALLED:
            self.assertTrue(Path(prefix, path).is_file(), f"{path} is not installed")
        self.assertFalse(Path(prefix, "bin/cutpilot-agent").exists())
        built = self.run_ok([BUILD / "bin/cutpilot", "--version"]).stdout
        self.assertEqual(self.run_ok([prefix / "bin/cutpilot", "--version"]).stdout, built)
        agent = self.run_ok([prefix / "libexec/cutpilot/cutpilot-agent", "--version"]).stdout
        self.assertRegex(agent, r"^cutpilot-agent \S+ \(git \S+, protocol \d+\)\n$")

        self.assert_both_hosts_ready(self.hosts(prefix))

        # Without the libexec agent, the error names where the cockpit looked.
        os.unlink(Path(prefix, "libexec/cutpilot/cutpilot-agent"))
        res = self.hosts(prefix)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn(str(Path(prefix, "libexec/cutpilot/cutpilot-agent")), res.stderr)

    def test_the_deb_declares_its_dependencies_and_its_files_run(self):
        if not shutil.which("dpkg-deb") or not shutil.which("cpack"):
            self.skipTest("cpack or dpkg-deb is not installed")
        out = Path(self.tmp, "deb")
        self.run_ok(["cpack", "-G", "DEB", "--config", BUILD / "CPackConfig.cmake", "-B", out],
                    cwd=BUILD)
        debs = sorted(out.glob("*.deb"))
        self.assertEqual(len(debs), 1, list(out.iterdir()))
        info = self.run_ok(["dpkg-deb", "-f", debs[0], "Package", "Depends"]).stdout
        self.assertIn("Package: cutpilot", info)
        for dep in ("libssh", "libncurses", "openssh-client"):
            self.assertIn(dep, info, "the .deb does not declare " + dep)
        files = self.run_ok(["dpkg-deb", "-c", debs[0]]).stdout
        for path in INSTALLED:
            self.assertIn("./usr/" + path, files)
        root = Path(self.tmp, "root")
        self.run_ok(["dpkg-deb", "-x", debs[0], root])
        self.assert_both_hosts_ready(self.hosts(root / "usr"))


if __name__ == "__main__":
    import unittest
    unittest.main()
