"""The `lab` subcommands: up, down, status and the service add-ons."""

import importlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Callable, Optional, TextIO

from . import mounts, procs, relay, sshd
from .core import Lab, LabError


def cmd_up(directory: str, names: list, out: TextIO, rtt: Optional[str] = None,
           window: Optional[str] = None) -> int:
    """Start lab hosts (behind a WAN relay when rtt is given) and print how to reach them."""
    sshd.validate_names(names)  # before DIR is created
    rtt_ms, window_bytes = _wan(rtt, window)
    if window is not None and rtt is None:
        raise LabError("up: --window needs --rtt (only a relayed host has a window)")
    lab = Lab.create(directory)
    hosts = sshd.add_hosts(lab, names, rtt_ms, window_bytes or relay.DEFAULT_WINDOW)
    width = max(len(h["name"]) for h in hosts)
    out.write(f"lab {lab.dir}: started {len(hosts)} host(s)\n")
    for h in hosts:
        wan = f"  (relay: rtt {h['relay']['rtt_ms']:g} ms, sshd on {h['sshd_port']})" if h.get("relay") else ""
        out.write(f"  {h['name']:<{width}}  127.0.0.1:{h['port']}  ssh -F {lab.dir}/ssh_config {h['name']}{wan}\n")
    out.write(f"ssh config: {lab.dir}/ssh_config   known hosts: {lab.dir}/known_hosts\n")
    out.write(f"plans find the lab with: export CUTPILOT_LAB={lab.dir}\n")
    out.write(f"stop with: {_self_path()} down --dir {lab.dir}\n")
    return 0


def cmd_rtt(directory: str, name: str, rtt: str, window: Optional[str], out: TextIO) -> int:
    """Give a relayed host a new RTT (and window) for the connections that come after."""
    rtt_ms, window_bytes = _wan(rtt, window)
    r = sshd.set_rtt(Lab.open(directory), name, rtt_ms, window_bytes)
    out.write(f"lab host {name}: rtt {r['rtt_ms']:g} ms, window {r['window']} bytes (new connections)\n")
    return 0


def _wan(rtt: Optional[str], window: Optional[str]):
    """Parse --rtt and --window ("4M", "65536"); (None, None) when absent."""
    try:
        rtt_ms = None if rtt is None else relay.parse_rtt(rtt)
    except ValueError as e:
        raise LabError(str(e)) from None
    if window is None:
        return rtt_ms, None
    units = {"": 1, "K": 1 << 10, "M": 1 << 20}
    text = window.strip().upper().removesuffix("IB").removesuffix("B")
    unit = text[-1:] if text[-1:] in ("K", "M") else ""
    try:
        size = int(float(text[:len(text) - len(unit)]) * units[unit])
    except ValueError:
        size = 0
    if size < 4096:
        raise LabError(f"bad window '{window}': give bytes (at least 4096), or 64K, 4M")
    return rtt_ms, size


def cmd_down(directory: str, remove: bool, out: TextIO) -> int:
    """Stop every process of the lab (recorded, by session, descendants, by marker); optionally remove DIR."""
    lab = Lab(directory)
    state = None
    if lab.state_path.exists():
        try:
            state = lab.load()
        except LabError as e:
            out.write(f"warning: {e}; stopping by environment marker only\n")
    if state is not None:
        for problem in _stop_hooks(lab, state):
            out.write(f"warning: {problem}\n")
    survivors = procs.stop_lab_processes(str(lab.dir), state["pids"] if state else [])
    if survivors:
        raise LabError(f"down: processes still alive after SIGKILL: {sorted(survivors)}")
    left = mounts.unmount_under(lab.dir)
    if left:
        raise LabError(f"down: cannot unmount {', '.join(left)}")
    if remove:
        if lab.dir.exists():
            try:
                shutil.rmtree(lab.dir)
            except OSError as e:
                raise LabError(f"down: stopped the lab but cannot remove {lab.dir}: {e}") from None
        out.write(f"lab {lab.dir}: stopped and removed\n")
        return 0
    if state is not None:
        with lab.transaction() as st:
            st["state"] = "down"
            for h in st["hosts"].values():
                h["state"] = "stopped"
                for svc in h.get("services", {}).values():
                    svc["state"] = "stopped"
    out.write(f"lab {lab.dir}: stopped\n")
    return 0


def _stop_hooks(lab: Lab, state: dict) -> list:
    """Call stop(lab, host, record) of every running add-on that has one; return the problems reported."""
    problems = []
    for host, h in state["hosts"].items():
        for service, record in h.get("services", {}).items():
            if record.get("state") == "stopped":
                continue
            try:
                module = importlib.import_module(f"lablib.{service}")
            except ImportError:
                continue
            stop = getattr(module, "stop", None)
            if not callable(stop):
                continue
            try:
                problems += [f"{service} on {host}: {p}" for p in (stop(lab, host, record) or [])]
            except Exception as e:  # a broken hook must not keep the lab running
                problems.append(f"{service} on {host}: stop hook failed: {e}")
    return problems


def cmd_status(directory: str, as_json: bool, out: TextIO) -> int:
    """Print the hosts and services of a lab and whether each PID is alive."""
    lab = Lab.open(directory)
    state = lab.load()
    starts = {r["pid"]: r.get("start") for r in state["pids"]}

    def alive(pid: Optional[int]) -> bool:
        """Tell whether a recorded PID still runs as the same process."""
        return bool(pid) and procs.is_alive(pid, starts.get(pid))

    if as_json:
        for h in state["hosts"].values():
            h["alive"] = alive(h.get("pid"))
            for svc in h.get("services", {}).values():
                svc["alive"] = {str(p): alive(p) for p in svc.get("pids", [])}
        out.write(json.dumps(state, indent=2, sort_keys=True) + "\n")
        return 0
    out.write(f"lab {lab.dir} ({state.get('state', '?')}), ssh config {lab.dir}/ssh_config\n")
    for name, h in state["hosts"].items():
        pid = h.get("pid")
        out.write(f"  {name}: 127.0.0.1:{h.get('port', '?')} sshd pid {pid or '-'} "
                  f"{'alive' if alive(pid) else 'dead'}\n")
        for svc_name, svc in h.get("services", {}).items():
            pids = " ".join(f"{p} {'alive' if alive(p) else 'dead'}" for p in svc.get("pids", []))
            where = f" port {svc['port']}" if "port" in svc else ""
            out.write(f"    {svc_name}{where}: {pids or 'no pids'}\n")
    return 0


def load_addon(service: str) -> Callable:
    """Return the start(lab, host_name) function of lablib.<service>, failing clearly when it is missing."""
    try:
        module = importlib.import_module(f"lablib.{service}")
    except ImportError as e:
        raise LabError(f"{service}: the add-on module tests/lab/lablib/{service}.py cannot be "
                       f"imported ({e})") from None
    start = getattr(module, "start", None)
    if not callable(start):
        raise LabError(f"{service}: tests/lab/lablib/{service}.py has no start(lab, host_name)")
    return start


def cmd_addon(directory: str, service: str, host: str, out: TextIO,
              options: Optional[dict] = None) -> int:
    """Start a service add-on on a lab host (options: its start()'s keyword switches), record
    it, and print how to reach it."""
    lab = Lab.open(directory)
    lab.host_dir(host)  # an unknown host fails here, before anything changes
    start = load_addon(service)
    before = lab.load()
    old = before["hosts"][host].get("services", {}).get(service)
    starts = {r["pid"]: r.get("start") for r in before["pids"]}
    if old and any(procs.is_alive(p, starts.get(p)) for p in old.get("pids", [])):
        raise LabError(f"{service} already runs on lab host '{host}' (pids {old['pids']}); "
                       f"stop the lab first")
    known = {_identity(r) for r in before["pids"]}
    try:
        info = start(lab, host, **(options or {})) or {}
    except BaseException:
        _roll_back(lab, host, service, old, known)
        raise
    env_file = lab.dir / "hosts" / host / f"{service}.env"
    with lab.transaction() as state:
        new_pids = [r["pid"] for r in state["pids"] if _identity(r) not in known
                    and r.get("host") == host and r.get("service") == service]
        entry = {k: (str(v) if isinstance(v, Path) else v) for k, v in info.items()}
        entry["pids"] = sorted(set(new_pids) | set(entry.get("pids", [])))
        entry["state"] = "running"
        if env_file.exists():
            entry.setdefault("env_file", str(env_file))
        state["hosts"][host].setdefault("services", {})[service] = entry
    pids = ' '.join(map(str, entry['pids'])) or "none: it runs no process of its own"
    out.write(f"{service} on lab host '{host}' is running (pids {pids})\n")
    if entry.get("hint"):
        out.write(f"  reach it with: {entry['hint']}\n")
    if env_file.exists():
        out.write(f"  environment: {env_file}\n")
        for line in env_file.read_text().splitlines():
            if not line.startswith("#"):
                out.write(f"    {line}\n")
    return 0


def _identity(record: dict) -> tuple:
    """Return what identifies a recorded process: its PID and start time."""
    return (record.get("pid"), record.get("start"))


def _roll_back(lab: Lab, host: str, service: str, old: Optional[dict], known: set) -> None:
    """Stop the processes a failed add-on started and restore its previous record in lab.json."""
    with lab.transaction() as state:
        new = [r for r in state["pids"] if _identity(r) not in known
               and r.get("host") == host and r.get("service") == service]
        lab.stop_records(new)
        state["pids"] = [r for r in state["pids"] if r not in new]
        services = state["hosts"].get(host, {}).setdefault("services", {})
        if old is None:
            services.pop(service, None)
        else:
            services[service] = old


def _self_path() -> str:
    """Return how this lab script was invoked, for the printed hints."""
    return os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else "tests/lab/lab"
