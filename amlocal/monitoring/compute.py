"""The monitor job's step: every signal's metrics, MLflow logging, plots and the report.

`python -m amlocal.monitoring.compute --spec <monitor.json> --signals <output folder>` writes
`signals.json` (per signal: rows/metric/value/threshold/passed per feature, and which
features breached), a distribution plot per drifting feature and a drift-by-feature chart,
logs each metric as `<signal>.<feature>.<metric>` and its pass/fail as `...passed` (1/0) to
the job's MLflow run, and prints the signals table and any alert (no mail offline).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from amlocal.monitoring import metrics
from amlocal.monitoring.definition import deployment_of

_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")


def _resolve(home: Path, uri: str, base: Path) -> Path:
    from amlocal.assets.data import resolve_path
    from amlocal.workspace import Workspace

    rest = uri.removeprefix("azureml:")
    if rest != uri and (rest.startswith((".", "/")) or "/" in rest and "://" not in rest):
        uri = rest  # azure-ai-ml's dump prefixes local paths with azureml:
    p = resolve_path(Workspace(home), uri, base)
    if p is None or not p.exists():
        raise SystemExit(f"monitor: data {uri} is not available locally ({p})")
    return p


def _window(
    sig_data: dict[str, Any], run_time: dt.datetime
) -> tuple[dt.datetime, dt.datetime] | None:
    import isodate

    w = sig_data.get("data_window") or {}
    size = w.get("lookback_window_size")
    if not size:
        return None
    offset = isodate.parse_duration(w.get("lookback_window_offset") or "P0D")
    end = run_time - offset
    return end - isodate.parse_duration(size), end


def read_collected(path: Path, window: tuple[dt.datetime, dt.datetime] | None) -> pd.DataFrame:
    """Rows of the data collector's JSONL records (each record's `data` is a list of rows)."""
    rows: list[dict[str, Any]] = []
    for f in sorted(path.rglob("*.jsonl")) if path.is_dir() else [path]:
        for line in f.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            if window is not None and "time" in rec:
                t = dt.datetime.fromisoformat(str(rec["time"]).replace("Z", "+00:00"))
                if not window[0] <= t <= window[1]:
                    continue
            data = rec.get("data", rec)
            rows.extend(data if isinstance(data, list) else [data])
    return pd.DataFrame(rows)


def read_table(path: Path, window: tuple[dt.datetime, dt.datetime] | None) -> pd.DataFrame:
    if path.is_dir():
        if any(path.rglob("*.jsonl")):
            return read_collected(path, window)
        files = sorted(path.rglob("*.csv")) + sorted(path.rglob("*.parquet"))
        if not files:
            raise SystemExit(f"monitor: no .jsonl, .csv or .parquet files under {path}")
        return pd.concat([read_table(f, None) for f in files], ignore_index=True)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".jsonl":
        return read_collected(path, window)
    return pd.read_csv(path)


def _production(
    spec: dict[str, Any], sig: dict[str, Any], run_time: dt.datetime, home: Path, base: Path
) -> pd.DataFrame:
    prod = sig.get("production_data") or {}
    uri = (prod.get("input_data") or {}).get("path")
    if not uri:
        target = deployment_of(spec)
        if target is None:  # checked at create; a hand-edited spec file may still lack it
            raise SystemExit(f"monitor: signal {sig['type']} has no production_data")
        endpoint, deployment = target
        collection = "model_outputs" if sig["type"] == "prediction_drift" else "model_inputs"
        uri = f"azureml:{endpoint}-{deployment}-{collection}:1"
    return read_table(_resolve(home, str(uri), base), _window(prod, run_time))


def _features(sig: dict[str, Any], prod: pd.DataFrame, ref: pd.DataFrame) -> list[str]:
    common = [c for c in prod.columns if c in ref.columns]
    chosen = sig.get("features")
    if isinstance(chosen, list):
        missing = [f for f in chosen if f not in common]
        if missing:
            raise SystemExit(
                f"monitor: features {missing} are not in both production and reference data"
            )
        return [str(f) for f in chosen]
    # all_features, top_n_feature_importance (no feature importance offline) or the default
    return common


def _plots(
    out: Path, name: str, rows: list[dict[str, Any]], prod: pd.DataFrame, ref: pd.DataFrame
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: list[Path] = []
    first = rows[0]["metric"] if rows else None
    by_feature = [r for r in rows if r["metric"] == first]
    if by_feature:
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(by_feature) + 1.5))
        colors = ["tab:green" if r["passed"] else "tab:red" for r in by_feature]
        ax.barh([r["feature"] for r in by_feature], [r["value"] for r in by_feature], color=colors)
        ax.axvline(by_feature[0]["threshold"], color="black", linestyle="--", label="threshold")
        ax.set_xlabel(str(first))
        files.append(
            _save(plt, fig, ax, f"{name}: {first} by feature", out / f"{name}-by-feature.png")
        )
    for f in sorted({r["feature"] for r in rows}):
        if f not in prod or f not in ref:
            continue
        fig, ax = plt.subplots(figsize=(5, 3))
        if metrics.is_numerical(ref[f]):
            ax.hist(ref[f].dropna(), bins=30, alpha=0.5, density=True, label="reference")
            ax.hist(
                pd.to_numeric(prod[f], errors="coerce").dropna(),
                bins=30,
                alpha=0.5,
                density=True,
                label="production",
            )
        else:
            r = ref[f].astype(str).value_counts(normalize=True)
            p = prod[f].astype(str).value_counts(normalize=True)
            pd.DataFrame({"reference": r, "production": p}).fillna(0).plot.bar(ax=ax)
        path = out / f"{name}-{re.sub(r'[^A-Za-z0-9_-]', '_', f)}.png"
        files.append(_save(plt, fig, ax, f"{name}: {f}", path))
    return files


def _save(plt: Any, fig: Any, ax: Any, title: str, path: Path) -> Path:
    """Title, legend and layout as every monitor plot has them; written to `path` and closed
    (pyplot keeps every open figure in memory)."""
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{'signal':<18} {'feature':<14} {'metric':<36} {'value':>10} {'threshold':>10}  result"
    ]
    for sname, sig in report["signals"].items():
        for r in sig["metrics"]:
            value = "nan" if r["value"] != r["value"] else f"{r['value']:.4f}"
            lines.append(
                f"{sname:<18} {r['feature']:<14} {r['metric']:<36} {value:>10} "
                f"{r['threshold']:>10.4g}  {'pass' if r['passed'] else 'BREACH'}"
            )
    return "\n".join(lines)


def run(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    home, base = Path(spec["home"]), Path(spec["base_dir"])
    cm = spec["create_monitor"]
    run_time = (
        dt.datetime.fromisoformat(spec["run_time"])
        if spec.get("run_time")
        else dt.datetime.now(dt.UTC)
    )
    report: dict[str, Any] = {
        "monitor": spec["monitor"],
        "run_time": run_time.isoformat(),
        "signals": {},
        "skipped": spec.get("skipped") or {},
    }
    out.mkdir(parents=True, exist_ok=True)
    plots: list[Path] = []
    for name, sig in cm["monitoring_signals"].items():
        prod = _production(cm, sig, run_time, home, base)
        ref_uri = sig["reference_data"]["input_data"]["path"]
        ref = read_table(_resolve(home, str(ref_uri), base), None)
        feats = _features(sig, prod, ref) if len(prod) else []
        rows = metrics.signal_metrics(sig["type"], prod, ref, feats, sig.get("metric_thresholds"))
        breached = sorted({r["feature"] for r in rows if not r["passed"]})
        report["signals"][name] = {
            "type": sig["type"],
            "production_rows": int(len(prod)),
            "reference_rows": int(len(ref)),
            "features": feats,
            "metrics": rows,
            "breached_features": breached,
            "passed": not breached,
        }
        if len(prod):
            plots += _plots(out, name, rows, prod, ref)
    alerts = cm.get("alert_notification") or {}
    report["alert_notification"] = alerts
    report["passed"] = all(s["passed"] for s in report["signals"].values())
    (out / "signals.json").write_text(json.dumps(report, indent=2))
    _log_mlflow(report, plots)
    return report


def _log_mlflow(report: dict[str, Any], plots: list[Path]) -> None:
    import os

    if not os.environ.get("MLFLOW_RUN_ID"):
        return
    import mlflow

    with mlflow.start_run():
        batch: dict[str, float] = {}
        for sname, sig in report["signals"].items():
            for r in sig["metrics"]:
                key = _KEY.sub("_", f"{sname}.{r['feature']}.{r['metric']}")
                if r["value"] == r["value"]:
                    batch[key] = float(r["value"])
                batch[key + ".passed"] = 1.0 if r["passed"] else 0.0
        if batch:
            mlflow.log_metrics(batch)
        mlflow.set_tag("monitor.passed", str(report["passed"]).lower())
        for p in plots:
            mlflow.log_artifact(str(p), artifact_path="monitoring")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--signals", required=True)
    args = ap.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    report = run(spec, Path(args.signals))
    print(table(report))
    for name, sig in report["signals"].items():
        print(
            f"signal {name} ({sig['type']}): {sig['production_rows']} production rows, "
            f"{sig['reference_rows']} reference rows: "
            + ("passed" if sig["passed"] else f"BREACHED for {', '.join(sig['breached_features'])}")
        )
    for name, reason in report["skipped"].items():
        print(f"signal {name}: skipped offline: {reason}")
    if not report["passed"]:
        emails = report["alert_notification"].get("emails") or []
        print(
            f"ALERT: monitor {report['monitor']} breached thresholds; "
            f"notification recorded for {', '.join(emails) or 'nobody'} (no mail is sent offline)"
        )
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
