"""The data-collector agent: what `azureml-ai-monitoring`'s Collector talks to beside the model.

How the real library finds its agent (azureml/ai/monitoring/config/config.py, worker/sender.py):
`AZUREML_MDC_CONFIG_PATH` names a JSON file `{"collections": {<name>: {"enabled": true,
"sampleRatePercentage": N}}}`; payloads are POSTed to
`http://$AZUREML_MDC_HOST:$AZUREML_MDC_PORT/modeldata/log` with CloudEvents-style headers
(`ce-type: azureml.inference.<collection>`, `ce-time`, `ce-x-request-id` = the correlation id,
`trace-id` = the payload id, ...) and the DataFrame as JSON records in the body.

amlocal runs one agent process per instance of a deployment that has `data_collector:`
(`python -m amlocal.endpoints.collector <spec.json> <instance>`), and it writes each payload
as one JSON line where Azure writes it:
`<default datastore>/modelDataCollector/<endpoint>/<deployment>/<collection>/YYYY/MM/DD/HH/<instance>.jsonl`
(the last folders follow `rolling_rate`). The records carry Azure's fields (specversion, id,
source, type, datacontenttype, time, data, correlationid, xrequestid, modelversion,
collectdatatype, agent, contentrange). Each collection is registered as a `uri_folder` data
asset `<endpoint>-<deployment>-<collection>` (or the name in `collections.<c>.data`).
Source: https://learn.microsoft.com/azure/machine-learning/how-to-collect-production-data

Speed (issue 19, bench/serving.py `collecting_throughput_vs_endpoint_c16`): in each scoring
worker the library's transport is replaced by `collector_transport.BatchTransport`, which sends the
payloads of ~50 ms as one `POST /modeldata/batch`; the agent writes each through a file
handle and record time looked up once per (collection, second) and flushes every 0.2 s and
on SIGTERM. Measured on the shared 2-core box: agent CPU 506 -> 90 us per record (one post
per payload vs batches of 16), collecting/plain throughput at c16 0.57 -> 0.83 (one blue
instance). What remains is the library's own per-payload work in the worker (DataFrame,
`collect`, `to_json`) and its thread hand-offs; see docs/local-vs-azure.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from amlocal.endpoints.instance.collector_transport import (
    BATCH_PATH,
    MAX_BODY,
    TOKEN_ENV,
    TOKEN_HEADER,
    decode_frames,
)

PAYLOAD_COLLECTIONS = ("request", "response")
MAX_BATCH = 4 * MAX_BODY  # a /modeldata/batch body (the sender flushes at BATCH_BYTES)
_COLLECTION = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_dumps = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps(..., separators=...)
_ROLL = {"minute": 5, "hour": 4, "day": 3, "month": 2, "year": 1}  # path parts kept


def _truthy(v: Any) -> bool:
    return str(v).strip().lower() in ("true", "1", "yes")


def runtime_spec(
    home: Path, endpoint: str, deployment: str, arm_id: str, dc: dict[str, Any]
) -> dict[str, Any] | None:
    """What an instance needs to run its agent, from the deployment's `data_collector:`."""
    from amlocal.errors import InvalidInput

    rate = dc.get("sampling_rate")
    rate = 1.0 if rate is None else float(rate)
    if not 0.0 <= rate <= 1.0:
        raise InvalidInput("data_collector.sampling_rate: expected a number between 0 and 1")
    rolling = str(dc.get("rolling_rate") or "hour").lower()
    if rolling not in _ROLL:
        raise InvalidInput(f"data_collector.rolling_rate: expected one of {list(_ROLL)}")
    collections: dict[str, Any] = {}
    for name, c in (dc.get("collections") or {}).items():
        if not _COLLECTION.match(str(name)):
            raise InvalidInput(f"data_collector.collections: bad collection name {name!r}")
        c = c or {}
        if not _truthy(c.get("enabled", "false")):
            continue
        data = c.get("data") or {}
        data = {"name": data} if isinstance(data, str) else data
        collections[str(name).lower()] = {
            "sampleRatePercentage": round(rate * 100, 4),
            "asset": data.get("name") or f"{endpoint}-{deployment}-{name}",
            "asset_version": str(data.get("version") or 1),
            "asset_path": data.get("path"),
        }
    if not collections:
        return None
    headers = (dc.get("request_logging") or {}).get("capture_headers") or []
    return {
        "home": str(home),
        "endpoint": endpoint,
        "deployment": deployment,
        "source": arm_id,
        "rolling_rate": rolling,
        "collections": collections,
        "capture_headers": [str(h).lower() for h in headers],
    }


def collection_dir(home: Path, spec: dict[str, Any], collection: str) -> Path:
    from amlocal.workspace import Workspace

    path = spec["collections"][collection].get("asset_path")
    if path:
        from amlocal.assets.data import resolve_path

        local = resolve_path(Workspace(home), str(path), home)
        if local is not None:
            return local
    return Path(
        Workspace(home).datastore_dir()
        / "modelDataCollector"
        / spec["endpoint"]
        / spec["deployment"]
        / collection
    )


def register_assets(spec: dict[str, Any]) -> None:
    """Each collection as a uri_folder data asset, as Azure registers them."""
    from amlocal.workspace import DEFAULT_DATASTORE, Workspace

    ws = Workspace(Path(spec["home"]))
    for name, c in spec["collections"].items():
        d = collection_dir(ws.home, spec, name)
        d.mkdir(parents=True, exist_ok=True)
        rel = d.relative_to(ws.datastore_dir()) if d.is_relative_to(ws.datastore_dir()) else None
        uri = c.get("asset_path") or (
            f"azureml://datastores/{DEFAULT_DATASTORE}/paths/{rel}" if rel else str(d)
        )
        record = {
            "name": c["asset"],
            "version": c["asset_version"],
            "type": "uri_folder",
            "path": uri,
            "description": f"Data collected from {spec['endpoint']}/{spec['deployment']} ({name})",
            "tags": {},
            "id": "azureml:" + ws.arm_id(f"data/{c['asset']}/versions/{c['asset_version']}"),
            "_identity": uri,
        }
        ws.store.insert_new("data", c["asset"], record, version=c["asset_version"])


# -- the instance side -------------------------------------------------------------------
class Agent:
    """The agent process of one instance; `env()` is what the instance needs to find it."""

    def __init__(self, spec: dict[str, Any], instance: str, log_path: Path) -> None:
        self.spec = spec
        self.instance = instance
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.config = log_path.parent / f"{instance}.mdc.json"
        # Records are accepted only with this token (the instance gets it in its environment):
        # any local process could otherwise write into the collections (issue 32).
        import secrets

        self.token = secrets.token_urlsafe(24)

    def start(self) -> None:
        from amlocal.ports import free_port

        self.port = free_port()
        self.config.parent.mkdir(parents=True, exist_ok=True)
        cfg = {
            "runMode": "cloud",
            "collections": {
                n: {"enabled": True, "sampleRatePercentage": c["sampleRatePercentage"]}
                for n, c in self.spec["collections"].items()
            },
        }
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(json.dumps(cfg))
        tmp.replace(self.config)
        spec_file = self.log_path.parent / f"{self.instance}.agent.json"
        fd = os.open(spec_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:  # holds the token: readable by this user only
            f.write(
                json.dumps(
                    {**self.spec, "port": self.port, "instance": self.instance, "token": self.token}
                )
            )
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "amlocal.endpoints.collector", str(spec_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def env(self) -> dict[str, str]:
        payload = {
            n: c["sampleRatePercentage"]
            for n, c in self.spec["collections"].items()
            if n in PAYLOAD_COLLECTIONS
        }
        env = {
            "AZUREML_MDC_CONFIG_PATH": str(self.config),
            "AZUREML_MDC_HOST": "127.0.0.1",
            "AZUREML_MDC_PORT": str(self.port),
            TOKEN_ENV: self.token,
        }
        if payload:
            env["AMLOCAL_MDC_PAYLOAD"] = json.dumps(
                {"collections": payload, "capture_headers": self.spec["capture_headers"]}
            )
        return env

    def stop(self) -> None:
        if self.proc is None:
            return
        from amlocal import procs

        procs.stop_group(self.proc.pid, self.proc, procs.GENTLE)  # its own session
        self.proc = None


# -- the agent process ---------------------------------------------------------------------
class Writer:
    """Appends records to the rolling JSONL files of each collection."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.home = Path(spec["home"])
        self.dirs = {n: collection_dir(self.home, spec, n) for n in spec["collections"]}
        self.parts = _ROLL[spec["rolling_rate"]]
        self.files: dict[Path, Any] = {}
        self._targets: dict[tuple[str, str | None], tuple[Any, str]] = {}
        self.written = 0
        self.posts = 0
        self.rejected = 0

    def path(self, collection: str, t: dt.datetime) -> Path:
        parts = [
            f"{t.year:04d}",
            f"{t.month:02d}",
            f"{t.day:02d}",
            f"{t.hour:02d}",
            f"{t.minute:02d}",
        ]
        return (
            self.dirs[collection].joinpath(*parts[: self.parts]) / f"{self.spec['instance']}.jsonl"
        )

    def write(self, headers: dict[str, str], body: bytes) -> int:
        ctype = headers.get("ce-type", "")
        collection = ctype.removeprefix("azureml.inference.").lower()
        if collection not in self.dirs:
            self.rejected += 1
            return 400
        stamp = headers.get("ce-time")
        target = self._targets.get((collection, stamp))
        if target is None:
            target = self._target(collection, stamp)
        f, when = target
        content_type = headers.get("content-type", "application/json")
        try:
            data: Any = (
                json.loads(body) if "json" in content_type else body.decode("utf-8", "replace")
            )
        except ValueError:
            data = body.decode("utf-8", "replace")
        correlation = headers.get("ce-x-request-id") or headers.get("trace-id")
        record = {
            "specversion": "1.0",
            "id": headers.get("trace-id") or "",
            "source": self.spec["source"],
            "type": ctype,
            "datacontenttype": content_type,
            "time": when,
            "data": data,
            "correlationid": correlation,
            "xrequestid": headers.get("ce-xrequestid") or correlation,
            "modelversion": headers.get("ce-model-version") or "default",
            "collectdatatype": headers.get("ce-collect-data-type"),
            "agent": headers.get("ce-agent"),
            "contentrange": f"bytes 0-{max(len(body) - 1, 0)}/{len(body)}",
        }
        for key in ("path", "method", "headers"):  # payload logging's extra fields
            if f"ce-{key}" in headers:
                value = headers[f"ce-{key}"]
                record[key] = json.loads(value) if key == "headers" else value
        f.write(_dumps(record) + "\n")
        self.written += 1
        return 200

    def _target(self, collection: str, stamp: str | None) -> tuple[Any, str]:
        """The open file and the record `time` for a Collector timestamp (whole seconds:
        payloads of one second share them, so this runs about once a second)."""
        try:
            epoch = float(stamp or time.time())
        except ValueError:
            epoch = time.time()
        t = dt.datetime.fromtimestamp(epoch, dt.UTC)
        path = self.path(collection, t)
        f = self.files.get(path)
        if f is None:
            if len(self.files) > 64:
                self.close()
            path.parent.mkdir(parents=True, exist_ok=True)
            f = self.files[path] = open(path, "a", encoding="utf-8")  # noqa: SIM115
        target = (f, t.strftime("%Y-%m-%dT%H:%M:%SZ"))
        if stamp:
            if len(self._targets) > 256:
                self._targets.clear()
            self._targets[(collection, stamp)] = target
        return target

    def write_batch(self, body: bytes) -> int:
        try:
            frames = decode_frames(body)
        except ValueError:
            self.rejected += 1
            return 400
        for headers, data in frames:
            if len(data) > MAX_BODY:
                self.rejected += 1
            else:
                self.write(headers, data)  # an unknown collection is counted there
        return 200

    def flush(self) -> None:
        for f in self.files.values():
            f.flush()

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        self.files.clear()
        self._targets.clear()


async def _handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, w: Writer, token: bytes
) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target = (lines[0].split(" ") + ["", ""])[:2]
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                length = -1
            given = headers.get(TOKEN_HEADER, "").encode("latin-1")
            if token and not hmac.compare_digest(given, token):
                writer.write(
                    b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                w.rejected += 1
                return
            limit = MAX_BATCH if target == BATCH_PATH else MAX_BODY
            if length < 0 or length > limit:
                writer.write(
                    b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                w.rejected += 1
                return
            body = await reader.readexactly(length) if length else b""
            w.posts += 1
            if method == "POST" and target == "/modeldata/log":
                status = w.write(headers, body)
            elif method == "POST" and target == BATCH_PATH:
                status = w.write_batch(body)
            else:
                status = 404
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
            close = headers.get("connection", "").lower() == "close"
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\n"
                f"{'Connection: close' if close else 'Connection: keep-alive'}\r\n\r\n".encode()
            )
            if close:
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def serve(spec: dict[str, Any]) -> None:
    w = Writer(spec)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(spec["port"])))
    token = str(spec.get("token") or "").encode()
    server = await asyncio.start_server(
        lambda r, wr: _handle(r, wr, w, token), sock=sock, backlog=1024
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(
        f"amlocal: data collector agent for {spec['endpoint']}/{spec['deployment']} "
        f"({spec['instance']}) on 127.0.0.1:{spec['port']}: {', '.join(spec['collections'])}",
        flush=True,
    )
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)
        w.flush()  # records reach disk within 0.2 s, without a flush per record
    server.close()
    w.close()
    print(
        f"amlocal: data collector agent stopped: {w.written} records written "
        f"({w.posts} posts), {w.rejected} rejected",
        flush=True,
    )


def main(argv: list[str]) -> None:
    spec = json.loads(Path(argv[0]).read_text())
    from amlocal.procs import die_with_parent

    die_with_parent()  # with the endpoint daemon
    register_assets(spec)
    try:
        import uvloop

        uvloop.run(serve(spec))
    except ImportError:
        asyncio.run(serve(spec))
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
