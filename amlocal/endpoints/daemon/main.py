"""The per-endpoint daemon: front door + instance supervisor, detached from the CLI.

`python -m amlocal.endpoints.daemon.main <home> <endpoint>` forks once more and exits, so the
daemon is re-parented to init and never left as a zombie of the CLI (or of pytest). It reads
the endpoint and its deployments from the workspace store, starts `instance_count` azmlinfsrv
processes per deployment, serves the front door on the endpoint's port and restarts
instances that exit or fail their liveness probe. The CLI drives it through
`/.amlocal/control/{status,reload,shutdown}` with a token only the owner can read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from amlocal import procs, state
from amlocal.endpoints import keys as keyfile
from amlocal.endpoints import paths
from amlocal.endpoints.daemon.frontdoor import FrontDoor, Route, Table, traffic_table
from amlocal.endpoints.daemon.instances import Instance, http_get_ok, probe_settings
from amlocal.endpoints.daemon.listener import Server
from amlocal.store import Store

DEFAULT_QUEUE_WAIT_MS = 500  # Azure's request_settings.max_queue_wait_ms default


def reap_stale(state_dir: Path) -> None:
    """Stop instances a previous daemon left behind (it was SIGKILLed, say). Each is recorded
    as its pid and start time (`_save_pids`), and stopped only if that very process still
    runs: a module name on a command line would also match another endpoint's instance on a
    recycled pid, and miss instances started under an older module path."""
    f = state_dir / "instances.json"
    with contextlib.suppress(OSError, ValueError):
        recorded = json.loads(f.read_text())
        if not isinstance(recorded, list):  # damaged: nothing to reap, and nothing to fail on
            f.unlink()
            return
        for entry in recorded:
            if not isinstance(entry, dict):
                continue  # a bare pid proves nothing
            pid, started = entry.get("pid"), entry.get("started")
            if not (isinstance(pid, int) and pid > 0 and isinstance(started, int | float)):
                continue
            now = procs.started(pid)
            if now is not None and abs(now - started) < 0.01:
                procs.stop_group(pid)


class Daemon:
    def __init__(self, home: Path, endpoint: str) -> None:
        self.home = home
        self.endpoint = endpoint
        self.dir = paths.endpoint_dir(home, endpoint)
        self.store = Store(home / "store.db")
        self.keys = keyfile.with_instance_token(paths.keys_file(home, endpoint))
        # The keys and traffic are loaded before the first request is read: a restarting
        # front door must not answer a valid key with 401 while its instances start.
        ep, _ = self._records()
        self.door = FrontDoor(
            self._table(ep, {}), self.keys["control"], self.control, self.keys["instance"]
        )
        self.door.loaded.clear()
        self.deployments: dict[str, dict[str, Any]] = {}  # name -> {"digest", "state", "error"}
        self.lock = asyncio.Lock()
        self.server: Server | None = None
        self._pending: list[Route] = []
        self._restarting: set[int] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        # The instances' Unix sockets (the front door forwards over them): a directory of
        # this daemon's own, owner-only and short (a socket path has at most 107 bytes).
        self.socket_dir = tempfile.mkdtemp(prefix="amlocal-ep-")

    # -- configuration ---------------------------------------------------------------
    def _records(self) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        ep = self.store.get("online-endpoint", self.endpoint) or {}
        deps = {
            d["name"]: d
            for d in self.store.list("online-deployment", parent=self.endpoint)
            if d.get("_runtime")
        }
        return ep, deps

    def _table(self, ep: dict[str, Any], routes: dict[str, Route]) -> Table:
        self.keys = keyfile.read(paths.keys_file(self.home, self.endpoint))
        mirror = {k: v for k, v in (ep.get("mirror_traffic") or {}).items() if v}
        return Table(
            keys=(self.keys["primaryKey"].encode(), self.keys["secondaryKey"].encode()),
            auth_mode=ep.get("auth_mode", "key"),
            traffic=traffic_table(ep.get("traffic") or {}),
            mirror=next(iter(mirror.items())) if mirror else None,
            routes=routes,
        )

    def _route(self, name: str, rec: dict[str, Any]) -> Route:
        rt = rec["_runtime"]
        log_dir = paths.deployment_dir(self.home, self.endpoint, name)
        # Azure: at most 2 x max_concurrent_requests_per_instance x instance_count requests
        # processed at once; as many again may wait in the queue (memory stays bounded).
        inflight = 2 * rt["max_concurrent"] * rt["instance_count"]
        insts = [
            Instance(
                name,
                i,
                rt,
                log_dir / f"instance-{i}.log",
                token=self.keys["instance"],
                socket_dir=self.socket_dir,
            )
            for i in range(rt["instance_count"])
        ]
        route = Route(
            name=name,
            instances=insts,
            timeout_s=rt["request_timeout_ms"] / 1000.0,
            max_inflight=inflight,
            # Older records have no max_queue_wait_ms: Azure's default, 500 ms.
            queue_wait_s=rt.get("max_queue_wait_ms", DEFAULT_QUEUE_WAIT_MS) / 1000.0,
            max_queued=inflight,
        )
        return route

    async def _start_route(self, route: Route) -> str | None:
        for inst in route.instances:
            inst.start()
        self._save_pids()
        errors = await asyncio.gather(*(self._ready(route, i) for i in route.instances))
        errs = [e for e in errors if e]
        return "\n".join(errs) if errs else None

    async def _ready(self, route: Route, inst: Instance) -> str | None:
        err = await inst.wait_ready()
        route.notify()
        return err

    def _save_pids(self) -> None:
        pids = [i.pid for r in self.door.table.routes.values() for i in r.instances if i.pid]
        pids += [i.pid for r in self._pending for i in r.instances if i.pid]
        recorded = [{"pid": p, "started": procs.started(p)} for p in pids]
        state.write_json(self.dir / "instances.json", recorded)

    async def reload(self) -> dict[str, Any]:
        """Bring running deployments in line with the store; wait for new ones to be ready."""
        async with self.lock:
            ep, recs = self._records()
            old = self.door.table.routes
            routes: dict[str, Route] = {}
            starting: dict[str, Route] = {}
            for name, rec in recs.items():
                digest = rec["_runtime"]["digest"]
                current = self.deployments.get(name, {})
                if name in old and current.get("digest") == digest:
                    routes[name] = old[name]
                else:
                    starting[name] = self._route(name, rec)
            self._pending = list(starting.values())
            results = await asyncio.gather(*(self._start_route(r) for r in starting.values()))
            self._pending = []
            for (name, route), err in zip(starting.items(), results, strict=True):
                if err is None:
                    routes[name] = route
                    self.deployments[name] = {"digest": route.instances[0].runtime["digest"]}
                    self.deployments[name].update(state="Succeeded", error=None)
                else:
                    for inst in route.instances:
                        inst.stop()
                    self.deployments[name] = {"digest": None, "state": "Failed", "error": err}
                    if name in old:  # a failed update keeps the previous version serving
                        routes[name] = old[name]
            retired = [r for n, r in old.items() if routes.get(n) is not r]
            for name in list(self.deployments):
                if name not in recs:
                    del self.deployments[name]
            self.door.table = self._table(ep, routes)
            self._save_pids()
            for route in retired:
                await asyncio.to_thread(_stop_all, route)
            return self.status()

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pid": os.getpid(), "mirrored": self.door.mirrored}
        deps: dict[str, Any] = {}
        for name, st in self.deployments.items():
            route = self.door.table.routes.get(name)
            deps[name] = {
                "state": st.get("state"),
                "error": st.get("error"),
                "instances": [
                    {"pid": i.pid, "port": i.port, "ready": i.ready, "restarts": i.restarts}
                    for i in (route.instances if route else [])
                ],
            }
        out["deployments"] = deps
        if self.server is not None:
            out["connections"] = self.server.stats.as_dict(len(self.server.connections))
        return out

    async def control(self, verb: str, query: dict[str, str]) -> tuple[int, Any]:
        if verb == "status":
            async with self.lock:  # waits for a reload (start-up included) in progress
                return 200, self.status()
        if verb == "pid":  # who holds this port: answered at once, even during a reload
            return 200, {"pid": os.getpid(), "endpoint": self.endpoint}
        if verb == "reload":
            return 200, await self.reload()
        if verb == "shutdown":
            assert self.server is not None
            self.server.stop()
            return 200, {"stopping": True}
        return 404, {"message": f"unknown control verb {verb}"}

    # -- supervision -----------------------------------------------------------------
    async def supervise(self) -> None:
        """Restart instances that exited or failed `failure_threshold` liveness probes."""
        last_probe: dict[int, float] = {}
        while True:
            await asyncio.sleep(0.25)
            if self.lock.locked():
                continue
            for route in list(self.door.table.routes.values()):
                for inst in route.instances:
                    if inst.proc is None:
                        continue
                    if id(inst) in self._restarting:
                        continue
                    if not inst.alive():
                        self._spawn_restart(route, inst, f"exited with code {inst.proc.returncode}")
                        continue
                    if not inst.ready:  # refused a request: ready again once a probe passes
                        if await http_get_ok(inst.port, timeout=1.0, token=inst.token):
                            inst.ready = True
                            route.notify()
                        continue
                    s = probe_settings(inst.runtime.get("liveness_probe"))
                    now = time.monotonic()
                    if now - last_probe.get(id(inst), 0) < s["period"]:
                        continue
                    last_probe[id(inst)] = now
                    if await http_get_ok(inst.port, timeout=s["timeout"], token=inst.token):
                        inst.failures = 0
                    else:
                        inst.failures += 1
                        if inst.failures >= s["failure_threshold"]:
                            self._spawn_restart(route, inst, "failed its liveness probe")

    def _spawn_restart(self, route: Route, inst: Instance, why: str) -> None:
        self._restarting.add(id(inst))
        task = asyncio.ensure_future(self._restart(route, inst, why))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _restart(self, route: Route, inst: Instance, why: str) -> None:
        try:
            with open(inst.log_path, "ab") as log:
                log.write(f"--- amlocal: instance {inst.index} {why}; restarting\n".encode())
            await asyncio.to_thread(inst.stop)
            inst.restarts += 1
            await asyncio.sleep(min(0.5 * (inst.restarts - 1), 10.0))  # crash-loop back-off
            inst.start()
            self._save_pids()
            await self._ready(route, inst)
        finally:
            self._restarting.discard(id(inst))

    # -- main ------------------------------------------------------------------------
    async def serve(self, sock: socket.socket) -> None:
        self.server = Server(self.door.handle, self.door.precheck)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):  # stop gracefully: instances go too
            loop.add_signal_handler(sig, self.server.stop)

        async def first_load() -> None:
            try:
                await self.reload()
            finally:
                self.door.loaded.set()

        reload_task = asyncio.ensure_future(first_load())
        supervisor = asyncio.ensure_future(self.supervise())
        try:
            await self.server.serve(sock)
        finally:
            supervisor.cancel()
            reload_task.cancel()
            routes = list(self.door.table.routes.values()) + list(self._pending)
            for route in routes:
                _stop_all(route)
            with contextlib.suppress(OSError):
                (self.dir / "instances.json").unlink()
            shutil.rmtree(self.socket_dir, ignore_errors=True)  # created by this daemon


def _stop_all(route: Route) -> None:
    for inst in route.instances:
        inst.stop()


def raise_descriptor_limit() -> int:
    """Raise the soft limit on open files to the hard one: every connection and upstream
    request holds a descriptor, and the default soft limit (often 1024) is what a flood of
    idle connections exhausts first. Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv: list[str]) -> None:
    home, endpoint, port = Path(argv[0]), argv[1], int(argv[2])
    if os.fork() > 0:  # the CLI reaps this parent at once; init adopts the daemon
        os._exit(0)
    raise_descriptor_limit()
    state_dir = paths.endpoint_dir(home, endpoint)
    # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and without it every keep-alive response waits ~40 ms for a delayed ACK
    # (the uvicorn multi-worker bug in serving.md, section 2).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        print(f"amlocal: cannot bind 127.0.0.1:{port}: {exc}", flush=True)
        sys.exit(1)
    sock.listen(2048)
    # Only the process that holds the port may reap: a second daemon started by mistake (its
    # daemon.json lost, say) fails to bind above and leaves the live one's instances alone.
    reap_stale(state_dir)
    state.write_json(
        state_dir / "daemon.json", {"pid": os.getpid(), "port": port, "started": time.time()}
    )
    print(f"amlocal: endpoint {endpoint} front door on http://127.0.0.1:{port}", flush=True)
    import uvloop

    uvloop.run(Daemon(home, endpoint).serve(sock))
    print("amlocal: front door stopped", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
