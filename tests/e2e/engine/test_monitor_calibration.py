"""Issue 31, item 7: the shipped monitor does not cry wolf. bench/monitor.py scores the
monitor's own signals and thresholds (schedules/monitor-diabetes.yml) on 20 windows of 150
rows drawn from the reference, with and without replacement: at most 5 % of them may alarm,
while `make monitor`'s shifted rows still breach bmi and bp and its unshifted ones do not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_no_drift_windows_rarely_alarm_and_the_shift_is_caught(tmp_path: Path) -> None:
    out = tmp_path / "monitor.json"
    r = subprocess.run(
        [sys.executable, str(REPO / "bench" / "monitor.py"), "--samples", "20", "--rows", "150",
         "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {row["case"]: row for row in json.loads(out.read_text())}
    for case in ("samples of the reference", "fresh draws"):
        assert rows[case]["windows"] == 20 and rows[case]["rows"] == 150
        assert rows[case]["share"] <= 0.05, rows[case]
    shifted = {b.split(":")[0] for b in rows["make monitor (shifted)"]["breaches"]}
    assert {"bmi", "bp"} <= shifted
    assert rows["NO_SHIFT=1"]["breaches"] == {}
