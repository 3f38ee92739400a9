"""The MLflow batch driver reads a CSV in chunks (issue 32, item 7: one 400 MB CSV made a
batch worker peak at 3.07 GB): scoring a ~60 MB CSV raises the worker's peak RSS by far less
than the file's size read whole. Measured in a fresh process (ru_maxrss)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DRIVER = REPO / "amlocal" / "endpoints" / "mlflow_batch" / "mlflow_batch_driver.py"

SCRIPT = """
import importlib.util, json, resource, sys
import numpy as np, pandas as pd
from sklearn.linear_model import LinearRegression

rng = np.random.default_rng(0)
cols = [f"c{i}" for i in range(10)]
small = pd.DataFrame(rng.random((100, 10)), columns=cols)
model = LinearRegression().fit(small, rng.random(100))
spec = importlib.util.spec_from_file_location("driver", sys.argv[1])
driver = importlib.util.module_from_spec(spec)
spec.loader.exec_module(driver)
driver.model = model
driver.run([sys.argv[2]])  # warm: imports, first allocations
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = driver.run([sys.argv[3]])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": len(out), "grew_mb": (after - before) / 1024}))
"""


@pytest.mark.subprocess  # the driver runs in a process of its own, to measure its memory
def test_a_big_csv_is_scored_in_chunks(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    header = ",".join(f"c{i}" for i in range(10))
    small = tmp_path / "small.csv"
    np.savetxt(small, rng.random((1000, 10)), delimiter=",", header=header, comments="", fmt="%.6f")
    big = tmp_path / "big.csv"
    with open(big, "w") as f:
        f.write(header + "\n")
        for _ in range(8):
            np.savetxt(f, rng.random((100_000, 10)), delimiter=",", fmt="%.6f")
    size_mb = big.stat().st_size / 2**20
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(DRIVER), str(small), str(big)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.splitlines()[-1])
    assert got["rows"] == 800_000
    # Read whole, the frame alone is 61 MB (800,000 x 10 float64) and pandas' parser peaks
    # at a multiple of it; in chunks the growth is the predictions and the result frame.
    assert got["grew_mb"] < size_mb, (got, size_mb)
