"""Serving benchmark: the amlocal endpoint against azmlinfsrv hit directly and against
`mlflow models serve`, on one model, single-row requests, bounded closed-loop load on 127.0.0.1.

    .venv/bin/python bench/serving.py [--seconds 8] [--rounds 4] [--json results.json]

Targets (issue 4): endpoint >= 0.85x direct azmlinfsrv throughput at 16 connections, <= 1 ms
added p50, >= 6x `mlflow models serve`; a deployment Succeeded within 5 s of `create`;
`amlocal online-endpoint invoke` under 0.6 s for the whole process; data collection (issue
19: score.py's Collector writing model inputs/outputs through the agent) costs <= 10% of the
endpoint's throughput at 16 connections (endpoint `diabetes-dc`, the same blue/green
deployments with collection on, against `diabetes` with it off). The servers are
measured in interleaved rounds (endpoint, azmlinfsrv, mlflow, endpoint, ...) and each
figure is the median over rounds, so a slow spell on a shared box hits all three alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROW = [59.0, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0]
COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
BIN = Path(sys.executable).parent


# -- load generator (runs in its own process) ------------------------------------------------
async def _worker(port: int, request: bytes, end: float, lat: list, errors: list) -> None:
    reader = writer = None
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split(b" ")[1])
            length, close = 0, False
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    length = int(v)
                elif k == b"connection" and v.strip().lower() == b"close":
                    close = True
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            if status != 200:
                errors.append(status)
            if close:
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            errors.append(type(exc).__name__)
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def _load(
    port: int, path: str, headers: dict, body: bytes, conns: int, seconds: float
) -> dict:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    lat: list[float] = []
    errors: list = []
    warm_end = time.perf_counter() + 0.5
    await asyncio.gather(*(_worker(port, request, warm_end, [], []) for _ in range(conns)))
    start = time.perf_counter()
    end = start + seconds
    await asyncio.gather(*(_worker(port, request, end, lat, errors) for _ in range(conns)))
    took = time.perf_counter() - start
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else None  # noqa: E731
    return {
        "rps": len(lat) / took,
        "p50_ms": q(0.5),
        "p99_ms": q(0.99),
        "n": len(lat),
        "errors": len(errors),
        "error_kinds": sorted({str(e) for e in errors})[:5],
    }


def load(port: int, path: str, headers: dict, body: bytes, conns: int, seconds: float) -> dict:
    args = json.dumps([port, path, headers, body.decode(), conns, seconds])
    out = subprocess.run(
        [sys.executable, __file__, "--_load", args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


# -- servers ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, path: str, seconds: float = 120) -> None:
    import http.client

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server on {port} not ready")


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def amlocal(home: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    env = {
        **os.environ,
        "AMLOCAL_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
    }
    t0 = time.perf_counter()
    r = subprocess.run([str(BIN / "amlocal"), *args], env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"amlocal {' '.join(args)}: {r.stderr}")
    return took, r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0, help="per server and concurrency")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    tmp = Path(tempfile.mkdtemp(prefix="amlocal-bench-"))
    home = tmp / "home"
    os.environ["AMLOCAL_HOME"] = str(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home}/mlflow.db"
    import online_support as s

    from amlocal.workspace import Workspace

    ws = Workspace()
    model, X = s.fit_model()
    model_dir = s.save_model(model, X, tmp / "model")
    s.register(ws, model_dir)
    s.register_score_env(ws)
    results: dict = {}
    procs: list[subprocess.Popen] = []
    body = json.dumps({"data": [ROW]}).encode()
    try:
        # Endpoint: blue 90 / green 10, keys on. 16 connections must not hit the 429 limit
        # (2 x max_concurrent x instances), so allow 8 per instance; workers stay at 2.
        cfg = s.ENDPOINT_DIR
        amlocal(home, "online-endpoint", "create", "-f", str(cfg / "endpoint.yml"))
        overrides = ["--set", "request_settings.max_concurrent_requests_per_instance=8"]
        collect = [  # the repository's deployments collect; the baseline endpoint does not
            "--set",
            'data_collector.collections.model_inputs.enabled="False"',
            "--set",
            'data_collector.collections.model_outputs.enabled="False"',
        ]
        results["create_s"], _ = amlocal(
            home,
            "online-deployment",
            "create",
            "-f",
            str(cfg / "blue.yml"),
            "--all-traffic",
            *overrides,
            *collect,
        )
        amlocal(
            home, "online-deployment", "create", "-f", str(cfg / "green.yml"), *overrides, *collect
        )
        amlocal(
            home, "online-endpoint", "update", "-n", "diabetes", "--traffic", "blue=90 green=10"
        )
        # The same endpoint with data collection on (the YAML as shipped).
        amlocal(
            home, "online-endpoint", "create", "-f", str(cfg / "endpoint.yml"), "-n", "diabetes-dc"
        )
        for dep in ("blue", "green"):
            amlocal(
                home,
                "online-deployment",
                "create",
                "-f",
                str(cfg / f"{dep}.yml"),
                "--endpoint-name",
                "diabetes-dc",
                *overrides,
            )
        amlocal(
            home, "online-endpoint", "update", "-n", "diabetes-dc", "--traffic", "blue=90 green=10"
        )
        _, show = amlocal(home, "online-endpoint", "show", "-n", "diabetes-dc")
        dc_port = int(json.loads(show.stdout)["scoring_uri"].split(":")[2].split("/")[0])
        _, cred = amlocal(home, "online-endpoint", "get-credentials", "-n", "diabetes-dc")
        dc_key = json.loads(cred.stdout)["primaryKey"]
        _, show = amlocal(home, "online-endpoint", "show", "-n", "diabetes")
        port = int(json.loads(show.stdout)["scoring_uri"].split(":")[2].split("/")[0])
        _, cred = amlocal(home, "online-endpoint", "get-credentials", "-n", "diabetes")
        key = json.loads(cred.stdout)["primaryKey"]
        invokes = [
            amlocal(
                home,
                "online-endpoint",
                "invoke",
                "-n",
                "diabetes",
                "-r",
                str(cfg / "sample-request.json"),
            )[0]
            for _ in range(5)
        ]
        results["invoke_process_s"] = statistics.median(invokes)

        # azmlinfsrv direct: same launcher, score.py, model and WORKER_COUNT as blue.
        direct = free_port()
        env = {**os.environ, "WORKER_COUNT": "2", "GUNICORN_CMD_ARGS": "--no-control-socket"}
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "amlocal.endpoints.instance.loopback",
                    "--entry_script",
                    str(REPO / "src/score/score.py"),
                    "--model_dir",
                    str(model_dir),
                    "--port",
                    str(direct),
                ],
                cwd=REPO / "src/score",
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        mlf = free_port()
        procs.append(
            subprocess.Popen(
                [
                    str(BIN / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    str(model_dir),
                    "--env-manager",
                    "local",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(mlf),
                ],
                env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},  # uvicorn
                stdout=open(tmp / "mlflow.log", "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        wait_http(direct, "/")
        wait_http(mlf, "/ping")

        auth = {"Authorization": f"Bearer {key}"}
        mbody = json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [ROW]}}).encode()
        targets = {
            "endpoint": (port, "/score", auth, body),
            "azmlinfsrv": (direct, "/score", {}, body),
            "mlflow": (mlf, "/invocations", {}, mbody),
            "collecting": (dc_port, "/score", {"Authorization": f"Bearer {dc_key}"}, body),
        }
        for conns in (16, 1):
            rounds: dict[str, list[dict]] = {name: [] for name in targets}
            for _ in range(args.rounds):
                for name, (p, path, hdrs, payload) in targets.items():
                    r = load(p, path, hdrs, payload, conns, args.seconds / args.rounds)
                    rounds[name].append(r)
            for name, rs in rounds.items():
                results[f"{name}_c{conns}"] = {
                    "rps": statistics.median(r["rps"] for r in rs),
                    "p50_ms": statistics.median(r["p50_ms"] for r in rs),
                    "p99_ms": statistics.median(r["p99_ms"] for r in rs),
                    "n": sum(r["n"] for r in rs),
                    "errors": sum(r["errors"] for r in rs),
                    "error_kinds": sorted({k for r in rs for k in r["error_kinds"]})[:5],
                    "rounds": rs,
                }
    finally:
        for p in procs:
            stop(p)
        for name in ("diabetes", "diabetes-dc"):
            try:
                amlocal(home, "online-endpoint", "delete", "-n", name, "--yes")
            except RuntimeError as exc:
                print(exc, file=sys.stderr)
    e16, d16, m16 = results["endpoint_c16"], results["azmlinfsrv_c16"], results["mlflow_c16"]
    e1, d1 = results["endpoint_c1"], results["azmlinfsrv_c1"]
    summary = {
        "throughput_vs_azmlinfsrv_c16": e16["rps"] / d16["rps"],
        "added_p50_ms_c16": e16["p50_ms"] - d16["p50_ms"],
        "added_p50_ms_c1": e1["p50_ms"] - d1["p50_ms"],
        "throughput_vs_mlflow_c16": e16["rps"] / m16["rps"],
        "deployment_create_s": results["create_s"],
        "invoke_process_s": results["invoke_process_s"],
        "collecting_throughput_vs_endpoint_c16": results["collecting_c16"]["rps"] / e16["rps"],
    }
    collected = sorted((home / "datastores").rglob("*.jsonl"))
    summary["collected_records"] = sum(len(f.read_bytes().splitlines()) for f in collected)
    results["summary"] = summary
    for name in ("endpoint", "collecting", "azmlinfsrv", "mlflow"):
        for c in (16, 1):
            r = results[f"{name}_c{c}"]
            print(
                f"{name:11s} c={c:<2d} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  errors {r['errors']} {r['error_kinds']}"
            )
    targets = {
        "throughput_vs_azmlinfsrv_c16": ">= 0.85",
        "added_p50_ms_c16": "<= 1",
        "added_p50_ms_c1": "<= 1",
        "throughput_vs_mlflow_c16": ">= 6",
        "deployment_create_s": "create returns Succeeded; <= 5 s",
        "invoke_process_s": "< 0.6",
        "collecting_throughput_vs_endpoint_c16": ">= 0.90",
        "collected_records": "inputs + outputs of every request to diabetes-dc",
    }
    for k, v in summary.items():
        print(f"{k:38s} {v:10.3f}   target {targets[k]}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--_load":
        port, path, headers, body, conns, seconds = json.loads(sys.argv[2])
        print(json.dumps(asyncio.run(_load(port, path, headers, body.encode(), conns, seconds))))
    else:
        main()
