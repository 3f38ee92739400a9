"""Step kinds plug in here: `KINDS` maps a step's `type` to the module that runs it.

Contract: a module listed in KINDS defines

    run(ctx: StepContext, call: StepCall) -> StepResult

- `ctx` (`amlocal.jobs.context.StepContext`) is all a kind sees of the job it runs in: the
  workspace, `base` and `datastore`, `cancel` (stop promptly when set), `update_job(job,
  **fields)` (status/properties/inputs/outputs/`_log`: the file `job stream` tails), the
  MLflow run lifecycle (`ctx.mlflow`), reuse (`ctx.reuse` / `ctx.remember`, with a
  fingerprint from `amlocal.jobs.reuse`), and `track`/`untrack` for processes a cancel stops.
- `call.step` is the planned step (`amlocal.jobs.types.Step`): `kind`, `component`
  (azure-ai-ml's `_to_dict()` of the component, code paths absolute), `spec` (the whole
  node), `env` (the resolved environment). `call.bound` / `call.targets`: its inputs bound
  in the parent's scope and its output declarations; `amlocal.jobs.step_io.resolve_io(...)`
  turns them into values, local paths and reuse identity.
- Return a terminal status and the outputs (name -> {type, mode, local_path, uri}) that
  downstream bindings read. For a standalone job `call.job` is the job itself.

Every parallel worker process (`python -m amlocal.jobs.kinds.parallel.worker`) imports this
package on its way in, so its body runs nothing but the map: the contract's Protocol is a
type only, and the error import waits for the error.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from typing import Protocol

    from amlocal.jobs.context import StepCall, StepContext, StepResult

    class StepKind(Protocol):
        """A module that runs one kind of step."""

        def run(self, ctx: StepContext, call: StepCall) -> StepResult: ...


KINDS: dict[str, str] = {
    "command": "amlocal.jobs.kinds.command",
    "parallel": "amlocal.jobs.kinds.parallel.step",
    "sweep": "amlocal.jobs.kinds.sweep.step",
    "pipeline": "amlocal.jobs.kinds.pipeline",
    "if_else": "amlocal.jobs.kinds.if_else",
    "do_while": "amlocal.jobs.kinds.do_while",
    "parallel_for": "amlocal.jobs.kinds.parallel_for",
}


def kind(name: str, step_name: str) -> StepKind:
    """The module that runs steps of type `name`."""
    module = KINDS.get(name)
    if module is None:
        from amlocal.errors import InvalidInput

        raise InvalidInput(f"step '{step_name}': type '{name}' is not supported yet")
    return cast("StepKind", importlib.import_module(module))


def run(ctx: StepContext, call: StepCall) -> StepResult:
    return kind(call.step["kind"], call.step["name"]).run(ctx, call)
