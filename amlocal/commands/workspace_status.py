"""`amlocal workspace status` and `workspace stop`: what the workspace left running, and
stopping it. Not `az ml` verbs: on Azure nothing runs on the user's machine, here the
README's scenarios leave endpoint daemons (with their model server instances and
data-collector agents), a scheduler daemon and detached job runners behind.

`stop` stops processes, not resources: the endpoints, deployments and schedules stay
defined, and the next verb that needs one starts its daemon again (as after a reboot).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from amlocal import procs
from amlocal.workspace import Workspace

# Command-line markers of what runs under an endpoint daemon.
INSTANCE = "amlocal.endpoints.instance.loopback"
COLLECTOR = "amlocal.endpoints.collector"
ACTIVE_JOB = ("NotStarted", "Starting", "Preparing", "Queued", "Running", "CancelRequested")


def add_verbs(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "status", help="What the workspace runs on this machine, its memory, how to stop it."
    )
    p.set_defaults(func=status)
    p = verbs.add_parser(
        "stop",
        help="Stop everything the workspace runs (endpoint and schedule daemons, running "
        "jobs); endpoints and schedules stay defined and start again when next used.",
    )
    p.set_defaults(func=stop)


def _tree(pid: int) -> list[Any]:
    """The process and all its descendants (psutil.Process objects), those still alive."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _memory_mb(tree: list[Any]) -> float:
    """Memory of the processes: PSS where the OS gives it (forked workers share pages, so
    RSS would count them twice), RSS elsewhere."""
    import psutil

    total = 0
    for p in tree:
        try:
            full = p.memory_full_info()
            total += getattr(full, "pss", None) or full.rss
        except psutil.AccessDenied:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        except psutil.Error:
            pass
    return round(total / 2**20, 1)


def _count(tree: list[Any], marker: str) -> int:
    """How many of the root's own children run `marker` (an instance's forked workers
    carry its command line too, and are not instances)."""
    import psutil

    n = 0
    for p in tree[1:]:
        try:
            n += p.ppid() == tree[0].pid and marker in " ".join(p.cmdline())
        except psutil.Error:
            pass
    return n


def _endpoints(ws: Workspace) -> list[dict[str, Any]]:
    from amlocal.endpoints.verbs import liveness

    rows = []
    for ep in ws.store.list("online-endpoint"):
        name, port = ep.get("name"), ep.get("_port")
        if not isinstance(name, str) or not isinstance(port, int):
            continue
        pid = liveness.daemon_pid(ws.home, name, port)
        if pid is None:
            continue
        tree = _tree(pid)
        rows.append(
            {
                "kind": "online-endpoint",
                "name": name,
                "pid": pid,
                "processes": len(tree),
                "instances": _count(tree, INSTANCE),
                "collectors": _count(tree, COLLECTOR),
                "memory_mb": _memory_mb(tree),
                "stop": f"amlocal online-endpoint delete -n {name} --yes (or amlocal workspace stop)",
            }
        )
    return rows


def _scheduler(ws: Workspace) -> list[dict[str, Any]]:
    from amlocal.schedules import daemon

    pid = daemon.running_pid(ws.home)
    if pid is None:
        return []
    from amlocal.schedules.definition import KIND

    enabled = sorted(r["name"] for r in ws.store.list(KIND) if r.get("is_enabled"))
    tree = _tree(pid)
    return [
        {
            "kind": "scheduler",
            "name": ", ".join(enabled) or "(none enabled)",
            "pid": pid,
            "processes": len(tree),
            "memory_mb": _memory_mb(tree),
            "stop": "amlocal schedule disable -n <name> for each (amlocal workspace stop: "
            "until the next schedule verb)",
        }
    ]


def _runners(ws: Workspace) -> list[dict[str, Any]]:
    rows = []
    for job in ws.store.list("job"):
        pid = job.get("_runner_pid")
        if job.get("status") not in ACTIVE_JOB or not isinstance(pid, int) or pid <= 0:
            continue
        if not procs.runs(pid, "amlocal"):
            continue
        tree = _tree(pid)
        rows.append(
            {
                "kind": "job",
                "name": job["name"],
                "pid": pid,
                "processes": len(tree),
                "memory_mb": _memory_mb(tree),
                "stop": f"amlocal job cancel -n {job['name']}",
            }
        )
    return rows


def running(ws: Workspace) -> list[dict[str, Any]]:
    """Every process group the workspace started that still runs, one row each."""
    return [*_endpoints(ws), *_scheduler(ws), *_runners(ws)]


def _note_resident() -> None:
    """The resident CLI server is no workspace's (every workspace's commands fork from it):
    named on stderr, not as a row."""
    from amlocal import resident

    for server in resident.running():
        sys.stderr.write(
            f"amlocal's resident CLI server runs (pid {server['pid']}, shared by every "
            "workspace; `amlocal workspace stop` stops it, AMLOCAL_RESIDENT=0 runs without it)."
            "\n"
        )


def status(args: argparse.Namespace) -> Any:
    ws = Workspace()
    rows = running(ws)
    if not rows:  # a table of nothing prints nothing: say so, off stdout
        sys.stderr.write(f"Nothing runs for the workspace {ws.home}.\n")
    _note_resident()
    return rows


def stop(args: argparse.Namespace) -> Any:
    """Stop each process `status` lists; returns what was stopped."""
    import signal
    import time

    from amlocal import resident
    from amlocal.endpoints.verbs.online_daemon import stop_daemon

    ws = Workspace()
    rows = running(ws)
    if not rows:
        sys.stderr.write(f"Nothing runs for the workspace {ws.home}.\n")
    for pid in resident.stop():  # its running commands finish first; the next starts it again
        sys.stderr.write(f"Stopped amlocal's resident CLI server (pid {pid}).\n")
    others = [r["pid"] for r in rows if r["kind"] != "online-endpoint"]
    for row in rows:
        if row["kind"] == "job":  # what `job cancel` does: ask the runner, which stops its steps
            ws.store.update("job", row["name"], lambda r: r.update(status="CancelRequested"))
    for pid in others:  # the scheduler and runners end on SIGTERM
        _kill(pid, signal.SIGTERM)
    for row in rows:
        if row["kind"] == "online-endpoint":
            stop_daemon(ws, row["name"])  # its instances and collectors go with it
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(procs.alive(p) for p in others):
        time.sleep(0.05)
    for pid in filter(procs.alive, others):
        if _group_of(pid) == pid:  # a detached runner leads its session: take its steps too
            procs.stop_group(pid)
        else:
            _kill(pid, signal.SIGKILL)
    return [{"kind": r["kind"], "name": r["name"], "pid": r["pid"], "stopped": True} for r in rows]


def _kill(pid: int, sig: int) -> None:
    import os

    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_of(pid: int) -> int | None:
    import os

    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
