"""Run the health checks of a lab host's containers on their interval, as dockerd does.

Podman runs a container's health check from a systemd timer; the lab has no systemd, so
without this a check only runs when someone calls `podman healthcheck run`, and a
container that would turn healthy stays "starting" for ever.  `lab podman` starts one of
these per host (service "healthchecks"): it lists the running containers through the
host's Docker API, and runs `podman healthcheck run ID` for each one with a check, first
one interval after it was seen running (as Docker does), then every interval.  A stopped
container leaves the schedule; started again it is scheduled anew.  It carries the lab
marker, so `lab down` stops it with the host.

Usage: python3 -m lablib.healthchecks SOCKET PODMAN_WRAPPER
"""

import json
import subprocess
import sys
import time

from .podman import request

DEFAULT_INTERVAL_S = 30.0  # Docker's default when a check names none
LIST_EVERY_S = 0.5  # how soon a newly started container is seen
CHECK_TIMEOUT_S = 120  # `podman healthcheck run` applies the check's own timeout inside this


def check_interval(sock: str, cid: str):
    """Return the container's check interval in seconds, or None when it has no check."""
    status, body = request(sock, "GET", "/containers/%s/json" % cid, timeout=10)
    if status != 200:
        return None
    check = (json.loads(body).get("Config") or {}).get("Healthcheck") or {}
    test = check.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    return (check.get("Interval") or 0) / 1e9 or DEFAULT_INTERVAL_S


def run_once(sock: str, wrapper: str, due: dict) -> float:
    """Run the checks that are due; return how long to wait before the next pass."""
    status, body = request(sock, "GET", "/containers/json", timeout=10)
    running = [c["Id"] for c in json.loads(body)] if status == 200 else []
    for gone in set(due) - set(running):
        del due[gone]
    for cid in running:
        if cid not in due:
            interval = check_interval(sock, cid)
            due[cid] = (time.monotonic() + interval, interval) if interval else None
        entry = due[cid]
        if entry is None or time.monotonic() < entry[0]:
            continue
        try:
            subprocess.run([wrapper, "healthcheck", "run", cid], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=CHECK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass  # podman records the check as failed; the next one runs on schedule
        due[cid] = (time.monotonic() + entry[1], entry[1])
    soonest = min((e[0] for e in due.values() if e), default=time.monotonic() + LIST_EVERY_S)
    return max(0.0, min(LIST_EVERY_S, soonest - time.monotonic()))


def main(argv) -> int:
    """Schedule the checks until killed (by `lab down`)."""
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    sock, wrapper = argv[1], argv[2]
    due = {}
    while True:
        try:
            wait = run_once(sock, wrapper, due)
        except (OSError, ValueError) as e:  # the service restarts or stops: try again
            print("healthchecks: %s" % e, file=sys.stderr, flush=True)
            wait = LIST_EVERY_S
        time.sleep(wait)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
