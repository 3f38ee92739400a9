"""The layers import downwards only (run-time imports, as in test_import_graph):

- `jobs/` (the engine) imports neither `commands/` (the CLI verbs) nor `endpoints/`;
- a step kind never imports the runner (the process that runs a whole job);
- `assets/`, `loader` and the ground modules (amlocal's top-level modules) import neither
  `jobs/` nor `schedules/`.
"""

from __future__ import annotations

from amlocal.jobs.kinds import KINDS
from unit.test_import_graph import import_graph

RUNNER = "amlocal.jobs.runner"
# The modules of a kind: its module, or every module of its package when it has parts.
KIND_ROOTS = sorted({m.rsplit(".", 1)[0] if m.endswith(".step") else m for m in KINDS.values()})
# Top-level modules that are not ground: the CLI entry point wires every layer together.
NOT_GROUND = {"amlocal.cli"}

GRAPH = import_graph()


def _in(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _violations(sources: list[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{m} -> {t}" for m in sources for t in GRAPH[m] if _in(t, *forbidden))


def test_jobs_import_neither_commands_nor_endpoints() -> None:
    jobs = [m for m in GRAPH if _in(m, "amlocal.jobs")]
    assert jobs
    assert _violations(jobs, ("amlocal.commands", "amlocal.endpoints")) == []


def test_kinds_never_import_the_runner() -> None:
    kinds = [m for m in GRAPH if _in(m, *KIND_ROOTS)]
    assert len(kinds) >= len(KINDS)
    assert RUNNER in GRAPH
    assert _violations(kinds, (RUNNER,)) == []


def test_assets_loader_and_ground_import_neither_jobs_nor_schedules() -> None:
    packages = {m.rsplit(".", 1)[0] for m in GRAPH}
    ground = [m for m in GRAPH if m.count(".") == 1 and m not in packages | NOT_GROUND]
    lower = [m for m in GRAPH if _in(m, "amlocal.assets")] + ground
    assert "amlocal.loader" in lower
    assert _violations(lower, ("amlocal.jobs", "amlocal.schedules")) == []
