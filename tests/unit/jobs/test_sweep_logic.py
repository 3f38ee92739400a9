"""Sweep logic without processes: samplers stay inside each distribution's bounds, grid covers
the grid exactly, early-termination policies stop clearly worse trials (and only those), and
the best trial follows the goal."""

from __future__ import annotations

import itertools
import math

import pytest

from amlocal.errors import InvalidInput
from amlocal.jobs.kinds.sweep import decisions as sw

SPACE = {
    "choice": {"type": "choice", "values": [1, "two", 3.5]},
    "randint": {"type": "randint", "upper": 4},
    "uniform": {"type": "uniform", "min_value": -1.5, "max_value": 2.0},
    "quniform": {"type": "quniform", "min_value": 1, "max_value": 10, "q": 3},
    "loguniform": {"type": "loguniform", "min_value": -3, "max_value": 1},
    "qloguniform": {"type": "qloguniform", "min_value": 0, "max_value": 3, "q": 2},
    "normal": {"type": "normal", "mu": 5, "sigma": 2},
    "qnormal": {"type": "qnormal", "mu": 10, "sigma": 3, "q": 0.5},
    "lognormal": {"type": "lognormal", "mu": 0, "sigma": 1},
    "qlognormal": {"type": "qlognormal", "mu": 1, "sigma": 0.5, "q": 1},
}


def _multiple(x: float, q: float) -> bool:
    return math.isclose(x / q, round(x / q), abs_tol=1e-9)


def check_in_bounds(name: str, v: object) -> None:
    d = SPACE[name]
    if name == "choice":
        assert v in d["values"]
    elif name == "randint":
        assert isinstance(v, int) and 0 <= v < d["upper"]  # exclusive upper
    elif name in ("uniform", "quniform"):
        assert d["min_value"] <= v <= d["max_value"]
    elif name in ("loguniform", "qloguniform"):
        assert math.exp(d["min_value"]) - 1e-9 <= v <= math.exp(d["max_value"]) + 1e-9
    elif name in ("lognormal", "qlognormal"):
        assert v >= 0
    else:
        assert math.isfinite(v)
    if name.startswith("q"):
        assert _multiple(v, d["q"]), (name, v)


@pytest.mark.parametrize("rule", ["random", "sobol"])
def test_random_samplers_stay_in_bounds(rule: str) -> None:
    sampler = sw.make_sampler({"type": "random", "seed": 7, "rule": rule}, SPACE, "maximize")
    draws = [sampler.propose() for _ in range(256)]
    for params in draws:
        assert set(params) == set(SPACE)
        for name, v in params.items():
            check_in_bounds(name, v)
    # the whole range is explored, not one corner: every choice and every randint value
    assert {p["choice"] for p in draws} == {1, "two", 3.5}
    assert {p["randint"] for p in draws} == {0, 1, 2, 3}
    normals = [p["normal"] for p in draws]
    assert abs(sum(normals) / len(normals) - 5) < 0.5


def test_seed_makes_random_reproducible_and_sobol_differs_from_random() -> None:
    a = sw.make_sampler({"type": "random", "seed": 1}, SPACE, "maximize")
    b = sw.make_sampler({"type": "random", "seed": 1}, SPACE, "maximize")
    c = sw.make_sampler({"type": "random", "seed": 1, "rule": "sobol"}, SPACE, "maximize")
    first = [a.propose() for _ in range(5)]
    assert first == [b.propose() for _ in range(5)]
    assert first != [c.propose() for _ in range(5)]


def test_sobol_spreads_points_evenly() -> None:
    """16 Sobol points put exactly one value in each sixteenth of a uniform range."""
    space = {"x": {"type": "uniform", "min_value": 0, "max_value": 16}}
    s = sw.make_sampler({"type": "random", "seed": 3, "rule": "sobol"}, space, "maximize")
    cells = sorted(int(s.propose()["x"]) for _ in range(16))
    assert cells == list(range(16))


def test_grid_covers_the_grid_exactly_once() -> None:
    space = {
        "a": {"type": "choice", "values": [1, 2, 3]},
        "b": {"type": "choice", "values": ["x", "y"]},
        "c": {"type": "choice", "values": [True]},
    }
    sampler = sw.make_sampler("grid", space, "minimize")
    seen = []
    while (p := sampler.propose()) is not None:
        seen.append((p["a"], p["b"], p["c"]))
    assert seen == list(itertools.product([1, 2, 3], ["x", "y"], [True]))


def test_grid_and_bayesian_reject_unsupported_distributions() -> None:
    with pytest.raises(InvalidInput, match="grid sampling supports only choice"):
        sw.make_sampler("grid", {"u": SPACE["uniform"]}, "maximize")
    with pytest.raises(InvalidInput, match="bayesian sampling supports only"):
        sw.make_sampler("bayesian", {"n": SPACE["normal"]}, "maximize")
    with pytest.raises(InvalidInput, match="unknown distribution"):
        sw.make_sampler("random", {"z": {"type": "zipf"}}, "maximize")


def test_bayesian_stays_in_bounds_and_learns() -> None:
    """TPE, told a metric peaking at x=8, proposes values near 8 more often than random."""
    space = {
        "x": {"type": "uniform", "min_value": 0, "max_value": 10},
        "q": {"type": "quniform", "min_value": 0, "max_value": 10, "q": 2},
        "k": {"type": "choice", "values": ["a", "b"]},
    }
    sampler = sw.make_sampler({"type": "bayesian", "seed": 0}, space, "minimize")
    xs = []
    for _ in range(40):
        p = sampler.propose()
        assert 0 <= p["x"] <= 10 and p["q"] in (0, 2, 4, 6, 8, 10) and p["k"] in ("a", "b")
        xs.append(p["x"])
        sampler.tell(p, (p["x"] - 8) ** 2 + (0 if p["k"] == "b" else 5), "Completed")
    late = xs[20:]
    assert sum(abs(x - 8) < 2 for x in late) > len(late) / 2


def trial(name: str, values: list[float], status: str = "Running") -> sw.TrialState:
    return sw.TrialState(name=name, params={}, values=values, status=status)


def test_bandit_slack_factor_and_amount_both_goals() -> None:
    good, bad, close = trial("g", [0.9, 0.95]), trial("b", [0.5, 0.6]), trial("c", [0.88])
    pool = [good, bad, close]
    p = sw.Policy.from_spec({"type": "bandit", "slack_factor": 0.1})
    assert p and p.should_stop(bad, pool, "maximize", 1)
    assert p.should_stop(close, pool, "maximize", 1) is None  # 0.88 >= 0.9 / 1.1
    assert p.should_stop(good, pool, "maximize", 1) is None
    amount = sw.Policy.from_spec({"type": "bandit", "slack_amount": 0.05})
    assert amount and amount.should_stop(close, pool, "maximize", 1) is None  # 0.88 >= 0.85
    assert amount.should_stop(bad, pool, "maximize", 2)
    # minimize: lower is better, so the 0.9s are the clearly worse ones
    low, high = trial("l", [0.1]), trial("h", [0.9])
    assert p.should_stop(high, [low, high], "minimize", 1)
    assert p.should_stop(low, [low, high], "minimize", 1) is None


def test_delay_and_interval_gate_the_policy() -> None:
    p = sw.Policy.from_spec(
        {"type": "bandit", "slack_factor": 0.1, "evaluation_interval": 2, "delay_evaluation": 3}
    )
    assert p is not None
    good, bad = trial("g", [1, 1, 1, 1, 1]), trial("b", [0.1] * 5)
    decisions = {i: bool(p.should_stop(bad, [good, bad], "maximize", i)) for i in range(1, 6)}
    assert decisions == {1: False, 2: False, 3: False, 4: True, 5: False}


def test_evaluation_interval_zero_or_missing_means_every_interval() -> None:
    for spec in (
        {"type": "median_stopping"},
        {"type": "median_stopping", "evaluation_interval": 0},
    ):
        p = sw.Policy.from_spec(spec)
        assert p is not None and p.evaluation_interval == 1 and p.applies_at(1)


def test_median_stopping() -> None:
    p = sw.Policy.from_spec({"type": "median_stopping"})
    assert p is not None
    a, b, c = trial("a", [0.8, 0.9]), trial("b", [0.7, 0.8]), trial("c", [0.2, 0.3])
    assert p.should_stop(c, [a, b, c], "maximize", 2)
    assert p.should_stop(a, [a, b, c], "maximize", 2) is None
    # one other trial is not a population: no decision
    assert p.should_stop(c, [a, c], "maximize", 2) is None


def test_truncation_selection_and_exclude_finished() -> None:
    p = sw.Policy.from_spec({"type": "truncation_selection", "truncation_percentage": 25})
    assert p is not None
    pool = [trial(str(i), [v]) for i, v in enumerate([0.9, 0.8, 0.7, 0.1])]
    assert p.should_stop(pool[3], pool, "maximize", 1)
    assert not any(p.should_stop(t, pool, "maximize", 1) for t in pool[:3])
    finished = [trial(str(i), [v], "Completed") for i, v in enumerate([0.9, 0.8, 0.7])]
    excl = sw.Policy.from_spec(
        {"type": "truncation_selection", "truncation_percentage": 25, "exclude_finished_jobs": True}
    )
    assert excl is not None
    # with finished trials excluded, the running one is alone: 25% of 1 cancels nobody
    assert excl.should_stop(pool[3], [*finished, pool[3]], "maximize", 1) is None
    with pytest.raises(InvalidInput):
        sw.Policy.from_spec({"type": "truncation_selection", "truncation_percentage": 0})


def test_best_trial_follows_the_goal() -> None:
    trials = [
        trial("a", [0.2, 0.5], "Completed"),
        trial("b", [0.9, 0.1], "Completed"),  # best value counts, not the last one
        trial("c", [0.99], "Canceled"),  # incomplete outputs: never the best
        trial("d", [], "Failed"),
    ]
    best_max = sw.best_trial(trials, "maximize")
    best_min = sw.best_trial(trials, "minimize")
    assert best_max is not None and best_max.name == "b"
    assert best_min is not None and best_min.name == "b"  # 0.1 < 0.2
    assert [t.name for t in sw.ranked(trials, "maximize")] == ["c", "b", "a", "d"]
    assert [t.name for t in sw.ranked(trials[:2], "minimize")] == ["b", "a"]
