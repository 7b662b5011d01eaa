"""The documentation in the repository covers what the code accepts.

- Every key the plan loader accepts (the FieldSpec tables of plans/*.cpp, the action kinds, the
  containers sub-table) is in plans/PLAN_FORMAT.md, in the section for its table.
- Every verb of `cutpilot --help` has `cutpilot VERB --help` (exit 0, that verb's usage) and a
  section of docs/cutpilot.1.md that names each of its flags.
- Both man pages are made from that markdown and render without a groff warning.
- The bash completion offers verbs, flags, step ids and host names from the real binary.
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CUTPILOT = os.environ.get("CUTPILOT_BIN", str(ROOT / "build/bin/cutpilot"))
FORMAT = ROOT / "plans" / "PLAN_FORMAT.md"
MANUAL = ROOT / "docs" / "cutpilot.1.md"

# Where each loader table's keys must be documented: the PLAN_FORMAT.md section (a "## "
# heading starting with this text); None: anywhere in the file.
SECTION_OF_TABLE = {
    "kTopLevelFields": None,
    "kPlanFields": "## `[plan]`",
    "kHostFields": "## `[hosts.NAME]`",
    "kStepFields": "## Every step",
}
ACTIONS = "## Actions"  # every action kind's own keys (kind_*.cpp)


def loader_tables():
    """{table name: [keys]} from each `constexpr FieldSpec<...> kName[] = {...};` in plans/."""
    tables = {}
    for path in sorted((ROOT / "plans").glob("*.cpp")):
        text = path.read_text()
        for m in re.finditer(r"constexpr FieldSpec<\w+> (k\w+)\[\] = \{(.*?)\n\};", text, re.S):
            keys = re.findall(r'^    \{"([a-z_]+)"', m.group(2), re.M)
            tables[(path.name, m.group(1))] = keys
    return tables


def action_kinds():
    text = (ROOT / "plans" / "actions.cpp").read_text()
    body = re.search(r"kActionKinds\[\] = \{(.*?)\n\};", text, re.S).group(1)
    return re.findall(r'^    \{"([a-z]+)"', body, re.M)


def sections(markdown):
    """{"## heading": text} of a markdown file (the text before the first: "")."""
    out, current = {"": []}, ""
    for line in markdown.splitlines():
        if line.startswith("## "):
            current = line
            out[current] = []
        else:
            out[current].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def code_words(text):
    """The words inside `code` spans and fenced blocks: where a key is named as a key."""
    fenced = re.findall(r"```.*?```", text, re.S)
    inline = re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", " ".join(fenced + inline)))


def section_of(doc, heading):
    found = [text for name, text in doc.items() if name.startswith(heading)]
    return found[0] if found else None


class PlanFormatTest(unittest.TestCase):
    def setUp(self):
        self.doc = sections(FORMAT.read_text())
        self.tables = loader_tables()

    def test_the_loader_tables_are_found(self):
        # The extraction itself: a refactor that hides the tables must not pass silently.
        names = {name for _, name in self.tables}
        self.assertLessEqual({"kTopLevelFields", "kPlanFields", "kHostFields", "kStepFields",
                              "kExecFields", "kFileFields", "kSyncFields", "kDbFields",
                              "kHealthFields", "kWaitFields"}, names)
        self.assertIn("ssh_config", self.tables[("load.cpp", "kPlanFields")])
        self.assertIn("peer_address", self.tables[("hosts.cpp", "kHostFields")])
        self.assertEqual(action_kinds(), ["exec", "file", "sync", "db", "health", "dns", "image", "wait"])

    def test_every_key_the_loader_accepts_is_documented_in_its_section(self):
        missing = []
        for (source, table), keys in self.tables.items():
            heading = SECTION_OF_TABLE.get(table, ACTIONS)
            text = FORMAT.read_text() if heading is None else section_of(self.doc, heading)
            self.assertIsNotNone(text, f"PLAN_FORMAT.md has no section '{heading}'")
            words = code_words(text)
            missing += [f"{key} ({source} {table}, in '{heading or 'the file'}')"
                        for key in keys if key not in words]
        self.assertEqual(missing, [], "keys the loader accepts but PLAN_FORMAT.md does not name")

    def test_every_action_kind_and_container_selector_is_documented(self):
        actions = code_words(section_of(self.doc, ACTIONS))
        for key in action_kinds() + ["names", "labels", "project"]:
            self.assertIn(key, actions)


def verbs():
    """[(verb, usage)] from `cutpilot --help`."""
    out = subprocess.run([CUTPILOT, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    found = re.findall(r"^  cutpilot ([a-z][a-z-]*)(.*)$", out.stdout, re.M)
    return [(verb, rest) for verb, rest in found if not verb.startswith("-")]


class VerbHelpTest(unittest.TestCase):
    def test_the_verb_table_is_read(self):
        names = [verb for verb, _ in verbs()]
        self.assertLessEqual({"check", "plan", "hosts", "run", "approve", "revoke", "status",
                              "runs", "abort", "skip", "retry", "trust", "demo"}, set(names))

    def test_every_verb_has_help_that_exits_0_with_its_usage(self):
        for verb, _ in verbs():
            for flag in ("--help", "-h"):
                res = subprocess.run([CUTPILOT, verb, flag], capture_output=True, text=True,
                                     timeout=30, stdin=subprocess.DEVNULL)
                self.assertEqual(res.returncode, 0, f"cutpilot {verb} {flag}: {res.stderr}")
                self.assertTrue(res.stdout.startswith(f"usage: cutpilot {verb}"),
                                f"cutpilot {verb} {flag}: {res.stdout!r}")

    def test_the_manual_has_a_section_per_verb_naming_each_of_its_flags(self):
        manual = MANUAL.read_text()
        for verb, usage in verbs():
            m = re.search(rf"^### {verb}\n(.*?)(?=^##)", manual, re.M | re.S)
            self.assertIsNotNone(m, f"docs/cutpilot.1.md has no '### {verb}' section")
            for flag in re.findall(r"--[a-z][a-z-]*", usage):
                self.assertIn(flag, m.group(1), f"the manual's {verb} section lacks {flag}")

    def test_version_names_the_version_and_the_git_revision(self):
        res = subprocess.run([CUTPILOT, "--version"], capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 0)
        self.assertRegex(res.stdout, r"^cutpilot \d+\.\d+\.\d+ \(git ([0-9a-f]{12}(-dirty)?|unknown)\)\n$")
        if (ROOT / ".git").exists() and shutil.which("git"):
            head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()
            # The build may be older than HEAD (built, then committed): same commit or a parent.
            built = re.search(r"git ([0-9a-f]+)", res.stdout).group(1)
            known = subprocess.run(["git", "-C", str(ROOT), "merge-base", "--is-ancestor", built,
                                    head], capture_output=True).returncode == 0
            self.assertTrue(known, f"{built} is not HEAD ({head}) nor before it")


class ManPageTest(unittest.TestCase):
    def render(self, source, name, section):
        with tempfile.TemporaryDirectory() as tmp:
            page = Path(tmp, f"{name}.{section}")
            subprocess.run([str(ROOT / "scripts" / "md2man"), "--name", name, "--section",
                            section, "--summary", "test", str(source), str(page)], check=True,
                           timeout=30)
            roff = page.read_text()
            if not shutil.which("groff"):
                self.skipTest("groff is not installed")
            res = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=roff,
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(res.stderr, "", f"groff warns about {name}({section})")
            text = subprocess.run(["groff", "-man", "-Tascii", "-P", "-cbou"], input=roff,
                                  capture_output=True, text=True, timeout=30).stdout
            return roff, text

    def test_cutpilot_plan_5_is_the_plan_format(self):
        roff, text = self.render(FORMAT, "cutpilot-plan", "5")
        self.assertIn('.TH "CUTPILOT-PLAN" "5"', roff)
        for key in ("downtime_budget", "peer_address", "connect_timeout", "point_of_no_return",
                    "password_env", "until_below"):
            self.assertIn(key, text)

    def test_cutpilot_1_covers_every_verb(self):
        roff, text = self.render(MANUAL, "cutpilot", "1")
        for verb, _ in verbs():
            self.assertRegex(text, rf"(?m)^   {verb}$")
        self.assertIn("--on-failure", text)


class CompletionTest(unittest.TestCase):
    """The bash completion, driven the way bash drives it (COMP_WORDS, COMP_CWORD)."""

    def complete(self, *words, cwd=None):
        script = ROOT / "completions" / "cutpilot.bash"
        args = " ".join(f"'{w}'" for w in words)
        cmd = (f"source {script}; COMP_WORDS=('{CUTPILOT}' {args}); "
               f"COMP_CWORD={len(words)}; _cutpilot; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
        res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60,
                             cwd=cwd, env=dict(os.environ, HOME=cwd or os.environ.get("HOME", "/")))
        self.assertEqual(res.returncode, 0, res.stderr)
        return set(filter(None, res.stdout.splitlines()))

    def plan(self, tmp):
        path = Path(tmp, "shop.toml")
        path.write_text('[plan]\nname = "shop"\n[hosts.old-web]\n[hosts.new-web]\n'
                        '[[steps]]\nid = "stop-app"\non = "old-web"\nexec = { run = ["true"] }\n'
                        '[[steps]]\nid = "start-app"\non = "new-web"\nexec = { run = ["true"] }\n')
        return path

    def test_verbs_and_flags(self):
        self.assertLessEqual({"run", "revoke", "runs", "retry"}, self.complete("r"))
        self.assertEqual(self.complete("run", "--on"), {"--on-failure"})
        self.assertEqual(self.complete("run", "x.toml", "--on-failure", ""),
                         {"wait", "rollback", "exit"})
        self.assertEqual(self.complete("approve", "--a"), {"--ahead"})

    def test_step_ids_and_hosts_from_the_plan(self):
        with tempfile.TemporaryDirectory() as tmp:
            plan = self.plan(tmp)
            self.assertEqual(self.complete("run", str(plan), "--approve", "st", cwd=tmp),
                             {"stop-app", "start-app"})
            self.assertEqual(self.complete("trust", "--plan", str(plan), "", cwd=tmp),
                             {"old-web", "new-web"})
            self.assertEqual(self.complete("run", "sh", cwd=tmp), {"shop.toml"})

    def test_helpers_list_ids_and_hosts(self):
        with tempfile.TemporaryDirectory() as tmp:
            plan = self.plan(tmp)
            ids = subprocess.run([CUTPILOT, "plan", "--ids", str(plan)], capture_output=True,
                                 text=True, timeout=30)
            self.assertEqual((ids.returncode, ids.stdout), (0, "stop-app\nstart-app\n"))
            hosts = subprocess.run([CUTPILOT, "plan", "--hosts", str(plan)], capture_output=True,
                                   text=True, timeout=30)
            self.assertEqual((hosts.returncode, hosts.stdout), (0, "old-web\nnew-web\n"))

    def test_zsh_completion_parses(self):
        if not shutil.which("zsh"):
            self.skipTest("zsh is not installed")
        res = subprocess.run(["zsh", "-n", str(ROOT / "completions" / "_cutpilot")],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)


if __name__ == "__main__":
    unittest.main()
