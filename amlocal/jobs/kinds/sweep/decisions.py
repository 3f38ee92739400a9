"""Sweep job logic with no processes and no I/O: samplers, early-termination policies and
the choice of the best trial. `step.py` runs trials; everything it decides is here so
that it can be tested exhaustively and fast.

Semantics follow Azure ML's sweep reference (docs/local-vs-azure.md, "Sweep jobs" lists the choices
the documentation leaves open):
- search space expressions: choice, randint (exclusive upper), uniform/quniform,
  loguniform/qloguniform (value = exp(U(min, max))), normal/qnormal, lognormal/qlognormal;
  q-variants are round(x / q) * q.
- samplers: random (`seed`, `rule: random | sobol`), grid (only `choice`, exhaustive),
  bayesian (optuna's TPE via ask/tell; `choice`, `uniform`, `quniform` only).
- early termination: bandit, median_stopping, truncation_selection, evaluated at intervals
  (= the number of values logged for the primary metric) that are multiples of
  `evaluation_interval` and >= `delay_evaluation`.
"""

from __future__ import annotations

import copy
import itertools
import math
import random as _random
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from amlocal.errors import InvalidInput
from amlocal.jobs.plan import DATA_TYPES

DISTRIBUTIONS = {
    "choice",
    "randint",
    "uniform",
    "quniform",
    "loguniform",
    "qloguniform",
    "normal",
    "qnormal",
    "lognormal",
    "qlognormal",
}
BAYESIAN_DISTRIBUTIONS = {"choice", "uniform", "quniform"}
# Keeps the normal quantile finite when a (Sobol) point lands exactly on 0.
_EPS = 1e-12


# -- search space ---------------------------------------------------------------------------
def check_space(space: dict[str, dict[str, Any]], algorithm: str) -> None:
    """Reject what Azure ML rejects, before any trial starts."""
    if not space:
        raise InvalidInput("search_space is empty: a sweep needs at least one parameter")
    for name, dist in space.items():
        kind = dist.get("type")
        if kind not in DISTRIBUTIONS:
            raise InvalidInput(f"search_space.{name}: unknown distribution '{kind}'")
        if kind == "choice" and not dist.get("values"):
            raise InvalidInput(f"search_space.{name}: choice needs a non-empty 'values' list")
        if kind == "randint" and int(dist.get("upper", 0)) < 1:
            raise InvalidInput(f"search_space.{name}: randint needs upper >= 1")
        if algorithm == "grid" and kind != "choice":
            raise InvalidInput(
                f"search_space.{name}: grid sampling supports only choice, not {kind}"
            )
        if algorithm == "bayesian" and kind not in BAYESIAN_DISTRIBUTIONS:
            raise InvalidInput(
                f"search_space.{name}: bayesian sampling supports only choice, uniform and "
                f"quniform, not {kind}"
            )


def _quantize(x: float, q: float, low: float | None = None, high: float | None = None) -> float:
    """round(x / q) * q, stepped back inside [low, high] when rounding leaves the range (the
    value is still a multiple of q; bounds that are not multiples of q are otherwise
    unreachable)."""
    v = round(x / q) * q
    if low is not None and v < low:
        v += q * math.ceil((low - v) / q)
    if high is not None and v > high:
        v -= q * math.ceil((v - high) / q)
    return float(round(v, 12))


def from_unit(dist: dict[str, Any], u: float) -> Any:
    """Map u in [0, 1) to a value of the distribution through its inverse CDF, so that the
    random and Sobol rules share one mapping (Sobol only changes where the u's fall)."""
    kind = dist["type"]
    u = min(max(u, _EPS), 1.0 - _EPS)
    if kind == "choice":
        values = dist["values"]
        return values[min(int(u * len(values)), len(values) - 1)]
    if kind == "randint":
        upper = int(dist["upper"])
        return min(int(u * upper), upper - 1)
    if kind in ("uniform", "quniform", "loguniform", "qloguniform"):
        low, high = float(dist["min_value"]), float(dist["max_value"])
        x = low + u * (high - low)
        if kind.endswith("loguniform"):
            x, low, high = math.exp(x), math.exp(low), math.exp(high)
        if kind.startswith("q"):
            return _quantize(x, float(dist["q"]), low, high)
        return x
    # normal family: mu + sigma * Phi^-1(u)
    from statistics import NormalDist

    x = float(dist["mu"]) + float(dist["sigma"]) * NormalDist().inv_cdf(u)
    if kind.endswith("lognormal"):
        x = math.exp(x)
    if kind.startswith("q"):
        return _quantize(x, float(dist["q"]), 0.0 if kind == "qlognormal" else None)
    return x


# -- samplers -------------------------------------------------------------------------------
class Sampler:
    """Proposes parameter sets; `tell` reports a finished trial (only bayesian learns)."""

    def propose(self) -> dict[str, Any] | None:
        """The next parameter set, or None when the space is exhausted."""
        raise NotImplementedError

    def tell(self, params: dict[str, Any], value: float | None, state: str) -> None:
        """A trial with `params` ended: its best metric value (None if it has none)."""


class RandomSampler(Sampler):
    """Independent draws (`rule: random`) or a scrambled Sobol sequence (`rule: sobol`, which
    spreads a small number of trials evenly over the space)."""

    def __init__(self, space: dict[str, Any], seed: int | None, rule: str = "random") -> None:
        self.space = space
        self.names = list(space)
        self.rule = (rule or "random").lower()
        if self.rule not in ("random", "sobol"):
            raise InvalidInput(f"sampling_algorithm.rule: '{rule}' is not random or sobol")
        self.rng = _random.Random(seed)
        self.sobol: Any = None
        if self.rule == "sobol":
            from scipy.stats import qmc

            self.sobol = qmc.Sobol(d=len(self.names), scramble=True, seed=seed)

    def propose(self) -> dict[str, Any]:
        if self.sobol is not None:
            us = [float(u) for u in self.sobol.random(1)[0]]
        else:
            us = [self.rng.random() for _ in self.names]
        return {n: from_unit(self.space[n], u) for n, u in zip(self.names, us, strict=True)}


class GridSampler(Sampler):
    """Every combination of the choice values, in declaration order, each exactly once."""

    def __init__(self, space: dict[str, Any]) -> None:
        names = list(space)
        combos = itertools.product(*(space[n]["values"] for n in names))
        self._it: Iterator[dict[str, Any]] = (dict(zip(names, c, strict=True)) for c in combos)
        self.size = math.prod(len(space[n]["values"]) for n in names)

    def propose(self) -> dict[str, Any] | None:
        return next(self._it, None)


class BayesianSampler(Sampler):
    """optuna's TPE through ask/tell. With concurrent trials, optuna's constant liar keeps
    pending trials from being proposed again."""

    def __init__(self, space: dict[str, Any], goal: str, seed: int | None) -> None:
        import logging

        import optuna

        optuna.logging.set_verbosity(logging.WARNING)
        self.optuna = optuna
        self.space = space
        direction = "maximize" if goal == "maximize" else "minimize"
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        self.study = optuna.create_study(direction=direction, sampler=sampler)  # type: ignore[arg-type]
        self.pending: list[tuple[dict[str, Any], Any]] = []
        self.dists: dict[str, Any] = {}
        for name, d in space.items():
            if d["type"] == "choice":
                self.dists[name] = optuna.distributions.CategoricalDistribution(d["values"])
            else:  # uniform, quniform (quantized after asking)
                self.dists[name] = optuna.distributions.FloatDistribution(
                    float(d["min_value"]), float(d["max_value"])
                )

    def propose(self) -> dict[str, Any]:
        trial = self.study.ask(self.dists)
        params = {}
        for name, d in self.space.items():
            v = trial.params[name]
            if d["type"] == "quniform":
                v = _quantize(v, float(d["q"]), float(d["min_value"]), float(d["max_value"]))
            params[name] = v
        self.pending.append((params, trial))
        return params

    def tell(self, params: dict[str, Any], value: float | None, state: str) -> None:
        for i, (p, trial) in enumerate(self.pending):
            if p == params:
                del self.pending[i]
                ts = self.optuna.trial.TrialState
                if value is not None and math.isfinite(value):
                    self.study.tell(trial, value)
                elif state == "Canceled":
                    self.study.tell(trial, state=ts.PRUNED)
                else:
                    self.study.tell(trial, state=ts.FAIL)
                return


def make_sampler(algorithm: Any, space: dict[str, Any], goal: str) -> Sampler:
    """`sampling_algorithm` as azure-ai-ml dumps it: a name or {type, seed, rule}."""
    spec = algorithm if isinstance(algorithm, dict) else {"type": algorithm or "random"}
    kind = str(spec.get("type") or "random").lower()
    check_space(space, kind)
    seed = int(spec["seed"]) if spec.get("seed") is not None else None
    if kind == "random":
        return RandomSampler(space, seed, spec.get("rule") or "random")
    if kind == "grid":
        return GridSampler(space)
    if kind == "bayesian":
        return BayesianSampler(space, goal, seed)
    raise InvalidInput(f"sampling_algorithm: '{kind}' is not random, grid or bayesian")


def is_deterministic(algorithm: Any) -> bool:
    """Whether the same spec proposes the same trials again (grid, or seeded random)."""
    spec = algorithm if isinstance(algorithm, dict) else {"type": algorithm or "random"}
    kind = str(spec.get("type") or "random").lower()
    return kind == "grid" or (kind == "random" and spec.get("seed") is not None)


# -- trials and the objective ----------------------------------------------------------------
@dataclass
class TrialState:
    """What the policies and the ranking know about one trial."""

    name: str
    params: dict[str, Any]
    values: list[float] = field(default_factory=list)  # primary metric, in log order
    status: str = "Running"
    early_terminated: bool = False

    @property
    def intervals(self) -> int:
        return len(self.values)


def better(a: float, b: float, goal: str) -> bool:
    return a > b if goal == "maximize" else a < b


def best_of(values: Sequence[float], goal: str) -> float | None:
    """A trial's score: the best value it logged for the primary metric."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    return max(finite) if goal == "maximize" else min(finite)


def ranked(trials: Sequence[TrialState], goal: str) -> list[TrialState]:
    """Best first; trials without a metric last (in start order)."""
    scored = [t for t in trials if best_of(t.values, goal) is not None]
    unscored = [t for t in trials if best_of(t.values, goal) is None]
    sign = -1.0 if goal == "maximize" else 1.0
    scored.sort(key=lambda t: sign * best_of(t.values, goal))  # type: ignore[operator]
    return scored + unscored


def best_trial(trials: Sequence[TrialState], goal: str) -> TrialState | None:
    """The best Completed trial with a metric: its outputs are complete, so they can become
    the sweep's outputs (an early-terminated trial never wrote its model)."""
    done = [t for t in trials if t.status == "Completed" and best_of(t.values, goal) is not None]
    ranking = ranked(done, goal)
    return ranking[0] if ranking else None


# -- early termination ----------------------------------------------------------------------
@dataclass
class Policy:
    """An `early_termination` block; `evaluation_interval` 0 or missing means 1 (see docs)."""

    type: str
    evaluation_interval: int = 1
    delay_evaluation: int = 0
    slack_factor: float = 0.0
    slack_amount: float = 0.0
    truncation_percentage: int = 0
    exclude_finished_jobs: bool = False

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | None) -> Policy | None:
        if not spec or not spec.get("type"):
            return None
        kind = str(spec["type"]).lower().replace("-", "_")
        if kind not in ("bandit", "median_stopping", "truncation_selection"):
            raise InvalidInput(f"early_termination.type: unknown policy '{spec['type']}'")
        p = cls(
            type=kind,
            evaluation_interval=int(spec.get("evaluation_interval") or 1),
            delay_evaluation=int(spec.get("delay_evaluation") or 0),
            slack_factor=float(spec.get("slack_factor") or 0.0),
            slack_amount=float(spec.get("slack_amount") or 0.0),
            truncation_percentage=int(spec.get("truncation_percentage") or 0),
            exclude_finished_jobs=bool(spec.get("exclude_finished_jobs") or False),
        )
        if kind == "bandit" and p.slack_factor <= 0 and p.slack_amount <= 0:
            raise InvalidInput("early_termination: bandit needs slack_factor or slack_amount > 0")
        if kind == "truncation_selection" and not 1 <= p.truncation_percentage <= 99:
            raise InvalidInput("early_termination: truncation_percentage must be 1..99")
        return p

    def applies_at(self, interval: int) -> bool:
        """Policies run on multiples of evaluation_interval at or after delay_evaluation."""
        return (
            interval >= 1
            and interval >= self.delay_evaluation
            and interval % self.evaluation_interval == 0
        )

    def should_stop(
        self, trial: TrialState, trials: Sequence[TrialState], goal: str, interval: int
    ) -> str | None:
        """Why `trial` should be cancelled at `interval` (its values[:interval]), or None.

        Every trial is compared on what it had logged up to the same interval, so a trial
        that started late is not judged against others' later, better values.
        """
        if not self.applies_at(interval) or trial.intervals < interval:
            return None
        mine = best_of(trial.values[:interval], goal)
        if mine is None:
            return None
        others = [t for t in trials if t is not trial and t.values]
        if self.type == "bandit":
            return self._bandit(mine, others, goal, interval)
        if self.type == "median_stopping":
            return self._median(mine, others, goal, interval)
        return self._truncation(trial, trials, goal, interval)

    def _bandit(
        self, mine: float, others: Sequence[TrialState], goal: str, interval: int
    ) -> str | None:
        found = [best_of(t.values[:interval], goal) for t in others]
        scores = [s for s in found if s is not None]
        if not scores:
            return None
        best = max(scores) if goal == "maximize" else min(scores)
        if self.slack_factor > 0:
            if goal == "maximize":
                limit, clause = best / (1 + self.slack_factor), f"best/(1+{self.slack_factor:g})"
            else:
                limit, clause = best * (1 + self.slack_factor), f"best*(1+{self.slack_factor:g})"
        else:
            sign = -1 if goal == "maximize" else 1
            limit, clause = best + sign * self.slack_amount, f"best{'-+'[sign > 0]}slack_amount"
        if better(limit, mine, goal):
            return (
                f"bandit at interval {interval}: {mine:.6g} is outside the slack of the best "
                f"trial {best:.6g} ({clause} = {limit:.6g})"
            )
        return None

    def _median(
        self, mine: float, others: Sequence[TrialState], goal: str, interval: int
    ) -> str | None:
        averages = [statistics.fmean(t.values[:interval]) for t in others]
        if len(averages) < 2:  # a median of one other trial is just that trial: too eager
            return None
        median = statistics.median(averages)
        if better(median, mine, goal):
            return (
                f"median_stopping at interval {interval}: best {mine:.6g} is worse than the "
                f"median {median:.6g} of the other trials' running averages"
            )
        return None

    def _truncation(
        self, trial: TrialState, trials: Sequence[TrialState], goal: str, interval: int
    ) -> str | None:
        pool = [
            t
            for t in trials
            if t.values
            and (t is trial or not (self.exclude_finished_jobs and t.status != "Running"))
        ]
        cut = int(len(pool) * self.truncation_percentage / 100)
        if cut < 1:
            return None
        scored = [_Scored(t, best_of(t.values[:interval], goal)) for t in pool]
        scored = [s for s in scored if s.score is not None]
        sign = -1.0 if goal == "maximize" else 1.0
        scored.sort(key=lambda s: sign * s.score)  # type: ignore[operator]
        lowest = scored[-cut:]
        if any(s.trial is trial for s in lowest):
            return (
                f"truncation_selection at interval {interval}: among the lowest "
                f"{self.truncation_percentage}% of {len(scored)} trials"
            )
        return None


@dataclass
class _Scored:
    trial: TrialState
    score: float | None


# -- the trial ----------------------------------------------------------------------------
def trial_component(spec: dict[str, Any], standalone: bool) -> dict[str, Any]:
    """The trial as a command component. In a pipeline `trial:` is a component with declared
    inputs (the search space binds to inputs of the same name); a standalone sweep's trial is
    a bare command whose inputs and outputs are the job's own."""
    trial = spec.get("trial")
    if not isinstance(trial, dict):
        raise InvalidInput(f"sweep: trial must be a command component, got {trial!r}")
    comp = copy.deepcopy(trial)
    if standalone or not comp.get("inputs"):
        decls: dict[str, Any] = {}
        for k, v in (spec.get("inputs") or {}).items():
            if isinstance(v, dict) and (v.get("type") in DATA_TYPES or "path" in v):
                decls[k] = {"type": v.get("type", "uri_folder"), "mode": v.get("mode")}
            else:
                decls[k] = {"optional": True}
        comp["inputs"] = {**decls, **(comp.get("inputs") or {})}
    if standalone or not comp.get("outputs"):
        outs = {k: _out_decl(v) for k, v in (spec.get("outputs") or {}).items()}
        comp["outputs"] = {**outs, **(comp.get("outputs") or {})}
    return comp


def _out_decl(v: Any) -> dict[str, Any]:
    if isinstance(v, dict):
        return {"type": v.get("type") or "uri_folder", "mode": v.get("mode")}
    return {"type": "uri_folder"}
