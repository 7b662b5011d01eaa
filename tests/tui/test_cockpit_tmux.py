"""The real cockpit (tui_demo: a scripted run, no hosts) in tmux: send-keys in, capture-pane out.

Every wait is bounded: a screen that never shows what a test waits for fails the test with
the last screen in the message."""

import os
import re
import shutil
import tempfile
import subprocess
import time
import unittest
from pathlib import Path

TUI_DEMO = os.environ.get("TUI_DEMO", str(Path(__file__).resolve().parents[2] / "build/bin/tui_demo"))
WAIT = 60.0  # seconds: the longest any screen may take to appear (a bound, never a pause)


class Tmux:
    """One tmux server on its own socket, with one window running a command."""

    def __init__(self, command, cols=80, rows=24, env=None):
        self.socket = f"cutpilot-tui-{os.getpid()}-{time.monotonic_ns()}"
        words = ["env"] + [f"{k}={v}" for k, v in (env or {}).items()] + command
        self.tmux("-f", "/dev/null", "new-session", "-d", "-x", str(cols), "-y", str(rows),
                  " ".join(_quote(w) for w in words))
        self.tmux("set-option", "-g", "remain-on-exit", "on")

    def tmux(self, *args):
        res = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True,
                             timeout=10)
        if res.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {res.stderr}")
        return res.stdout

    def keys(self, *keys, literal=False):
        self.tmux("send-keys", *(["-l"] if literal else []), *keys)

    def screen(self, escapes=False):
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []))

    def resize(self, cols, rows):
        self.tmux("resize-window", "-x", str(cols), "-y", str(rows))

    def dead(self):
        return self.tmux("display-message", "-p", "#{pane_dead}").strip() == "1"

    def kill(self):
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


def _quote(word):
    return "'" + word.replace("'", "'\\''") + "'"


class CockpitTmuxTest(unittest.TestCase):
    def start(self, *args, cols=80, rows=24, term="tmux-256color", env=None):
        self.record = tempfile.NamedTemporaryFile(prefix="tui-record-", delete=False).name
        self.addCleanup(os.unlink, self.record)
        full_env = {"TERM": term, "LANG": "C.UTF-8", **(env or {})}
        self.t = Tmux([TUI_DEMO, "--record", self.record, *args], cols, rows, full_env)
        self.addCleanup(self.t.kill)
        return self.t

    def wait_for(self, predicate, what, timeout=WAIT):
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.t.screen()
            if predicate(screen):
                return screen
            time.sleep(0.05)
        self.fail(f"no {what} within {timeout} s; the screen:\n{screen}")

    def wait_text(self, pattern, timeout=WAIT):
        return self.wait_for(lambda s: re.search(pattern, s, re.M), repr(pattern), timeout)

    def recorded(self):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            text = Path(self.record).read_text()
            if "exit\t" in text:
                return [line.split("\t") for line in text.splitlines()]
            time.sleep(0.05)
        self.fail("tui_demo did not end")

    def assert_clean(self, screen, cols, rows):
        """A well-formed frame: one top bar, the column rule on every body row, nothing wider."""
        lines = screen.split("\n")[:rows]
        self.assertEqual(len(lines), rows, screen)
        for line in lines:
            self.assertLessEqual(len(line), cols, line)
        self.assertTrue(lines[0].startswith(" shop migration (demo)"), lines[0])
        self.assertEqual(screen.count("shop migration"), 1, screen)
        rule = min(max(cols * 2 // 5, 32), 56)
        body = lines[1:rows - 1]
        if "POINT OF NO RETURN:" in body[0]:
            body = body[1:]
        for number, line in enumerate(body):
            self.assertEqual(line[rule:rule + 1], "\u2502", f"row {number + 1}: {line!r}\n{screen}")
        self.assertIn(" Steps (6)", body[0])
        self.assertEqual(sum(" Hosts (2)" in line for line in body), 1, screen)
        self.assertEqual(sum(" Jobs (" in line for line in body), 1, screen)
        self.assertEqual(sum(" Log " in line for line in body), 1, screen)

    def test_gate_waits_for_the_typed_confirmation_then_runs(self):
        self.start("--speed", "4")
        screen = self.wait_text(r"\? stop-app +APPROVE\?")
        self.assertIn("awaiting approval", screen)
        self.assertIn("1 to approve", screen.split("\n")[0])
        self.assertNotIn("DOWNTIME", screen)  # only the prediction before the window
        self.assertRegex(screen.split("\n")[0], r"downtime ~1:35/5:00")
        time.sleep(0.5)
        self.assertIn("APPROVE?", self.t.screen())  # it keeps waiting

        self.t.keys("a")
        self.wait_text(r'type "stop shop"')
        self.t.keys("stop shpo", literal=True)
        self.t.keys("Enter")
        self.wait_text(r"does not match: not approved")
        self.assertRegex(self.t.screen(), r"\? stop-app +APPROVE\?")

        self.t.keys("a")
        self.wait_text(r'type "stop shop"')
        self.t.keys("stop shop", literal=True)
        self.t.keys("Enter")
        screen = self.wait_text(r"DOWNTIME \d+:\d\d/~1:35/5:00")
        self.assertRegex(screen, r"stop-app +(running|ok)")

        # The point-of-no-return step: a banner until approved, then the run ends.
        screen = self.wait_text(r"^ POINT OF NO RETURN: switch-dns awaits approval")
        self.assertRegex(screen, r"downtime was \d+:\d\d")
        self.t.keys("a")
        self.wait_text(r"Approve switch-dns \(POINT OF NO RETURN\) on source\? \[y/N\]")
        self.t.keys("y")
        screen = self.wait_text(r"The run succeeded")
        self.assertNotIn("POINT OF NO RETURN:", screen)
        self.t.keys("q")
        rows = self.recorded()
        approvals = [r for r in rows if r[0] == "approve"]
        # The mistyped text never left the cockpit; the right one went with the approval.
        self.assertEqual([r[1] for r in approvals], ["stop-app", "switch-dns"])
        self.assertEqual(approvals[0][3], "stop shop")
        self.assertRegex(approvals[0][2], r"^[^@\s]+@[^@\s]+$")
        self.assertEqual(rows[-1], ["exit", "0"])

    def test_failed_step_retries_on_r_and_x_aborts_with_rollback(self):
        self.start("--speed", "4", "--fail", "copy-db")
        self.wait_text(r"stop-app +APPROVE\?")
        self.t.keys("a")
        self.wait_text(r'type "stop shop"')
        self.t.keys("stop shop", literal=True)
        self.t.keys("Enter")
        screen = self.wait_text(r"copy-db +FAILED")
        self.assertIn("exit status 1", screen)
        self.t.keys("r")
        self.wait_text(r"Retry copy-db\? \[y/N\]")
        self.t.keys("y")
        self.wait_text(r"copy-db +ok")
        self.wait_text(r"switch-dns +APPROVE\?")
        self.t.keys("x")
        self.wait_text(r"Abort the run and roll back the finished steps\? \[y/N\]")
        self.t.keys("y")
        screen = self.wait_text(r"The run aborted")
        self.assertRegex(screen, r"stop-app +rolled")
        self.assertRegex(screen, r"start-target +rolled")
        self.assertRegex(screen, r"copy-db +rolled")  # a db copy puts the old database back
        self.assertNotIn("to approve", screen.split("\n")[0], "an aborted run still asks for approval")
        self.assertNotIn("POINT OF NO RETURN", screen)
        self.t.keys("q")
        rows = self.recorded()
        self.assertEqual([r[:2] for r in rows if r[0] in ("retry", "abort")],
                         [["retry", "copy-db"], ["abort", ""]])
        self.assertEqual(rows[-1], ["exit", "3"])

    def test_sync_bar_only_advances_and_reaches_100(self):
        self.start(cols=120, rows=30)
        seen = []
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and 100 not in seen:
            match = re.search(r"presync@target +\[(.*?)\] +(\d+)%", self.t.screen())
            if match:
                seen.append(int(match.group(2)))
            time.sleep(0.05)
        self.assertIn(100, seen, seen)
        self.assertEqual(seen, sorted(seen), "the bar went backwards")
        self.assertGreaterEqual(len(set(p for p in seen if 0 < p < 100)), 3, seen)
        screen = self.wait_text(r"2\.0 GiB/2\.0 GiB done 12000/12000")
        bar = re.search(r"presync@target +\[(.*?)\] +100%", screen).group(1)
        self.assertEqual(set(bar), {"\u2588"}, screen)  # full: no empty cell left

    def test_panes_count_tables_of_a_db_copy_and_name_each_log_lines_time_and_step(self):
        self.start("--speed", "4", cols=160, rows=40)
        self.wait_text(r"stop-app +APPROVE\?")
        screen = self.t.screen()
        # A sync counts entries (a parallel one those its comparison found different).
        self.assertRegex(screen, r"presync@target .* 12000/12000 entries")
        # Each log line: its time, then the step and host it is about.
        self.assertRegex(screen, r"\d\d:\d\d:\d\d presync@target ")
        self.t.keys("a")
        self.wait_text(r'type "stop shop"')
        self.t.keys("stop shop", literal=True)
        self.t.keys("Enter")
        # A db copy counts tables.
        screen = self.wait_text(r"copy-db@target .* 4/4 tables")
        self.assertNotRegex(screen, r"copy-db@target .* files")
        self.assertRegex(screen, r"\d\d:\d\d:\d\d copy-db@target ")

    def test_resize_mid_run_leaves_a_clean_screen(self):
        self.start("--speed", "0.5", cols=120, rows=40)
        self.wait_text(r"presync@target +\[")
        for cols, rows in ((80, 24), (200, 60), (80, 24), (200, 60)):
            self.t.resize(cols, rows)
            time.sleep(0.4)
            self.wait_for(lambda s: len(s.split("\n")[0]) > 0 and _rule_at(s, cols), f"{cols}x{rows}")
            time.sleep(0.3)
            self.assert_clean(self.t.screen(), cols, rows)
        # A storm of resizes ends on one clean frame.
        for cols in range(80, 140, 7):
            self.t.resize(cols, 24 + cols % 9)
        self.t.resize(80, 24)
        time.sleep(0.6)
        self.assert_clean(self.t.screen(), 80, 24)
        self.assertFalse(self.t.dead())

    def test_q_leaves_while_the_run_goes_on(self):
        self.start()
        self.wait_text(r"presync@target +\[")
        self.assertFalse(self.t.dead())
        self.t.keys("q")
        self.assertEqual(self.recorded()[-1], ["exit", "4"])  # left before the run ended
        self.wait_for(lambda s: self.t.dead(), "the cockpit gone")

    def test_q_inside_the_downtime_window_asks_first(self):
        self.start("--speed", "4")
        self.wait_text(r"stop-app +APPROVE\?")
        self.t.keys("a")
        self.wait_text(r'type "stop shop"')
        self.t.keys("stop shop", literal=True)
        self.t.keys("Enter")
        self.wait_text(r"DOWNTIME ")
        self.t.keys("q")
        self.wait_text(r"The downtime window is open\. Leave the cockpit anyway")
        self.t.keys("n")
        self.wait_text(r"cancelled")
        self.assertFalse(self.t.dead())
        self.t.keys("q")
        self.wait_text(r"The downtime window is open")
        self.t.keys("y")
        self.assertEqual(self.recorded()[-1], ["exit", "4"])

    def test_help_table_in_monochrome_on_screen_256color(self):
        self.start("--speed", "4", term="screen-256color", env={"NO_COLOR": "1"})
        self.wait_text(r"stop-app +APPROVE\?")
        self.t.keys("?")
        screen = self.wait_text(r"Keys \(any key closes\)")
        for words in ("approve the gated step", "leave; the run's jobs keep going", "Tab"):
            self.assertIn(words, screen)
        colored = self.t.screen(escapes=True)
        self.assertNotRegex(colored, r"\x1b\[[0-9;]*(3[0-7]|4[0-7]|38;5;\d+|48;5;\d+)m")
        self.assertRegex(colored, r"\x1b\[[0-9;]*7m")  # reverse video stands in for colour
        self.t.keys("x")  # closes the table, does not abort
        screen = self.wait_for(lambda s: "Keys (any key closes)" not in s, "the table closed")
        self.assertNotIn("Abort the run", screen)
        self.assertIn("APPROVE?", screen)

    def test_downtime_clock_turns_amber_then_red_past_the_budget(self):
        plan = subprocess.run([TUI_DEMO, "--print-plan"], capture_output=True, text=True,
                              check=True).stdout
        self.assertIn('downtime_budget = "5m"', plan)
        folder = tempfile.mkdtemp(prefix="tui-plan-")
        self.addCleanup(shutil.rmtree, folder)
        path = Path(folder) / "plan.toml"
        path.write_text(plan.replace('downtime_budget = "5m"', 'downtime_budget = "5s"'))
        self.start("--plan", str(path), "--speed", "0.4", cols=100)
        self.wait_text(r"stop-app +APPROVE\?")
        self.t.keys("a")
        self.wait_text(r'type "stop shop"')
        self.t.keys("stop shop", literal=True)
        self.t.keys("Enter")
        colours = []
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and "red" not in colours:
            colour = _colour_before(self.t.screen(escapes=True).split("\n")[0], "DOWNTIME ")
            if colour and (not colours or colours[-1] != colour):
                colours.append(colour)
            time.sleep(0.05)
        self.assertEqual(colours, ["cyan", "yellow", "red"])
        self.assertRegex(self.t.screen(), r"DOWNTIME 0:0[5-9]/~1:35/0:05")

    def test_too_small_a_terminal_says_so(self):
        self.start(cols=60, rows=20)
        self.wait_text(r"cutpilot needs 80x24; this terminal is 60x20")
        self.t.resize(80, 24)
        self.wait_text(r" Steps \(6\)")
        self.t.keys("q")
        self.assertEqual(self.recorded()[-1], ["exit", "4"])


def _colour_before(line, text):
    """The foreground colour name in force where text starts in a capture-pane -e line."""
    at = line.find(text)
    if at < 0:
        return None
    names = {30: "black", 31: "red", 32: "green", 33: "yellow", 34: "blue", 35: "magenta",
             36: "cyan", 37: "white", 39: None}
    colour = None
    for match in re.finditer(r"\x1b\[([0-9;]*)m", line[:at]):
        for code in (int(c) for c in match.group(1).split(";") if c):
            if code == 0:
                colour = None
            elif code in names:
                colour = names[code]
    return colour


def _rule_at(screen, cols):
    rule = min(max(cols * 2 // 5, 32), 56)
    lines = screen.split("\n")
    return len(lines) > 3 and lines[3][rule:rule + 1] == "\u2502"


if __name__ == "__main__":
    unittest.main()
