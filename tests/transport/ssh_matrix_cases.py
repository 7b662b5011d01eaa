"""The cases of the ssh matrix (test_ssh_matrix.py): one per construct, shaped like real configs.

expect: "connect" or "refuse" (OpenSSH and cutpilot alike), or "divergent" where libssh cannot
do what the operator's list allows (cutpilot refuses and names the option; OpenSSH connects).
reason: what cutpilot's refusal must say. route: the (host, key fingerprint) logins expected.
scan_via: the jump host cutpilot logs in to once more, to fetch the target's host certificate.
"""

import subprocess

UNKNOWN = r"unknown host key"
CHANGED = r"HOST KEY CHANGED"
REVOKED = r"REVOKED HOST KEY"
AUTH = r"authentication failed"


def cases(m):
    """Every case, built on the lab m (test_ssh_matrix.Matrix)."""
    p, k, d = m.port, m.hostkey, m.d
    fp = m.fp
    blk = m.host_block
    hop = lambda name: blk(name, name)  # noqa: E731
    kh = lambda name: f"[127.0.0.1]:{p[name]} {k[name]}\n"  # noqa: E731
    f = lambda name: str(d / name)  # noqa: E731
    out = []

    def case(name, config, expect="connect", **kw):
        out.append(dict(name=name, config=config, expect=expect, **kw))

    # --- where to go -------------------------------------------------------------------------
    case("plain_alias", blk("w1", "w1"), route=[("w1", fp["k0"])])
    case("host_then_wildcard_proxyjump",
         f"Host w1\n  HostName 127.0.0.1\n  Port {p['w1']}\n" + hop("bastion") +
         f"Host w*\n  ProxyJump bastion\n  User {m_user(m)}\n  IdentityFile {m.k0}\n  IdentitiesOnly yes\n"
         f"  UserKnownHostsFile {m.kh}\n  GlobalKnownHostsFile none\n",
         route=[("bastion", fp["k0"]), ("w1", fp["k0"])])
    case("proxyjump_two_hops_in_order", blk("w1", "w1", "ProxyJump bastion,b2") + hop("bastion") + hop("b2"),
         route=[("bastion", fp["k0"]), ("b2", fp["k0"]), ("w1", fp["k0"])])
    case("proxyjump_user_at_host_port",
         blk("w1", "w1", f"ProxyJump {m_user(m)}@127.0.0.1:{p['bastion']}") +
         f"Host 127.0.0.1\n  IdentityFile {m.k0}\n  IdentitiesOnly yes\n  UserKnownHostsFile {m.kh}\n"
         "  GlobalKnownHostsFile none\n",
         route=[("bastion", fp["k0"]), ("w1", fp["k0"])])
    case("proxyjump_hop_key_unknown", blk("w1", "w1", "ProxyJump bastion") +
         blk("bastion", "bastion", known=f("kh-no-bastion")), "refuse",
         files={f("kh-no-bastion"): kh("w1")}, reason=r"jump host bastion: No ED25519 host key is known for \[127.0.0.1\]:\d+ .*"
         r"Host key verification failed")
    # Every hop is strict, not only the last: a config that lets an earlier hop through with an
    # unknown key (OpenSSH's own -J does) does not let cutpilot through (deliberate).
    case("proxyjump_earlier_hop_lax_in_config", blk("w1", "w1", "ProxyJump bastion,b2") +
         blk("bastion", "bastion", "StrictHostKeyChecking no", known="/dev/null") + hop("b2"),
         "divergent", reason=r"jump host bastion,b2: .*Host key verification failed")
    case("proxyjump_earlier_hop_key_unknown", blk("w1", "w1", "ProxyJump bastion,b2") +
         blk("bastion", "bastion", known=f("kh-no-bastion-3")) + hop("b2"), "refuse",
         files={f("kh-no-bastion-3"): kh("w1")},
         reason=r"jump host bastion,b2: .*Host key verification failed")
    case("proxyjump_none_first_wins", blk("w1", "w1", "ProxyJump none") +
         f"Host *\n  ProxyJump bastion\n" + hop("bastion"), route=[("w1", fp["k0"])])
    case("proxycommand_ssh_w",
         blk("w1", "w1", f"ProxyCommand ssh -F {d}/case-proxycommand_ssh_w.conf -W %h:%p bastion") +
         hop("bastion"), route=[("bastion", fp["k0"]), ("w1", fp["k0"])])
    case("match_originalhost",
         f"Match originalhost web-prod\n  HostName 127.0.0.1\n  Port {p['w2']}\n" + blk("web-prod", "w1"),
         host="web-prod", route=[("w2", fp["k0"])])
    case("match_user",
         f"Match user {m_user(m)}\n  Port {p['w2']}\n" + blk("w1", "w1"), route=[("w2", fp["k0"])])
    case("match_user_other",
         "Match user nobody-else\n  Port 1\n" + blk("w1", "w1"), route=[("w1", fp["k0"])])
    case("match_host_sees_hostname",
         f"Host app\n  HostName 127.0.0.1\nMatch host 127.0.0.1\n  Port {p['w2']}\n" + blk("app", "w1"),
         host="app", route=[("w2", fp["k0"])])
    case("match_exec", f"Match exec true\n  Port {p['w2']}\n" + blk("w1", "w1"), route=[("w2", fp["k0"])])
    case("match_all_final", blk("w1", "w1") + f"Match all\n  Port 1\n", route=[("w1", fp["k0"])])
    case("host_negation_after_positive",
         f"Host w1\n  HostName 127.0.0.1\nHost * !w1\n  Port {p['w2']}\n" + blk("*", "w1"),
         route=[("w1", fp["k0"])])
    case("host_pattern_list", blk("x1 w1 y1", "w1"), route=[("w1", fp["k0"])])
    case("include_host_state_does_not_leak",
         f"Host w1\n  HostName 127.0.0.1\n  Include {d}/inc-leak.conf\n  Port {p['w1']}\n" + blk("*", "w2"),
         files={f("inc-leak.conf"): "Host other\n  User nobody\n"}, route=[("w1", fp["k0"])])
    case("include_glob", f"Include {d}/conf.d/*.conf\n" + blk("*", "w2"),
         files={f("conf.d/10-w1.conf"): blk("w1", "w1")}, route=[("w1", fp["k0"])])
    case("first_match_wins", f"Host w1\n  Port {p['w2']}\n" + blk("w1", "w1"), route=[("w2", fp["k0"])])
    case("token_in_known_hosts_path", blk("w1", "w1", known=f("kh_%h_%p")),
         files={f(f"kh_127.0.0.1_{p['w1']}"): kh("w1")}, route=[("w1", fp["k0"])])
    case("wrong_user_refused", blk("w1", "w1").replace(f"User {m_user(m)}", "User nobody"), "refuse",
         reason=AUTH)

    # --- whom to trust -----------------------------------------------------------------------
    case("hostkeyalias_entry", blk("w1", "w1", "HostKeyAlias web1.prod", known=f("kh-alias")),
         files={f("kh-alias"): f"web1.prod {k['w1']}\n"}, route=[("w1", fp["k0"])])
    case("hostkeyalias_contradicts_port_entry", blk("w1", "w1", "HostKeyAlias web1.prod", known=f("kh-alias2")),
         "refuse", files={f("kh-alias2"): kh("w1") + f"web1.prod {k['w2']}\n"}, reason=CHANGED + r".*web1\.prod")
    case("revoked_marker", blk("w1", "w1", known=f("kh-revoked")), "refuse",
         files={f("kh-revoked"): kh("w1") + f"@revoked * {k['w1']}\n"}, reason=REVOKED)
    case("revoked_host_keys_list", blk("w1", "w1", f"RevokedHostKeys {d}/revoked.pub"), "refuse",
         files={f("revoked.pub"): k["w1"] + "\n"}, reason=REVOKED + r".*RevokedHostKeys")
    case("revoked_host_keys_krl", blk("w1", "w1", f"RevokedHostKeys {krl(m)}"), "refuse",
         reason=REVOKED + r".*RevokedHostKeys")
    case("revoked_other_key_only", blk("w1", "w1", known=f("kh-revoked2")),
         files={f("kh-revoked2"): kh("w1") + f"@revoked * {k['w2']}\n"}, route=[("w1", fp["k0"])])
    case("negated_pattern_excludes", blk("w1", "w1", known=f("kh-neg")), "refuse",
         files={f("kh-neg"): f"[127.0.0.1]:*,![127.0.0.1]:{p['w1']} {k['w1']}\n"}, reason=UNKNOWN)
    case("wildcard_pattern", blk("w1", "w1", known=f("kh-wild")),
         files={f("kh-wild"): f"[127.0.0.?]:{p['w1']},other {k['w1']}\n"}, route=[("w1", fp["k0"])])
    case("hashed_entry", blk("w1", "w1", known=hashed(m, "kh-hashed", kh("w1") + kh("w2"))),
         route=[("w1", fp["k0"])])
    case("hashed_entry_changed", blk("w1", "w1", known=hashed(m, "kh-hashed-bad", f"[127.0.0.1]:{p['w1']} {k['w2']}\n")),
         "refuse", reason=CHANGED)
    case("second_user_known_hosts_file", blk("w1", "w1", known=f"{d}/kh-first {d}/kh-second"),
         files={f("kh-first"): kh("w2"), f("kh-second"): kh("w1")}, route=[("w1", fp["k0"])])
    case("global_known_hosts_file",
         blk("w1", "w1", f"GlobalKnownHostsFile {d}/kh-global", known="/dev/null").replace(
             "  GlobalKnownHostsFile none\n", ""),
         files={f("kh-global"): kh("w1")}, route=[("w1", fp["k0"])])
    case("port_less_entry_for_port_22",
         blk("w1", "w1", "Port 22", f"ProxyCommand ssh -F {d}/case-port_less_entry_for_port_22.conf -W %h:{p['w1']} bastion",
             known=f("kh-22")) + hop("bastion"),
         files={f("kh-22"): f"127.0.0.1 {k['w1']}\n"}, route=[("bastion", fp["k0"]), ("w1", fp["k0"])])
    # OpenSSH retries a key unknown under [host]:port with the port-less name ("checking
    # without port identifier") and accepts only the very key there.
    case("port_less_entry_also_for_other_ports", blk("w1", "w1", known=f("kh-noport")),
         files={f("kh-noport"): f"127.0.0.1 {k['w1']}\n"}, route=[("w1", fp["k0"])])
    case("port_less_entry_with_other_key", blk("w1", "w1", known=f("kh-noport2")), "refuse",
         files={f("kh-noport2"): f"127.0.0.1 {k['w2']}\n"}, reason=UNKNOWN)
    case("unknown_key", blk("w1", "w1", known=f("kh-empty")), "refuse", files={f("kh-empty"): ""},
         reason=UNKNOWN + r".*cutpilot trust")
    case("no_known_hosts_at_all", blk("w1", "w1", known="none"), "refuse",
         reason=UNKNOWN + r".*no known_hosts file")
    case("changed_key", blk("w1", "w1", known=f("kh-changed")), "refuse",
         files={f("kh-changed"): f"[127.0.0.1]:{p['w1']} {k['w2']}\n"}, reason=CHANGED)
    case("other_key_type_known_only", blk("w1", "w1", known=f("kh-ecdsa")), "refuse",
         files={f("kh-ecdsa"): f"[127.0.0.1]:{p['w1']} {ecdsa_pub(m)}\n"}, reason=UNKNOWN)

    # Host certificates: the second sshd serves w1's key with a certificate for 127.0.0.1, web1.prod.
    wc = lambda *extra, known: blk("wc", "wc", *extra, known=known)  # noqa: E731
    case("cert_authority", wc(known=f("kh-ca")), host="wc",
         files={f("kh-ca"): f"@cert-authority [127.0.0.1]:* {m.host_ca}\n"}, route=[("wc", fp["k0"])])
    case("cert_authority_with_alias", wc("HostKeyAlias web1.prod", known=f("kh-ca-alias")), host="wc",
         files={f("kh-ca-alias"): f"@cert-authority web1.prod {m.host_ca}\n"}, route=[("wc", fp["k0"])])
    case("cert_authority_wrong_principal", wc("HostKeyAlias db1.prod", known=f("kh-ca-wrong")), "refuse",
         host="wc", files={f("kh-ca-wrong"): f"@cert-authority db1.prod {m.host_ca}\n"},
         reason=UNKNOWN + r".*not valid for db1.prod")
    case("cert_authority_revoked_ca", wc(known=f("kh-ca-revoked")), "refuse", host="wc",
         files={f("kh-ca-revoked"): f"@cert-authority [127.0.0.1]:* {m.host_ca}\n@revoked * {m.host_ca}\n"},
         reason=REVOKED)
    # Behind a jump host or a ProxyCommand, the certificate is asked for through the same route.
    case("cert_authority_through_jump", wc("ProxyJump bastion", known=f("kh-ca-jump")) + hop("bastion"),
         host="wc", scan_via="bastion", files={f("kh-ca-jump"): f"@cert-authority [127.0.0.1]:* {m.host_ca}\n"},
         route=[("bastion", fp["k0"])] * 2 + [("wc", fp["k0"])])
    case("cert_authority_through_proxycommand",
         wc(f"ProxyCommand ssh -F {d}/case-cert_authority_through_proxycommand.conf -W %h:%p bastion",
            known=f("kh-ca-pc")) + hop("bastion"),
         host="wc", scan_via="bastion", files={f("kh-ca-pc"): f"@cert-authority [127.0.0.1]:* {m.host_ca}\n"},
         route=[("bastion", fp["k0"])] * 2 + [("wc", fp["k0"])])
    case("cert_authority_through_jump_wrong_principal",
         wc("ProxyJump bastion", "HostKeyAlias db1.prod", known=f("kh-ca-jump-wrong")) + hop("bastion"),
         "refuse", host="wc", scan_via="bastion", files={f("kh-ca-jump-wrong"): f"@cert-authority db1.prod {m.host_ca}\n"},
         reason=UNKNOWN + r".*not valid for db1.prod")
    # The CA signed with ssh-ed25519, which this list leaves out: OpenSSH ignores the certificate.
    case("ca_signature_algorithms_exclude_the_ca", wc("CASignatureAlgorithms rsa-sha2-512", known=f("kh-ca-sig")),
         "refuse", host="wc", files={f("kh-ca-sig"): f"@cert-authority [127.0.0.1]:* {m.host_ca}\n"},
         reason=UNKNOWN + r".*CASignatureAlgorithms")
    case("ca_signature_algorithms_include_the_ca",
         wc("CASignatureAlgorithms rsa-sha2-512,ssh-ed25519", known=f("kh-ca-sig2")), host="wc",
         files={f("kh-ca-sig2"): f"@cert-authority [127.0.0.1]:* {m.host_ca}\n"}, route=[("wc", fp["k0"])])
    case("cert_host_plain_key_entry", wc(known=f("kh-ca-plain")), host="wc",
         files={f("kh-ca-plain"): f"[127.0.0.1]:{p['wc']} {k['w1']}\n"}, route=[("wc", fp["k0"])])

    # --- which algorithms --------------------------------------------------------------------
    case("kex_minus", blk("w1", "w1", "KexAlgorithms -curve25519-sha256,curve25519-sha256@libssh.org"),
         route=[("w1", fp["k0"])])
    case("kex_plus", blk("w1", "w1", "KexAlgorithms +diffie-hellman-group14-sha1"), route=[("w1", fp["k0"])])
    case("kex_caret", blk("w1", "w1", "KexAlgorithms ^diffie-hellman-group14-sha256"), route=[("w1", fp["k0"])])
    case("kex_only_what_sshd_refuses", blk("w1", "w1", "KexAlgorithms diffie-hellman-group1-sha1"), "refuse",
         reason=r"cannot connect")
    case("kex_post_quantum_only", blk("w1", "w1", "KexAlgorithms sntrup761x25519-sha512@openssh.com"),
         "divergent", reason=r"w1.*KexAlgorithms")
    case("ciphers_one", blk("w1", "w1", "Ciphers aes128-ctr"), route=[("w1", fp["k0"])])
    case("ciphers_only_what_sshd_refuses", blk("w1", "w1", "Ciphers 3des-cbc"), "refuse", reason=r"cannot connect")
    case("macs_one", blk("w1", "w1", "Ciphers aes256-ctr", "MACs hmac-sha2-512"), route=[("w1", fp["k0"])])
    case("macs_only_what_sshd_refuses", blk("w1", "w1", "Ciphers aes256-ctr", "MACs hmac-md5"), "refuse",
         reason=r"MACs allows only hmac-md5")
    case("hostkeyalgorithms_plus_ssh_rsa", blk("w1", "w1", "HostKeyAlgorithms +ssh-rsa"), route=[("w1", fp["k0"])])
    case("hostkeyalgorithms_minus_ed25519", blk("w1", "w1", "HostKeyAlgorithms -ssh-ed25519*"), "refuse",
         reason=r"cannot connect")
    case("hostkeyalgorithms_ecdsa_only", blk("w1", "w1", "HostKeyAlgorithms ecdsa-sha2-nistp256"), "refuse",
         reason=r"cannot connect")

    # --- with which key ----------------------------------------------------------------------
    many = ("kb", "ke", "kf", "kg", "kc", "kd")
    case("identitiesonly_with_busy_agent", blk("w1", "w1"), agent=many + ("ka",), route=[("w1", fp["k0"])])
    case("agent_keys_before_identity_files", blk("w1", "w1").replace("IdentitiesOnly yes", "IdentitiesOnly no"),
         agent=("ka",), route=[("w1", fp["ka"])])
    case("identity_file_in_agent_comes_first",
         blk("w1", "w1", f"IdentityFile {m.keys}/ka").replace("IdentitiesOnly yes", "IdentitiesOnly no"),
         agent=("kb", "ka"), route=[("w1", fp["ka"])])
    case("identityfile_order", blk("w1", "w1", f"IdentityFile {m.keys}/kb", f"IdentityFile {m.keys}/ka"),
         route=[("w1", fp["kb"])])
    case("identityfile_first_not_authorised", blk("w1", "w1", f"IdentityFile {m.keys}/ke"), route=[("w1", fp["k0"])])
    case("identityagent_none", blk("w1", "w1", "IdentityAgent none").replace("IdentitiesOnly yes", "IdentitiesOnly no"),
         agent=("ka",), route=[("w1", fp["k0"])])
    case("identityagent_path",
         blk("w1", "w1", f"IdentityAgent {m.agent('kb')}").replace("IdentitiesOnly yes", "IdentitiesOnly no"),
         route=[("w1", fp["kb"])])
    case("encrypted_key_in_agent_identitiesonly", blk("w1", "w1", f"IdentityFile {m.keys}/kenc"),
         agent=("kenc", "kb"), route=[("w1", fp["kenc"])])
    case("encrypted_key_never_prompts",
         blk("w1", "w1", f"IdentityFile {m.keys}/kenc").replace(f"  IdentityFile {m.k0}\n", ""), "refuse",
         reason=AUTH + r".*passphrase")
    case("certificatefile", blk("w1", "w1", f"IdentityFile {m.keys}/kc", f"CertificateFile {m.keys}/kc-user.cert")
         .replace(f"  IdentityFile {m.k0}\n", ""), route=[("w1", fp["kc"])])
    case("certificate_beside_identity", blk("w1", "w1", f"IdentityFile {m.keys}/kd")
         .replace(f"  IdentityFile {m.k0}\n", ""), route=[("w1", fp["kd"])])
    # The agent holds kd and its certificate (ssh-add loads kd-cert.pub beside kd); only the
    # certificate is authorised.
    case("agent_only_certificate", blk("w1", "w1").replace("IdentitiesOnly yes", "IdentitiesOnly no")
         .replace(f"  IdentityFile {m.k0}\n", ""), agent=("kd",), route=[("w1", fp["kd"])])
    case("no_authorised_key", blk("w2", "w2", f"IdentityFile {m.keys}/ka").replace(f"  IdentityFile {m.k0}\n", ""),
         "refuse", host="w2", reason=AUTH)
    return out


def m_user(m):
    import getpass
    return getpass.getuser()


def hashed(m, name, text):
    path = m.d / name
    path.write_text(text)
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], capture_output=True, check=True)
    return str(path)


def krl(m):
    path = m.d / "revoked.krl"
    pub = m.d / "w1-host.pub"
    pub.write_text(m.hostkey["w1"] + "\n")
    subprocess.run(["ssh-keygen", "-k", "-f", str(path), str(pub)], capture_output=True, check=True)
    return str(path)


def ecdsa_pub(m):
    path = m.keys / "other_ecdsa"
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", str(path)], check=True)
    return " ".join((m.keys / "other_ecdsa.pub").read_text().split()[:2])
