#!/usr/bin/env python3
"""Run a scenario's migration twice, the second time with the first run's history, and print
the downtime the cockpit predicted as each window opened against what it took (issue 21).

A scenario's world is spent by its run, so each run gets a fresh world; what carries over is
the run history (XDG_STATE_HOME, and the runs' state directories, kept outside the worlds), as
it would from a rehearsal to the night itself. The second run passes --new-run with the plan's
name: the first went past its point of no return.

    CUTPILOT_BIN=build/bin/cutpilot tests/scenarios/predict_twice.py 002 [003 004 000 001]

Not a test (nothing here is asserted against a bound): a measurement for bench/RESULTS.md.
"""

import importlib
import json
import sys
import tempfile
import tomllib
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenariocase import ScenarioCase  # noqa: E402

# scenario -> (module, class, its main test)
SCENARIOS = {
    "000": ("test_000_docker_volumes", "DockerVolumes",
            "test_the_volumes_move_the_agent_never_runs_twice_and_new_serves"),
    "001": ("test_001_volume_images", "VolumeImages",
            "test_every_volume_arrives_whole_and_the_map_names_old_and_new"),
    "002": ("test_002_hot_cold_proxy", "HotColdProxy",
            "test_hot_rounds_then_cold_sync_then_old_proxies_and_the_registers_answer_new"),
    "003": ("test_003_rails_checklist", "RailsChecklist",
            "test_the_checklist_moves_the_shop_its_worker_and_cron_and_switches_dns"),
    "004": ("test_004_maintenance_window", "MaintenanceWindow",
            "test_the_window_moves_every_punch_and_the_name_answers_the_cloud"),
}


def run_once(scenario, history, run):
    """Run `run` of the scenario's main test, its history in the directory history; its
    downtime, or None when the test failed."""
    module, cls_name, test = SCENARIOS[scenario]
    cls = getattr(importlib.import_module(module), cls_name)
    plan_name = tomllib.loads(Path(cls.PLAN).read_text())["plan"]["name"]
    seen = {}

    class Twice(cls):
        def setUp(self):
            super().setUp()
            self.state = f"{history}/state-{run}"  # outlives the world, as a real run's does

        def env(self):
            return dict(super().env(), XDG_STATE_HOME=history)

        def run_args(self, *extra):
            again = (f"--new-run={plan_name}",) if run > 1 else ()
            return super().run_args(*extra, *again)

        def report_downtime(self, name):
            seen.update(ScenarioCase.report_downtime(self, name))
            return seen

    result = unittest.TestResult()
    Twice(test).run(result)
    for _, trace in result.errors + result.failures:
        sys.stderr.write(trace)
    return seen if result.wasSuccessful() else None


def main(argv):
    for scenario in argv or ["002"]:
        history = tempfile.mkdtemp(prefix=f"cp-predict-{scenario}-")
        for run in (1, 2):
            downtime = run_once(scenario, history, run)
            if downtime is None:
                print(f"{scenario} run {run}: the scenario failed (see above)")
                break
            took, predicted = downtime.get("seconds"), downtime.get("predicted_s")
            error = f"{downtime['error_pct']:+.0f} %" if downtime.get("error_pct") is not None else "?"
            print(f"{scenario} run {run}: window took {took:.1f} s, predicted {predicted:.1f} s "
                  f"as it opened ({error})" if predicted is not None else
                  f"{scenario} run {run}: window took {took:.1f} s, no prediction: {json.dumps(downtime)}",
                  flush=True)
            print(f"    {steps_took(Path(history, f'state-{run}'))}", flush=True)
    return 0


def steps_took(state):
    """What each step inside the window took, from the run's journal, as one line."""
    took, inside = [], False
    for line in Path(state, "journal.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("r") == "downtime":
            inside = record.get("state") == "started"
        elif inside and record.get("r") == "step" and record.get("state") == "succeeded":
            took.append(f"{record['step']} {record['seconds']:.2f}")
    return "window steps took (s): " + ", ".join(took)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
