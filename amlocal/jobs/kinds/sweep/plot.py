"""The sweep comparison plot logged on a sweep's run (`sweep_comparison.png`).

Made to be read, not to mislead: each axis is scaled to the data (a bar from 0 to 1 hides a
difference of 0.02); each hyperparameter is plotted only over the trials that use it (those
whose run logged it as an MLflow param: a knn trial that ignores `C` is not plotted by `C`);
one colour per value of the first categorical hyperparameter (the model family, say), the
same in every panel; trials that did not complete are drawn hollow.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

from amlocal.workspace import Workspace


class Trial(Protocol):
    name: str
    params: dict[str, Any]
    values: list[float]
    status: str


def _best(values: Sequence[float], goal: str) -> float | None:
    return (max if goal == "maximize" else min)(values) if values else None


def _numeric(values: Sequence[Any]) -> bool:
    return bool(values) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    )


def _limits(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.15 or abs(hi) * 0.02 or 0.01
    return lo - pad, hi + pad


def used_params(ws: Workspace, trials: Sequence[Trial]) -> dict[str, set[str]] | None:
    """{trial: the parameter names its MLflow run logged}, or None when unknown (no runs, or
    a store this cannot read without MLflow)."""
    runs = {}
    for t in trials:
        record = ws.store.get("job", t.name) or {}
        run_id = (record.get("properties") or {}).get("mlflow.runId")
        if run_id:
            runs[t.name] = run_id
    uri = ws.mlflow_tracking_uri
    if not runs or not uri.startswith("sqlite:///") or "?" in uri:
        return None
    try:
        con = sqlite3.connect(f"file:{uri[len('sqlite:///') :]}?mode=ro", uri=True, timeout=10)
        try:
            used = {
                name: {
                    row[0]
                    for row in con.execute("SELECT key FROM params WHERE run_uuid = ?", (run,))
                }
                for name, run in runs.items()
            }
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return used if any(used.values()) else None


def comparison_figure(
    trials: Sequence[Trial], metric: str, goal: str, used: dict[str, set[str]] | None = None
) -> Any:
    """The primary metric by trial, then by each hyperparameter."""
    from matplotlib.figure import Figure

    names = sorted({k for t in trials for k in t.params})
    scores = [_best(t.values, goal) for t in trials]
    family = next(
        (n for n in names if not _numeric([t.params[n] for t in trials if n in t.params])), None
    )
    families = sorted({str(t.params.get(family)) for t in trials}) if family else ["trial"]
    palette = [f"C{i % 10}" for i in range(len(families))]
    colour = {f: palette[i] for i, f in enumerate(families)}

    def colour_of(t: Trial) -> str:
        return colour[str(t.params.get(family)) if family else "trial"]

    def draw(ax: Any, xs: list[float], pts: list[tuple[Trial, float]]) -> None:
        for x, (t, s) in zip(xs, pts, strict=True):
            c = colour_of(t)
            done = t.status == "Completed"
            ax.scatter([x], [s], s=48, color=c if done else "none", edgecolors=c, zorder=3)
        ax.set_ylim(*_limits([s for _, s in pts]))
        ax.grid(True, alpha=0.3)

    fig = Figure(figsize=(4 * (1 + len(names)), 3.8))
    axes = fig.subplots(1, 1 + len(names), squeeze=False)[0]
    scored = [(t, s) for t, s in zip(trials, scores, strict=True) if s is not None]
    if scored:
        draw(axes[0], [float(trials.index(t)) for t, _ in scored], scored)
        for f in families:
            axes[0].scatter([], [], color=colour[f], label=f)
        axes[0].legend(fontsize=7, loc="best", title=family, title_fontsize=7)
    axes[0].set(xlabel="trial", ylabel=f"best {metric}", title=f"{metric} by trial ({goal})")
    for ax, name in zip(axes[1:], names, strict=True):
        pts = [
            (t, s)
            for t, s in scored
            if name in t.params and (used is None or name in used.get(t.name, {name}))
        ]
        values = [t.params[name] for t, _ in pts]
        ax.set(xlabel=name, ylabel=metric, title=f"{metric} by {name} ({len(pts)} trials)")
        if not pts:
            continue
        if _numeric(values):
            draw(ax, [float(v) for v in values], pts)
            positive = [float(v) for v in values if float(v) > 0]
            if len(positive) == len(values) and max(positive) / min(positive) >= 100:
                ax.set_xscale("log")
        else:
            cats = sorted({str(v) for v in values})
            draw(ax, [float(cats.index(str(v))) for v in values], pts)
            ax.set_xticks(range(len(cats)), cats, rotation=30, ha="right")
            ax.set_xlim(-0.5, len(cats) - 0.5)
    fig.tight_layout()
    return fig
