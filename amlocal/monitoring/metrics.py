"""Model-monitoring signal metrics, defined as Azure ML's monitoring docs define them.

Source: https://learn.microsoft.com/azure/machine-learning/how-to-monitor-model-performance
(signals, metrics, defaults) and reference-yaml-monitor (metric names and thresholds). The
statistics come from scipy; what Azure leaves open (binning, smoothing) is decided here and
recorded in docs/local-vs-azure.md:
- numerical histograms use the reference data's bins (numpy's Sturges rule), the outer edges
  widened to hold every production value; categorical histograms one bin per category;
- Jensen-Shannon distance is scipy.spatial.distance.jensenshannon with base 2 (0..1);
- normalized Wasserstein distance is scipy.stats.wasserstein_distance divided by the
  reference's standard deviation;
- population stability index is sum((p - q) * ln(p / q)) over the bins, with empty bins
  smoothed to 1e-4;
- the two tests report p-values (scipy.stats.ks_2samp, scipy.stats.chi2_contingency): they
  breach when the p-value is *below* the threshold; the other metrics when *above* it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

NUMERICAL_DRIFT = (
    "jensen_shannon_distance",
    "normalized_wasserstein_distance",
    "population_stability_index",
    "two_sample_kolmogorov_smirnov_test",
)
CATEGORICAL_DRIFT = (
    "jensen_shannon_distance",
    "population_stability_index",
    "pearsons_chi_squared_test",
)
QUALITY = ("null_value_rate", "data_type_error_rate", "out_of_bounds_rate")
P_VALUE_METRICS = {"two_sample_kolmogorov_smirnov_test", "pearsons_chi_squared_test"}
# azure-ai-ml's defaults (NumericalDriftMetrics/CategoricalDriftMetrics/DataQualityMetrics*
# ._get_default_thresholds): used when a signal gives no metric_thresholds.
DEFAULT_DRIFT = {
    "numerical": {"normalized_wasserstein_distance": 0.1},
    "categorical": {"jensen_shannon_distance": 0.1},
}
DEFAULT_QUALITY = {
    "numerical": {m: 0.0 for m in QUALITY},
    "categorical": {m: 0.0 for m in QUALITY},
}
EPS = 1e-4


def is_numerical(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _hist(prod: pd.Series, ref: pd.Series, numerical: bool) -> tuple[np.ndarray, np.ndarray]:
    if numerical:
        r, pr = ref.to_numpy(float), prod.to_numpy(float)
        edges = np.histogram_bin_edges(r, bins="sturges")  # bins of the reference...
        edges[0], edges[-1] = min(edges[0], pr.min()), max(edges[-1], pr.max())  # ...holding all
        p = np.histogram(prod.to_numpy(float), bins=edges)[0].astype(float)
        q = np.histogram(ref.to_numpy(float), bins=edges)[0].astype(float)
    else:
        cats = sorted(set(prod.astype(str)) | set(ref.astype(str)))
        pc, rc = prod.astype(str).value_counts(), ref.astype(str).value_counts()
        p = np.array([pc.get(c, 0) for c in cats], float)
        q = np.array([rc.get(c, 0) for c in cats], float)
    return p, q


def drift(metric: str, prod: pd.Series, ref: pd.Series, numerical: bool) -> float:
    """One drift metric of production against reference (nulls dropped)."""
    from scipy import stats
    from scipy.spatial import distance

    prod, ref = prod.dropna(), ref.dropna()
    if len(prod) == 0 or len(ref) == 0:
        return float("nan")
    if metric == "normalized_wasserstein_distance":
        sd = float(np.std(ref.to_numpy(float)))
        w = stats.wasserstein_distance(prod.to_numpy(float), ref.to_numpy(float))
        return float(w / sd) if sd > 0 else float(w)
    if metric == "two_sample_kolmogorov_smirnov_test":
        return float(stats.ks_2samp(prod.to_numpy(float), ref.to_numpy(float)).pvalue)
    p, q = _hist(prod, ref, numerical)
    if metric == "pearsons_chi_squared_test":
        table = np.vstack([p, q])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2:
            return 1.0
        return float(stats.chi2_contingency(table).pvalue)
    pn, qn = p / p.sum(), q / q.sum()
    if metric == "jensen_shannon_distance":
        return float(distance.jensenshannon(pn, qn, base=2))
    if metric == "population_stability_index":
        ps, qs = np.clip(pn, EPS, None), np.clip(qn, EPS, None)
        return float(np.sum((ps - qs) * np.log(ps / qs)))
    raise ValueError(f"unknown drift metric {metric}")


def quality(metric: str, prod: pd.Series, ref: pd.Series, numerical: bool) -> float:
    """One data-quality rate of the production column (reference gives types and bounds)."""
    n = len(prod)
    if n == 0:
        return float("nan")
    nulls = prod.isna()
    if metric == "null_value_rate":
        return float(nulls.sum() / n)
    values = prod[~nulls]
    as_num = pd.to_numeric(values, errors="coerce")
    if metric == "data_type_error_rate":
        if numerical:
            bad = as_num.isna() | values.map(lambda v: isinstance(v, bool))
        else:
            kinds = {type(v) for v in ref.dropna()}
            bad = ~values.map(lambda v: type(v) in kinds)
        return float(bad.sum() / n)
    if metric == "out_of_bounds_rate":
        if numerical:
            r = ref.dropna().to_numpy(float)
            ok = as_num.between(r.min(), r.max()) if len(r) else as_num.notna()
            return float((~ok & as_num.notna()).sum() / n)
        seen = set(ref.dropna().astype(str))
        return float((~values.astype(str).isin(seen)).sum() / n)
    raise ValueError(f"unknown data quality metric {metric}")


def breached(metric: str, value: float, threshold: float) -> bool:
    if value != value:  # NaN: no data, nothing to judge
        return False
    return value < threshold if metric in P_VALUE_METRICS else value > threshold


def signal_metrics(
    kind: str,
    prod: pd.DataFrame,
    ref: pd.DataFrame,
    features: list[str],
    thresholds: dict[str, dict[str, float]] | None,
) -> list[dict[str, Any]]:
    """Rows {feature, data_type, metric, value, threshold, passed} for one signal."""
    defaults = DEFAULT_QUALITY if kind == "data_quality" else DEFAULT_DRIFT
    thresholds = thresholds or {}
    rows = []
    for f in features:
        numerical = is_numerical(ref[f]) if f in ref else is_numerical(prod[f])
        dtype = "numerical" if numerical else "categorical"
        wanted = thresholds.get(dtype) or defaults[dtype]
        for metric, threshold in wanted.items():
            if threshold is None:
                continue
            fn = quality if kind == "data_quality" else drift
            value = fn(metric, prod[f] if f in prod else pd.Series(dtype=float), ref[f], numerical)
            rows.append(
                {
                    "feature": f,
                    "data_type": dtype,
                    "metric": metric,
                    "value": value,
                    "threshold": float(threshold),
                    "passed": not breached(metric, value, float(threshold)),
                }
            )
    return rows
