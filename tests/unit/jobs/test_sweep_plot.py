"""The sweep comparison plot: axes scaled to the data, each hyperparameter over the trials that
use it (what their runs logged), one colour per model family."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.colors import to_hex

from amlocal.jobs.kinds.sweep.plot import comparison_figure


def _digits_train_lib():  # noqa: ANN202
    """src/train_digits/train_lib.py under a name of its own: src/train has a train_lib too,
    and whichever a test imports first would shadow the other in sys.modules."""
    path = Path(__file__).resolve().parents[3] / "src" / "train_digits" / "train_lib.py"
    spec = importlib.util.spec_from_file_location("digits_train_lib", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


used_params = _digits_train_lib().used_params


@dataclass
class T:
    name: str
    params: dict
    values: list[float] = field(default_factory=list)
    status: str = "Completed"


TRIALS = [
    T("t0", {"model_family": "svc", "C": 4.2, "n_neighbors": 5}, [0.97, 0.98]),
    T("t1", {"model_family": "knn", "C": 0.06, "n_neighbors": 3}, [0.96]),
    T("t2", {"model_family": "svc", "C": 0.3, "n_neighbors": 1}, [0.95]),
    T("t3", {"model_family": "knn", "C": 12.0, "n_neighbors": 7}, [0.90], "Canceled"),
]
USED = {
    t.name: set(used_params(t.params["model_family"], t.params["C"], t.params["n_neighbors"]))
    for t in TRIALS
}


def _points(ax) -> list[tuple[float, float, str]]:
    out = []
    for coll in ax.collections:
        for (x, y), edge in zip(coll.get_offsets(), coll.get_edgecolors(), strict=False):
            out.append((float(x), float(y), to_hex(edge)))
    return out


def test_axes_fit_the_data_and_hyperparameters_only_their_trials() -> None:
    fig = comparison_figure(TRIALS, "val_accuracy", "maximize", USED)
    by_trial, by_c, by_family, by_k = fig.axes
    assert by_c.get_xlabel() == "C" and by_k.get_xlabel() == "n_neighbors"
    lo, hi = by_trial.get_ylim()
    assert 0.85 < lo < 0.90 and 0.98 < hi < 1.0  # scaled to 0.90..0.98, not 0..1
    assert sorted(x for x, _, _ in _points(by_c)) == [0.3, 4.2]  # svc only: knn ignores C
    assert sorted(x for x, _, _ in _points(by_k)) == [3.0, 7.0]  # knn only
    colours = {}
    for ax in (by_trial, by_c, by_k):
        for _x, y, c in _points(ax):
            colours.setdefault(y, set()).add(c)
    family_of = {max(t.values): t.params["model_family"] for t in TRIALS}
    per_family = {}
    for y, cs in colours.items():
        assert len(cs) == 1  # a trial has one colour in every panel
        per_family.setdefault(family_of[y], set()).update(cs)
    assert len(per_family["svc"]) == len(per_family["knn"]) == 1
    assert per_family["svc"] != per_family["knn"]


def test_without_run_params_every_trial_is_plotted() -> None:
    fig = comparison_figure(TRIALS, "val_accuracy", "maximize", None)
    assert len(_points(fig.axes[1])) == 4
