"""Start-up benchmark: import and CLI start-up times without and with compiled bytecode, in
the same run, on the project venv as `make setup` leaves it.

    .venv/bin/python bench/startup.py [--rounds 3] [--train] [--json results.json]

Why: CI and many containers export PYTHONDONTWRITEBYTECODE=1, so without .pyc on disk every
process compiles every module it imports, every time (issue 26). `make setup` compiles the
venv (uv --compile-bytecode), amlocal/ and src/; the environment builder compiles the venvs
it builds.

Method (both sides in every round, interleaved, median over rounds, so a busy spell on a
shared box hits both alike):
- with .pyc: the command as a user runs it, PYTHONDONTWRITEBYTECODE=1 (the .pyc on disk are
  read, none are written);
- without .pyc: the same, plus PYTHONPYCACHEPREFIX pointing at an empty folder. Python then
  looks for bytecode only under that prefix (never in the __pycache__ folders beside the
  sources) and, with PYTHONDONTWRITEBYTECODE, never writes any: every import compiles from
  source, exactly as on a venv installed without bytecode. Both variables are inherited, so
  `--train` (a whole `make train`: the CLI, its steps and the endpoint it deploys) measures
  the process tree alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

ROWS: dict[str, list[str]] = {
    # The row: what a training step and the tracking server import.
    "import mlflow, sklearn, pandas, azure.ai.ml": [
        sys.executable,
        "-c",
        "import mlflow, sklearn.linear_model, pandas, azure.ai.ml",
    ],
    "import mlflow": [sys.executable, "-c", "import mlflow"],
    "amlocal workspace show": [str(BIN / "amlocal"), "workspace", "show", "-o", "none"],
    "amlocal environment create (YAML cached)": [
        str(BIN / "amlocal"),
        "environment",
        "create",
        "-f",
        "environments/train.yml",
        "-o",
        "none",
    ],
}


def _env(home: Path, no_pyc: Path | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "AMLOCAL_HOME": str(home)}
    env.pop("PYTHONPYCACHEPREFIX", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    if no_pyc is not None:
        env["PYTHONPYCACHEPREFIX"] = str(no_pyc)
    return env


def _time(argv: list[str], env: dict[str, str], timeout: float) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv)} exited {r.returncode}:\n{r.stderr[-2000:]}")
    return elapsed


def _train(home: Path, env: dict[str, str]) -> float:
    """`make train` on a fresh workspace; its endpoint is deleted afterwards (untimed)."""
    argv = ["make", "-s", "train", f"AML={BIN / 'amlocal'}"]
    try:
        return _time(argv, env, 3600)
    finally:
        out = subprocess.run(
            [str(BIN / "amlocal"), "online-endpoint", "list", "--query", "[].name", "-o", "tsv"],
            cwd=REPO, env=env, capture_output=True, text=True,
        )  # fmt: skip
        for name in out.stdout.split():
            subprocess.run(
                [str(BIN / "amlocal"), "online-endpoint", "delete", "-n", name, "--yes"],
                cwd=REPO, env=env, capture_output=True,
            )  # fmt: skip


def _compiled_share() -> float:
    """The share of the venv's .py files with a .pyc for this interpreter (`make setup`)."""
    tag = sys.implementation.cache_tag
    sources = list((Path(sys.prefix) / "lib").rglob("*.py"))
    done = sum((p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc").exists() for p in sources)
    return done / max(1, len(sources))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--train", action="store_true", help="also time `make train` (minutes)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    print(f"venv {sys.prefix}: {_compiled_share():.0%} of its .py files have .pyc")
    times: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="amlocal-bench-startup-") as tmp:
        base = Path(tmp)
        warm = base / "home-warm"  # the CLI rows share a workspace (made in round 0, untimed)
        subprocess.run(ROWS["amlocal environment create (YAML cached)"], cwd=REPO,
                       env=_env(warm, None), capture_output=True, check=True)  # fmt: skip
        for i in range(args.rounds):
            for label, argv in ROWS.items():
                for side in ("without .pyc", "with .pyc"):
                    empty = base / f"pycache-{i}-{side[0]}"
                    env = _env(warm, empty if side == "without .pyc" else None)
                    times.setdefault(label, {}).setdefault(side, []).append(_time(argv, env, 900))
            if args.train:
                for side in ("without .pyc", "with .pyc"):
                    home = base / f"home-train-{i}-{side[0]}"
                    empty = base / f"pycache-train-{i}-{side[0]}"
                    env = _env(home, empty if side == "without .pyc" else None)
                    times.setdefault("make train", {}).setdefault(side, []).append(
                        _train(home, env)
                    )
    load = os.getloadavg()[0]
    print(f"\nmedian of {args.rounds} rounds, s (load average {load:.1f}, {os.cpu_count()} CPUs)")
    print(f"{'':44} {'without .pyc':>13} {'with .pyc':>10} {'ratio':>6}")
    rows = {}
    for label, sides in times.items():
        a, b = statistics.median(sides["without .pyc"]), statistics.median(sides["with .pyc"])
        rows[label] = {"without_pyc_s": a, "with_pyc_s": b, "ratio": a / b}
        print(f"{label:44} {a:13.2f} {b:10.2f} {a / b:5.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "load": load}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
