"""Model monitors: signal metrics against Azure's definitions, and a `create_monitor:`
schedule whose firing is a job computing drift and data quality over collected data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from cli_support import Project

REPO = Path(__file__).resolve().parents[3]
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def _reference() -> pd.DataFrame:
    return pd.read_csv(REPO / "data" / "diabetes.csv")


def _shifted(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["bmi"] = out["bmi"] * 1.3
    out["bp"] = out["bp"] + 15
    return out


def test_drift_is_flagged_for_a_shift_and_not_for_a_sample_of_the_reference() -> None:
    from amlocal.monitoring.metrics import signal_metrics

    ref = _reference()
    all_metrics = {
        "numerical": {
            "jensen_shannon_distance": 0.1,
            "normalized_wasserstein_distance": 0.1,
            "population_stability_index": 0.1,
            "two_sample_kolmogorov_smirnov_test": 0.05,
        }
    }
    for seed in range(3):
        same = ref.sample(300, random_state=seed)[FEATURES]
        assert [
            r
            for r in signal_metrics("data_drift", same, ref, FEATURES, all_metrics)
            if not r["passed"]
        ] == []
        assert all(r["passed"] for r in signal_metrics("data_drift", same, ref, FEATURES, None))
        shifted = _shifted(ref.sample(300, random_state=seed + 10))[FEATURES]
        rows = signal_metrics("data_drift", shifted, ref, FEATURES, all_metrics)
        assert {r["feature"] for r in rows if not r["passed"]} == {"bmi", "bp"}
        # Azure's default (no thresholds): normalized Wasserstein distance > 0.1.
        default = signal_metrics("data_drift", shifted, ref, FEATURES, None)
        assert {r["metric"] for r in default} == {"normalized_wasserstein_distance"}
        assert {r["feature"] for r in default if not r["passed"]} == {"bmi", "bp"}


def test_categorical_drift_metrics() -> None:
    from amlocal.monitoring.metrics import signal_metrics

    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"color": rng.choice(["red", "green", "blue"], 500, p=[0.5, 0.3, 0.2])})
    same = pd.DataFrame({"color": rng.choice(["red", "green", "blue"], 300, p=[0.5, 0.3, 0.2])})
    moved = pd.DataFrame({"color": rng.choice(["red", "green", "blue"], 300, p=[0.1, 0.3, 0.6])})
    th = {
        "categorical": {
            "jensen_shannon_distance": 0.1,
            "population_stability_index": 0.1,
            "pearsons_chi_squared_test": 0.05,
        }
    }
    assert all(r["passed"] for r in signal_metrics("data_drift", same, ref, ["color"], th))
    assert not any(r["passed"] for r in signal_metrics("data_drift", moved, ref, ["color"], th))


def test_data_quality_catches_injected_nulls_types_and_bounds() -> None:
    from amlocal.monitoring.metrics import signal_metrics

    ref = _reference()
    prod = ref.sample(100, random_state=3)[FEATURES].astype(object).reset_index(drop=True)
    clean = signal_metrics("data_quality", prod, ref, FEATURES, None)
    assert all(r["passed"] for r in clean), [r for r in clean if not r["passed"]]
    prod.loc[:9, "bmi"] = None  # 10 % nulls
    prod.loc[:4, "s1"] = "n/a"  # 5 % type errors
    prod.loc[:2, "bp"] = 10_000.0  # 3 % out of bounds
    th = {
        "numerical": {
            "null_value_rate": 0.05,
            "data_type_error_rate": 0.01,
            "out_of_bounds_rate": 0.01,
        }
    }
    rows = {
        (r["feature"], r["metric"]): r
        for r in signal_metrics("data_quality", prod, ref, FEATURES, th)
    }
    assert (
        rows[("bmi", "null_value_rate")]["value"] == 0.1
        and not rows[("bmi", "null_value_rate")]["passed"]
    )
    assert (
        rows[("s1", "data_type_error_rate")]["value"] == 0.05
        and not rows[("s1", "data_type_error_rate")]["passed"]
    )
    assert (
        rows[("bp", "out_of_bounds_rate")]["value"] == 0.03
        and not rows[("bp", "out_of_bounds_rate")]["passed"]
    )
    assert rows[("age", "null_value_rate")]["passed"]


MONITOR = """\
$schema: https://azuremlschemas.azureedge.net/latest/schedule.schema.json
name: {name}
trigger:
  type: recurrence
  frequency: day
  interval: 1
  schedule:
    hours: 3
    minutes: 0
create_monitor:
  compute:
    instance_type: standard_e4s_v3
    runtime_version: "3.4"
  monitoring_target:
    ml_task: regression
    endpoint_deployment_id: azureml:ep:{deployment}
  monitoring_signals:
    drift:
      type: data_drift
      production_data:
        input_data:
          path: azureml:ep-{deployment}-model_inputs:1
          type: uri_folder
        data_context: model_inputs
        data_window:
          lookback_window_offset: P0D
          lookback_window_size: P7D
      reference_data:
        input_data:
          path: ./diabetes.csv
          type: uri_file
        data_context: training
      metric_thresholds:
        numerical:
          normalized_wasserstein_distance: 0.1
    quality:
      type: data_quality
      reference_data:
        input_data:
          path: ./diabetes.csv
          type: uri_file
        data_context: training
      metric_thresholds:
        numerical:
          null_value_rate: 0.05
  alert_notification:
    emails:
      - team@example.com
"""


def _collect(home: Path, deployment: str, frame: pd.DataFrame) -> None:
    """Write rows as the data-collector agent does (its own writer), 10 rows per record."""
    from amlocal.endpoints.collector import Writer, register_assets, runtime_spec

    spec = runtime_spec(
        home,
        "ep",
        deployment,
        "/x/onlineEndpoints/ep/deployments/" + deployment,
        {"collections": {"model_inputs": {"enabled": "True"}}},
    )
    spec["instance"] = f"{deployment}-0"
    register_assets(spec)
    w = Writer(spec)
    for i in range(0, len(frame), 10):
        body = frame.iloc[i : i + 10].to_json(orient="records").encode()
        w.write(
            {
                "ce-type": "azureml.inference.model_inputs",
                "trace-id": str(i),
                "ce-x-request-id": str(i),
            },
            body,
        )
    w.close()


def test_monitor_schedule_run_is_a_job_that_flags_drifted_features(tmp_path: Path) -> None:
    p = Project(tmp_path)
    (tmp_path / "diabetes.csv").write_text((REPO / "data" / "diabetes.csv").read_text())
    ref = _reference()
    shifted = _shifted(ref.sample(300, random_state=5))[FEATURES].astype(object)
    shifted.loc[:40, "s2"] = None
    p.home.mkdir(parents=True, exist_ok=True)
    _collect(p.home, "blue", shifted.reset_index(drop=True))
    _collect(p.home, "green", ref.sample(300, random_state=6)[FEATURES])
    for dep in ("blue", "green"):
        p.write(f"{dep}.yml", MONITOR.format(name=f"mon-{dep}", deployment=dep))
        p.run("schedule", "create", "-f", f"{dep}.yml")
    jobs = {dep: p.json("schedule", "trigger", "-n", f"mon-{dep}") for dep in ("blue", "green")}
    reports = {}
    for dep, job in jobs.items():
        assert job["properties"]["azureml.scheduleName"] == f"mon-{dep}"
        r = p.run("job", "stream", "-n", job["name"], check=False, timeout=240)
        assert r.returncode == 0, r.stdout + r.stderr
        out = p.json("job", "show", "-n", job["name"])
        assert out["status"] == "Completed"
        from amlocal.monitoring.run import report_path
        from amlocal.workspace import Workspace

        reports[dep] = json.loads(report_path(Workspace(p.home), job["name"]).read_text())
        if dep == "blue":
            assert "BREACHED for bmi, bp" in r.stdout + r.stderr
            assert "ALERT" in r.stdout + r.stderr and "team@example.com" in r.stdout + r.stderr
    blue, green = reports["blue"], reports["green"]
    assert blue["signals"]["drift"]["breached_features"] == ["bmi", "bp"]
    assert blue["signals"]["quality"]["breached_features"] == ["s2"]
    assert blue["signals"]["drift"]["production_rows"] == 300
    assert green["passed"] is True and green["signals"]["drift"]["breached_features"] == []
    for dep in ("blue", "green"):
        p.run("schedule", "disable", "-n", f"mon-{dep}")
