"""The studio against `make ui` (MLflow's own server), in one run: time to the first page and
memory (RSS of the whole process tree), on the same workspace.

    .venv/bin/python bench/studio.py [--repeat 3] [--json out.json]

A throwaway workspace gets one real pipeline job (three shell steps, one of them failing),
then, for each contender, a fresh process is started on a free 127.0.0.1 port and timed until
its first page answers 200: the studio's `/jobs/<pipeline>` (the graph page, plus the graph
JSON it polls), MLflow's `/` (its single-page app; its data calls come after). RSS is summed
over the process and all its descendants once that page is served; then the process group
gets SIGTERM and the time it takes to be gone is the stop time.

Targets (issue 30): the studio ready in under 2 s and under 200 MB. Numbers from a loaded
machine (CI, or a box shared with other work) are only a smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from statistics import median

import psutil

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

PIPELINE = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
experiment_name: bench-studio
settings:
  default_compute: azureml:cpu-cluster
  continue_on_step_failure: true
jobs:
  prep:
    type: command
    command: echo prep > ${{outputs.out}}/p.txt
    environment: azureml:bench-env@latest
    outputs: {out: {type: uri_folder}}
  train:
    type: command
    command: cat ${{inputs.data}}/p.txt
    environment: azureml:bench-env@latest
    inputs: {data: "${{parent.jobs.prep.outputs.out}}"}
  broken:
    type: command
    command: exit 3
    environment: azureml:bench-env@latest
"""
ENV = """\
$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
name: bench-env
image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def workspace(root: Path) -> tuple[dict[str, str], str]:
    env = {**os.environ, "AMLOCAL_HOME": str(root / ".amlocal"), "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    (root / "env.yml").write_text(ENV)
    (root / "pipe.yml").write_text(PIPELINE)
    cli = [PY, "-m", "amlocal.cli"]
    subprocess.run(
        [*cli, "environment", "create", "-f", "env.yml", "-o", "none"],
        cwd=root,
        env=env,
        check=True,
    )
    r = subprocess.run(
        [*cli, "job", "create", "-f", "pipe.yml", "--stream", "--query", "name", "-o", "tsv"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    return env, r.stdout.strip()


def tree_rss(pid: int) -> int:
    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def get(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 (loopback)
            r.read()
            return r.status == 200
    except OSError:
        return False


def measure(
    argv: list[str], env: dict[str, str], cwd: Path, urls: list[str], timeout: float
) -> dict[str, float]:
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while not get(urls[0]):
            if proc.poll() is not None or time.monotonic() - start > timeout:
                raise RuntimeError(f"{argv} did not serve {urls[0]} (exit {proc.poll()})")
            time.sleep(0.02)
        first = time.monotonic() - start
        for u in urls[1:]:
            assert get(u), u
        rss = tree_rss(proc.pid)
        procs = 1 + len(psutil.Process(proc.pid).children(recursive=True))
    finally:
        stop = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        stopped = time.monotonic() - stop
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # nothing of the group may outlive the bench
        except ProcessLookupError:
            pass
    return {"first_page_s": first, "rss_mb": rss / 2**20, "processes": procs, "stop_s": stopped}


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=300.0, help="per start, seconds")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-studio-") as tmp:
        root = Path(tmp)
        env, job = workspace(root)
        runs: dict[str, list[dict[str, float]]] = {"studio": [], "make ui": []}
        for _ in range(args.repeat):
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            runs["studio"].append(
                measure(
                    [PY, "-m", "amlocal.cli", "studio", "--port", str(port)],
                    env,
                    root,
                    [f"{base}/jobs/{job}", f"{base}/api/jobs/{job}/graph"],
                    args.timeout,
                )
            )
            port = free_port()
            runs["make ui"].append(
                measure(
                    [PY, "-m", "amlocal.ui"],
                    {**env, "AMLOCAL_UI_PORT": str(port)},
                    root,
                    [f"http://127.0.0.1:{port}/"],
                    args.timeout,
                )
            )
    summary = {name: {k: median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    print(f"{args.repeat} start(s) each, medians; ratio = make ui / studio")
    print(f"{'metric':<16}{'studio':>10}{'make ui':>10}{'ratio':>9}")
    for key, label in (
        ("first_page_s", "first page (s)"),
        ("rss_mb", "RSS (MB)"),
        ("processes", "processes"),
        ("stop_s", "stop (s)"),
    ):
        a, b = summary["studio"][key], summary["make ui"][key]
        print(f"{label:<16}{a:>10.2f}{b:>10.2f}{(b / a if a else float('nan')):>8.1f}x")
    ok = summary["studio"]["first_page_s"] < 2 and summary["studio"]["rss_mb"] < 200
    print(f"studio targets (< 2 s, < 200 MB): {'met' if ok else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "median": summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
