"""OpenSSH and cutpilot on the same ssh configs against real lab sshd: same outcome, same route.

Each case is an ssh_config shaped like a real one. The case runs `ssh -F CFG -o BatchMode=yes
HOST true` and cutpilot's transport (ssh_probe: SshSession::open, then `true`) and asserts that
both connect or both refuse; where both connect, that every lab sshd saw the same logins (which
hosts, so which hops, as which user, with which key: sshd's "Accepted publickey" lines). A
refusal by cutpilot must name the host and the reason the case expects.
"""

import getpass
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lab"))
from labcase import LabCase  # noqa: E402

PROBE = os.environ.get("CUTPILOT_SSH_PROBE", "")
HOSTS = ("w1", "w2", "bastion", "b2")
CERT_HOST = "wc"  # w1's host key with a host certificate, served by a second sshd
ACCEPTED = re.compile(r"Accepted publickey for (\S+) from \S+ port \d+ ssh2: (\S+) (\S+)")
ME = getpass.getuser()


def run(argv, env=None, stdin=subprocess.DEVNULL, check=True):
    """Run argv (no shell); fail loudly when check and it fails."""
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, stdin=stdin)
    if check and res.returncode != 0:
        raise AssertionError(f"{argv} failed: {res.stderr}")
    return res


class Matrix:
    """The lab, its keys and agents, and the case list."""

    def __init__(self, d: Path, state: dict):
        self.d = d
        self.port = {n: state["hosts"][n]["port"] for n in HOSTS}
        self.hostkey = {n: state["hosts"][n]["host_key"] for n in HOSTS}
        self.k0 = str(d / "id_ed25519")
        self.kh = str(d / "known_hosts")
        keys = d / "keys"
        keys.mkdir()
        self.keys = keys
        for name in ("ka", "kb", "kc", "kd", "ke", "kf", "kg", "kenc"):
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret" if name == "kenc" else "",
                 "-C", name, "-f", str(keys / name)])
        self.fp = {name: self.fingerprint(str(keys / (name + ".pub")))
                   for name in ("ka", "kb", "kc", "kd", "ke", "kf", "kg", "kenc")}
        self.fp["k0"] = self.fingerprint(self.k0 + ".pub")
        # w1 also accepts ka, kb and kenc, and user certificates signed by the user CA.
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "user-ca", "-f", str(keys / "user_ca")])
        ca = (keys / "user_ca.pub").read_text().strip()
        auth = d / "hosts" / "w1" / "authorized_keys"
        extra = "".join((keys / (n + ".pub")).read_text() for n in ("ka", "kb", "kenc"))
        auth.write_text(auth.read_text() + extra + f"cert-authority {ca}\n")
        # kc is authorised only through its certificate; kd's certificate sits beside it.
        for name in ("kc", "kd"):
            run(["ssh-keygen", "-q", "-s", str(keys / "user_ca"), "-I", f"{name}-cert", "-n", ME,
                 "-V", "-1h:+1d", str(keys / (name + ".pub"))])
        shutil.move(str(keys / "kc-cert.pub"), str(keys / "kc-user.cert"))
        self.agents = {}
        self.cert_sshd = None

    def start_cert_host(self):
        """A second sshd on w1's host key that also presents a host certificate (HOSTCA-signed)."""
        keys, w1 = self.keys, self.d / "hosts" / "w1"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "host-ca", "-f", str(keys / "host_ca")])
        shutil.copy(w1 / "ssh_host_ed25519_key.pub", keys / "wc_host.pub")
        run(["ssh-keygen", "-q", "-s", str(keys / "host_ca"), "-h", "-I", "wc", "-n", "127.0.0.1,web1.prod",
             "-V", "-1h:+1d", str(keys / "wc_host.pub")])
        self.host_ca = " ".join((keys / "host_ca.pub").read_text().split()[:2])
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        hdir = self.d / "hosts" / CERT_HOST
        hdir.mkdir()
        conf = [line for line in (w1 / "sshd_config").read_text().splitlines()
                if not line.startswith(("Port ", "PidFile "))]
        conf += [f"Port {port}", f"PidFile {hdir}/sshd.pid", f"HostCertificate {keys}/wc_host-cert.pub"]
        (hdir / "sshd_config").write_text("\n".join(conf) + "\n")
        log = open(hdir / "sshd.log", "a")
        self.cert_sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(hdir / "sshd_config")],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True)
        listening = threading.Event()

        def copy():  # sshd's stderr to its log; says when it listens
            for line in self.cert_sshd.stderr:
                log.write(line)
                log.flush()
                if "Server listening" in line:
                    listening.set()
            listening.set()

        threading.Thread(target=copy, daemon=True).start()
        if not listening.wait(30) or self.cert_sshd.poll() is not None:
            raise AssertionError(f"the certificate sshd did not start: {(hdir / 'sshd.log').read_text()}")
        self.port[CERT_HOST] = port
        self.hostkey[CERT_HOST] = self.hostkey["w1"]

    @staticmethod
    def fingerprint(pub: str) -> str:
        return run(["ssh-keygen", "-lf", pub]).stdout.split()[1]

    def agent(self, *names: str) -> str:
        """Start an ssh-agent holding the keys (in that order); return its socket."""
        key = ",".join(names)
        if key in self.agents:
            return self.agents[key][1]
        sock = str(self.d / f"agent-{len(self.agents)}.sock")
        proc = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        # It prints SSH_AUTH_SOCK=... once it listens.
        ready = proc.stdout.readline()
        if "SSH_AUTH_SOCK" not in ready:
            raise AssertionError("ssh-agent did not start")
        # ssh-add reads kenc's passphrase from an askpass program, never a terminal.
        askpass = self.d / "askpass"
        askpass.write_text("#!/bin/sh\necho secret\n")
        askpass.chmod(0o700)
        env = dict(os.environ, SSH_AUTH_SOCK=sock, SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force")
        for n in names:
            path = self.k0 if n == "k0" else str(self.keys / n)
            run(["ssh-add", "-q", path], env=env, stdin=subprocess.DEVNULL)
        self.agents[key] = (proc, sock)
        return sock

    def stop_agents(self):
        if self.cert_sshd:
            self.cert_sshd.terminate()
            self.cert_sshd.wait(timeout=30)
        for proc, _ in self.agents.values():
            proc.terminate()
            proc.wait(timeout=30)

    def host_block(self, alias: str, host: str, *extra: str, known: str = None) -> str:
        """A Host block that reaches lab host `host` as the lab's does."""
        lines = [f"Host {alias}", "  HostName 127.0.0.1", f"  Port {self.port[host]}",
                 f"  User {ME}", f"  IdentityFile {self.k0}", "  IdentitiesOnly yes",
                 f"  UserKnownHostsFile {known or self.kh}", "  GlobalKnownHostsFile none",
                 "  ConnectTimeout 10"]
        return "\n".join(lines[:1] + [f"  {e}" for e in extra] + lines[1:]) + "\n"

    def logins(self) -> dict:
        """Every lab host's sshd log size, to read what a run added."""
        return {n: (self.d / "hosts" / n / "sshd.log").stat().st_size for n in self.port}

    def accepted_since(self, sizes: dict) -> list:
        """The logins each host accepted since sizes: [(host, user, key type, fingerprint)]."""
        out = []
        for n in self.port:
            with open(self.d / "hosts" / n / "sshd.log", "rb") as f:
                f.seek(sizes[n])
                for line in f.read().decode(errors="replace").splitlines():
                    m = ACCEPTED.search(line)
                    if m:
                        out.append((n, m.group(1), m.group(2), m.group(3)))
        return sorted(out)


class SshMatrixTest(LabCase):
    """OpenSSH and cutpilot agree on every construct."""

    def test_matrix(self):
        self.assertTrue(PROBE and os.access(PROBE, os.X_OK), "CUTPILOT_SSH_PROBE must name ssh_probe")
        d = Path(self.make_lab_dir())
        self.lab("up", "--dir", str(d), *HOSTS)
        m = Matrix(d, self.state(str(d)))
        self.addCleanup(m.stop_agents)
        m.start_cert_host()
        from ssh_matrix_cases import cases  # noqa: E402 (beside this file)
        results = []
        for case in cases(m):
            with self.subTest(case=case["name"]):
                results.append(self.run_case(m, case))
        agree = sum(1 for r in results if r)
        print(f"\nssh matrix: {agree} of {len(results)} cases behave as OpenSSH does", file=sys.stderr)
        self.assertGreaterEqual(len(results), 40)

    def run_case(self, m: Matrix, case: dict) -> bool:
        name = case["name"]
        cfg = m.d / f"case-{name}.conf"
        cfg.write_text(case["config"])
        for path, text in case.get("files", {}).items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        env = dict(os.environ)
        env.pop("SSH_AUTH_SOCK", None)
        if case.get("agent"):
            env["SSH_AUTH_SOCK"] = m.agent(*case["agent"])
        host = case.get("host", "w1")
        before = m.logins()
        ssh = subprocess.run(["ssh", "-F", str(cfg), "-o", "BatchMode=yes", host, "true"],
                             capture_output=True, text=True, timeout=60, env=env,
                             stdin=subprocess.DEVNULL)
        ssh_logins = m.accepted_since(before)
        before = m.logins()
        probe = subprocess.run([PROBE, str(cfg), host], capture_output=True, text=True, timeout=60,
                               env=env, stdin=subprocess.DEVNULL)
        probe_logins = m.accepted_since(before)
        report = (f"case {name}:\n--- ssh rc={ssh.returncode}: {ssh.stderr.strip()}\n  {ssh_logins}\n"
                  f"--- cutpilot rc={probe.returncode}: {probe.stderr.strip()}\n  {probe_logins}")
        expect = case["expect"]
        ssh_ok, probe_ok = ssh.returncode == 0, probe.returncode == 0
        if case.get("scan_via"):
            # libssh 0.10 takes no certificate host key: cutpilot asks ssh-keyscan for the
            # certificate through the same jump host, one more login there (and only there).
            ssh_logins = sorted(ssh_logins + [x for x in ssh_logins if x[0] == case["scan_via"]])
        if expect == "divergent":
            # libssh cannot do what the list allows: cutpilot refuses, naming the option.
            self.assertTrue(ssh_ok, report)
            self.assertFalse(probe_ok, report)
            self.assertRegex(probe.stderr, case["reason"], report)
            return False
        self.assertEqual(ssh_ok, expect == "connect", "OpenSSH itself: " + report)
        self.assertEqual(probe_ok, ssh_ok, report)
        if ssh_ok:
            self.assertEqual(probe_logins, ssh_logins, report)
            if "route" in case:
                self.assertEqual([(h, fp) for h, _, _, fp in probe_logins], sorted(case["route"]), report)
        else:
            self.assertIn(host, probe.stderr, report)
            self.assertRegex(probe.stderr, case["reason"], report)
            self.assertEqual(probe_logins, ssh_logins, report)
        return True


if __name__ == "__main__":
    unittest.main()
