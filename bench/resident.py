"""The resident CLI (amlocal.resident): `amlocal` commands forked from a warm server against
the same commands in a process of their own (AMLOCAL_RESIDENT=0), in the same run.

    .venv/bin/python bench/resident.py [--rounds 5]

Both sides in every round, interleaved, median over rounds (a busy spell on a shared box hits
both alike); whole commands as a user runs them (`.venv/bin/amlocal ...`), wall time. The
server is private to the run (AMLOCAL_RESIDENT_DIR) and started before the first round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AMLOCAL = str(Path(sys.executable).parent / "amlocal")
ENV_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
name: benchenv
image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04
"""
JOB_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: echo hello
environment: azureml:benchenv@latest
"""
ROWS = {
    "model list": ["model", "list"],
    "environment show": ["environment", "show", "-n", "benchenv", "-v", "1"],
    "job validate (a new YAML)": ["job", "validate", "-f", "job.yml"],
    "job create --stream (1 step)": ["job", "create", "-f", "job.yml", "--stream", "-o", "none"],
}


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    r = subprocess.run([AMLOCAL, *argv], cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"amlocal {' '.join(argv)} exited {r.returncode}: {r.stderr}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    rounds = ap.parse_args().rounds
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        served = {
            **os.environ,
            "AMLOCAL_HOME": str(work / ".amlocal"),
            "AMLOCAL_RESIDENT_DIR": str(work / "res"),
            "AMLOCAL_RESIDENT": "1",
        }
        served.pop("MLFLOW_TRACKING_URI", None)
        alone = {**served, "AMLOCAL_RESIDENT": "0"}
        (work / "env.yml").write_text(ENV_YML)
        (work / "job.yml").write_text(JOB_YML)
        _run(["environment", "create", "-f", "env.yml"], work, served)  # starts the server
        deadline = time.monotonic() + 120
        while not list((work / "res").glob("*.sock")) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # its preload done: the socket is bound after it
        times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in ROWS}
        for i in range(rounds):
            for name, argv in ROWS.items():
                if name.startswith("job validate"):  # a new YAML: nothing cached
                    (work / "job.yml").write_text(JOB_YML + f"description: round {i} {name}\n")
                a = _run(argv, work, served)
                if name.startswith("job validate"):
                    (work / "job.yml").write_text(JOB_YML + f"description: round {i} alone\n")
                b = _run(argv, work, alone)
                times[name][0].append(a)
                times[name][1].append(b)
            print(f"round {i + 1}/{rounds} done", file=sys.stderr)
        subprocess.run([AMLOCAL, "workspace", "stop"], cwd=work, env=served, capture_output=True)
    print(f"{'command (median of ' + str(rounds) + ')':<40}{'resident':>10}{'own process':>13}"
          f"{'ratio':>8}")  # fmt: skip
    for name, (a, b) in times.items():
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{name:<40}{ma:>9.3f}s{mb:>12.3f}s{mb / ma:>7.1f}x")


if __name__ == "__main__":
    main()
