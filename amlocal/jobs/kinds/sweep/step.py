"""`type: sweep`, standalone or as a pipeline step: trials as subprocesses, objective read
from MLflow, early termination while trials run, the best trial's outputs as the sweep's.

Each trial is a command job named `<sweep job>_<n>` (HyperDrive's child-run names) with its
own record (parent: the sweep job), working directory, log and MLflow run nested under the
sweep's run. The decisions (what to sample, whom to stop, who is best) are in `sweep.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlocal.errors import InvalidInput
from amlocal.jobs import artifacts, process, reuse, step_io
from amlocal.jobs import expressions as ex
from amlocal.jobs.context import mark_running
from amlocal.jobs.kinds.sweep import decisions as sw
from amlocal.jobs.records import child_record
from amlocal.jobs.status import Status
from amlocal.jobs.status import now_iso as _now

if TYPE_CHECKING:
    from amlocal.jobs.context import StepCall, StepContext, StepResult
    from amlocal.jobs.types import Binding, Step
from amlocal.snapshot import snapshot_digest

# How often running trials' metrics are read from MLflow to apply early termination: often
# enough that a stopped trial wastes little, rarely enough not to load SQLite.
POLL_SECONDS = 0.5
DEFAULT_MAX_TOTAL_TRIALS = 1000  # the YAML reference's default
_SWEEP_KEYS = (
    "sampling_algorithm",
    "search_space",
    "objective",
    "limits",
    "early_termination",
)


@dataclass
class Live:
    """A trial whose process is running (or has just ended)."""

    state: sw.TrialState
    run_id: str | None
    proc: process.StepProcess
    resolved: step_io.Resolved
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    exit_code: int | None = None
    stop_reason: str | None = None
    artifacts_in_run: bool = False  # the `artifacts` output is the MLflow run's folder


def run(ctx: StepContext, call: StepCall) -> StepResult:
    """Run a sweep to a terminal status; see amlocal.jobs.kinds for the contract."""
    return SweepRun(ctx, call).execute()


class SweepRun:
    """One sweep job from start to terminal status."""

    def __init__(self, ctx: StepContext, call: StepCall) -> None:
        self.ex, self.ws, self.job, self.step = ctx, ctx.ws, call.job, call.step
        step = call.step
        self.spec = step["spec"]
        self.standalone = ctx.standalone
        self.comp = sw.trial_component(self.spec, self.standalone)
        self.bound = call.bound
        self.targets = call.targets
        objective = self.spec.get("objective") or {}
        self.metric = str(objective.get("primary_metric") or "")
        self.goal = str(objective.get("goal") or "maximize").lower()
        if not self.metric:
            raise InvalidInput(f"step '{step['name']}': objective.primary_metric is required")
        if self.goal not in ("maximize", "minimize"):
            raise InvalidInput(f"objective.goal: '{self.goal}' is not maximize or minimize")
        self.space = self.spec.get("search_space") or {}
        self.algorithm = self.spec.get("sampling_algorithm") or "random"
        self.policy = sw.Policy.from_spec(self.spec.get("early_termination"))
        algo = self.algorithm.get("type") if isinstance(self.algorithm, dict) else self.algorithm
        if self.policy is not None and str(algo).lower() == "bayesian":
            raise InvalidInput("early_termination is not supported with bayesian sampling")
        self.sampler = sw.make_sampler(self.algorithm, self.space, self.goal)
        limits = self.spec.get("limits") or {}
        self.max_total = int(limits.get("max_total_trials") or DEFAULT_MAX_TOTAL_TRIALS)
        self.max_concurrent = max(
            1, min(int(limits.get("max_concurrent_trials") or self.max_total), os.cpu_count() or 1)
        )
        self.timeout = float(limits["timeout"]) if limits.get("timeout") else None
        self.trial_timeout = float(limits["trial_timeout"]) if limits.get("trial_timeout") else None
        self.trials: list[sw.TrialState] = []
        self.live: dict[str, Live] = {}
        self.run_id: str | None = None
        self.log_path = self.ws.job_dir(self.job) / step_io.LOG_NAME
        self.stop_reason: str | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def execute(self) -> StepResult:
        ex_, job = self.ex, self.job
        placeholders: dict[str, Binding] = {
            k: {"literal": None} for k in self.space if k in self.comp["inputs"]
        }
        io = step_io.resolve_io(
            self.ws,
            job,
            self.step,
            {**self.bound, **placeholders},
            self.targets,
            base=ex_.base,
            datastore=ex_.datastore,
            component=self.comp,
        )
        for name in self.space:  # fail before any trial if the search space reaches nothing
            if name not in self.comp["inputs"] and "search_space." + name not in "".join(
                ex.EXPR.findall(self.comp.get("command") or "")
            ):
                raise InvalidInput(
                    f"step '{self.step['name']}': search_space.{name} is neither a trial input "
                    f"nor used as ${{{{search_space.{name}}}}} in trial.command"
                )
        env = self.step["env"]
        key = self._fingerprint(io, env)
        if key and ex_.reuse(self.step, key, job, {}):
            return Status.COMPLETED, (self.ws.store.get("job", job) or {}).get("outputs") or {}
        ex_.warn_environment(env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.run_id = ex_.mlflow.start(job)
        shown = {
            "inputs": io.input_meta,
            "environment": env["label"],
            "objective": {"primary_metric": self.metric, "goal": self.goal},
            "search_space": self.space,
        }
        # _trials_total: for --stream's `trials 3/8 done`
        trials = {"_trials_total": self._total()}
        props = mark_running(ex_, job, self.run_id, self.log_path, trials)
        ex_.update_job(job, **shown)
        self._log(
            f"sweep {job}: {self.metric} ({self.goal}), up to {self.max_total} trials, "
            f"{self.max_concurrent} at a time"
        )
        try:
            self._loop(env)
        finally:
            for lv in list(self.live.values()):
                lv.stop.set()
            for lv in list(self.live.values()):
                if lv.thread:
                    lv.thread.join()
        return self._finish(io, key, props)

    def _total(self) -> int:
        """How many trials will run unless stopped early: limits.max_total_trials, or fewer
        when a grid has fewer combinations."""
        algo = self.algorithm.get("type") if isinstance(self.algorithm, dict) else self.algorithm
        if str(algo).lower() != "grid":
            return self.max_total
        combos = 1
        for dist in self.space.values():
            combos *= len(dist.get("values") or []) if isinstance(dist, dict) else 1
        return min(self.max_total, combos)

    def _fingerprint(self, io: step_io.IO, env: dict[str, Any]) -> str | None:
        """Reuse key of the whole sweep; None when sampling is not reproducible."""
        if not sw.is_deterministic(self.algorithm):
            return None
        trial = {k: v for k, v in self.comp.items() if k != "code"}
        component: dict[str, Any] = {"type": "sweep", "trial": trial}
        component.update({k: self.spec.get(k) for k in _SWEEP_KEYS})
        code = self.comp.get("code")
        digest = snapshot_digest(Path(code), self.ws.store) if code else None
        return reuse.fingerprint(
            component,
            digest,
            self.ex.environment_identity(env),
            io.input_identity,
            io.output_identity,
            {},
        )

    def _loop(self, env: dict[str, Any]) -> None:
        deadline = time.monotonic() + self.timeout if self.timeout else None
        exhausted = False
        last_poll = 0.0
        while True:
            if self.ex.cancel.is_set():
                self.stop_reason = self.stop_reason or "canceled"
            elif deadline is not None and time.monotonic() > deadline:
                self.stop_reason = f"limits.timeout ({self.timeout:g} s) reached"
            if self.stop_reason:
                for lv in self.live.values():
                    lv.stop.set()
            while (
                not self.stop_reason
                and not exhausted
                and len(self.live) < self.max_concurrent
                and len(self.trials) < self.max_total
            ):
                params = self.sampler.propose()
                if params is None:
                    exhausted = True
                    break
                self._start_trial(params, env)
            if time.monotonic() - last_poll >= POLL_SECONDS:
                last_poll = time.monotonic()
                self._poll()
            for name, lv in list(self.live.items()):
                if lv.thread is not None and not lv.thread.is_alive():
                    del self.live[name]
                    self._end_trial(lv)
            nothing_left = exhausted or len(self.trials) >= self.max_total
            if not self.live and (nothing_left or self.stop_reason):
                return
            time.sleep(0.05)

    # -- trials -------------------------------------------------------------------------------
    def _start_trial(self, params: dict[str, Any], env: dict[str, Any]) -> None:
        name = f"{self.job}_{len(self.trials)}"
        state = sw.TrialState(name=name, params=params)
        self.trials.append(state)
        bound = dict(self.bound)
        for k, v in params.items():
            if k in self.comp["inputs"]:
                bound[k] = {"literal": v}
        trial_step: Step = {**self.step, "name": name, "component": self.comp}
        record = child_record(
            name,
            parent=self.job,
            kind="command",
            display_name=name,
            experiment_name=self.ex.experiment_name,
            environment=env["label"],
            status=Status.STARTING,
            parameters=params,
            creation_context={"created_at": _now()},
        )
        self.ws.store.put("job", name, dict(record), parent=self.job)
        try:
            io = step_io.resolve_io(
                self.ws,
                name,
                trial_step,
                bound,
                {},
                base=self.ex.base,
                datastore=self.ex.datastore,
                component=self.comp,
            )
            command = ex.render(
                self.comp.get("command") or "",
                io.input_values,
                {k: v["local_path"] for k, v in io.outputs.items()},
                extra={"search_space": params},
                where=f"{self.step['name']}: trial.command",
            )
        except InvalidInput as exc:
            state.status = Status.FAILED
            self._update(name, status=Status.FAILED, end_time=_now(), error={"message": str(exc)})
            self._log(f"{name}: failed before starting: {exc}")
            self.sampler.tell(params, None, Status.FAILED)
            return
        code = self.comp.get("code")
        r = step_io.Resolved(
            job_name=name,
            component=self.comp,
            io=io,
            code=Path(code) if code else None,
            env=env,
            environment_variables={
                str(k): str(v) for k, v in (self.comp.get("environment_variables") or {}).items()
            },
            timeout=self.trial_timeout,
            command=command,
        )
        run_id = self.ex.mlflow.start(name, parent_run_id=self.run_id) if self.run_id else None
        if run_id:
            with self.ex.mlflow.client() as c:
                c.set_tag(run_id, "hyperparameters", json.dumps(params, default=str))
                c.set_tag(run_id, "azureml.runType", "sweep_trial")
        in_run = artifacts.bind(self.ws, r, run_id, extra={"search_space": params})
        command = r.command
        bin_dir = self.ex.python_bin_dir(env)
        proc = process.StepProcess(self.ws, r, self.ex.mlflow.env(name, run_id), bin_dir)
        lv = Live(state=state, run_id=run_id, proc=proc, resolved=r, artifacts_in_run=in_run)
        self._update(
            name,
            status=Status.RUNNING,
            start_time=_now(),
            command=command,
            inputs=io.input_meta,
            outputs=io.outputs,
            properties={"mlflow.runId": run_id} if run_id else {},
            _log=str(proc.log_path),
        )
        self._log(f"{name}: started with {json.dumps(params, default=str)}")
        lv.thread = threading.Thread(target=self._run_trial, args=(lv,), daemon=True)
        self.live[name] = lv
        self.ex.track(name, proc)
        proc.start()
        lv.thread.start()

    def _run_trial(self, lv: Live) -> None:
        try:
            lv.exit_code = lv.proc.wait(lv.stop)
        finally:
            self.ex.untrack(lv.state.name)

    def _poll(self) -> None:
        """Read running trials' primary metric and apply the early-termination policy."""
        if not self.live:
            return
        for lv in self.live.values():
            lv.state.values = self._metric_values(lv.run_id)
        if self.policy is None:
            return
        for lv in list(self.live.values()):
            if lv.stop.is_set():
                continue
            # Every interval the trial has reached, on every poll: the others' values up to
            # that interval may have arrived since (a trial that reported before the best
            # one did is judged once the best one reports, whatever the timing).
            for interval in range(1, lv.state.intervals + 1):
                reason = self.policy.should_stop(lv.state, self.trials, self.goal, interval)
                if reason:
                    lv.stop_reason = reason
                    lv.state.early_terminated = True
                    lv.stop.set()
                    self._log(f"{lv.state.name}: early termination: {reason}")
                    break

    def _metric_values(self, run_id: str | None) -> list[float]:
        """The primary metric's logged values in order: one value = one interval."""
        if not run_id:
            return []
        with self.ex.mlflow.client() as c:
            history = c.get_metric_history(run_id, self.metric)
        history = sorted(history, key=lambda m: (m.step, m.timestamp))
        return [float(m.value) for m in history]

    def _name_by_used_params(self, run_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """Rename the trial's run after the parameters it logged, once it has run: the
        sweep hands every trial the whole product, a family reads only its own. Returns
        the parameters its name shows."""
        from mlflow.exceptions import MlflowException

        from amlocal import run_names

        try:
            with self.ex.mlflow.client() as c:
                shown = run_names.used(params, c.get_run(run_id).data.params)
                if shown != params:
                    c.set_tag(run_id, "mlflow.runName", run_names.trial(shown))
        except MlflowException:  # a name is not worth failing a trial over
            return params
        return shown

    def _end_trial(self, lv: Live) -> None:
        st, name = lv.state, lv.state.name
        st.values = self._metric_values(lv.run_id)
        code = lv.exit_code
        error: str | None = None
        if lv.proc.timed_out:
            st.status, error = Status.CANCELED, f"limits.trial_timeout ({self.trial_timeout:g} s)"
        elif lv.stop_reason:
            st.status, error = Status.CANCELED, lv.stop_reason
            if code == 0:  # finished on its own just as it was stopped
                st.status, error, st.early_terminated = Status.COMPLETED, None, False
        elif lv.stop.is_set() and code != 0:
            st.status, error = Status.CANCELED, self.stop_reason or "canceled"
        elif code != 0:
            st.status, error = Status.FAILED, f"command exited with code {code}"
        elif sw.best_of(st.values, self.goal) is None:
            st.status = Status.FAILED
            error = f"the trial logged no value for the primary metric '{self.metric}'"
        else:
            st.status = Status.COMPLETED
        used_params = st.params
        if lv.run_id:
            used_params = self._name_by_used_params(lv.run_id, st.params)
            outputs = None if lv.artifacts_in_run else lv.proc.cwd / "outputs"
            self.ex.mlflow.end(lv.run_id, st.status, outputs)
        artifacts.collect(lv.resolved.outputs, lv.proc.cwd, lv.proc.log_path)
        best = sw.best_of(st.values, self.goal)
        fields: dict[str, Any] = {
            "status": st.status,
            "end_time": _now(),
            "exit_code": code,
            "metrics": {self.metric: best, "intervals": st.intervals},
            "_used_parameters": used_params,  # what its run name shows, the sweep summary too
        }
        if st.early_terminated:
            fields["properties"] = {
                **({"mlflow.runId": lv.run_id} if lv.run_id else {}),
                "azureml.earlyTerminated": "true",
            }
        if error:
            fields["error"] = {"message": error, "log_tail": process.log_tail(lv.proc.log_path)}
        self._update(name, **fields)
        self.sampler.tell(st.params, best, st.status)
        shown = "none" if best is None else f"{best:.6g}"
        self._log(f"{name}: {st.status} ({self.metric}={shown}, {st.intervals} intervals)")

    # -- the end ------------------------------------------------------------------------------
    def _finish(self, io: step_io.IO, key: str | None, props: dict[str, Any]) -> tuple[str, Any]:
        best = sw.best_trial(self.trials, self.goal)
        table = [self._row(t) for t in sw.ranked(self.trials, self.goal)]
        outputs: dict[str, Any] = {}
        if best is not None:
            best_rec = self.ws.store.get("job", best.name) or {}
            for out_name, target in io.outputs.items():
                src = (best_rec.get("outputs") or {}).get(out_name)
                if src:
                    _copy(Path(src["local_path"]), Path(target["local_path"]))
                    outputs[out_name] = target
            if artifacts.NAME not in outputs and artifacts.NAME in (best_rec.get("outputs") or {}):
                # Azure's sweep outputs are its best trial's, the default one included
                best_art = best_rec["outputs"][artifacts.NAME]
                outputs[artifacts.NAME] = {
                    **best_art,
                    "uri": f"azureml://jobs/{self.job}/outputs/{artifacts.NAME}",
                }
        if self.ex.user_canceled or (self.ex.cancel.is_set() and self.stop_reason == "canceled"):
            status, error = Status.CANCELED, "canceled"
        elif best is None:
            status = Status.FAILED
            error = f"no trial completed with a value for '{self.metric}'"
        else:
            status, error = Status.COMPLETED, None
        score = sw.best_of(best.values, self.goal) if best else None
        if best is not None:
            props = {**props, "best_child_run_id": best.name, "score": str(score)}
        if self.stop_reason and self.stop_reason != "canceled":
            props = {**props, "azureml.sweepStopReason": self.stop_reason}
        if self.run_id:
            self._log_sweep_run(self.run_id, best, score)
            self.ex.mlflow.end(self.run_id, status)
        fields: dict[str, Any] = {
            "status": status,
            "end_time": _now(),
            "properties": props,
            "outputs": outputs,
            "trials": table,
            "best_trial": table[0]["name"] if best is not None else None,
        }
        if error:
            fields["error"] = {"message": error}
        self.ex.update_job(self.job, **fields)
        self._log(f"sweep {self.job}: {status}; {self._best_words(best, score)}")
        if status == Status.COMPLETED and key:
            self.ex.remember(self.step, key, self.job)
        return status, outputs

    def _row(self, t: sw.TrialState) -> dict[str, Any]:
        return {
            "name": t.name,
            "status": t.status,
            "parameters": t.params,
            self.metric: sw.best_of(t.values, self.goal),
            "intervals": t.intervals,
            "early_terminated": t.early_terminated,
        }

    def _log_sweep_run(self, run_id: str, best: sw.TrialState | None, score: float | None) -> None:
        """The best value on the sweep's own run, and the comparison plot (metric by trial and
        by hyperparameter), so `make ui` shows the sweep at a glance."""
        try:
            from amlocal.jobs.kinds.sweep.plot import comparison_figure, used_params

            used = used_params(self.ws, self.trials)  # a trial uses what its run logged
            fig = comparison_figure(self.trials, self.metric, self.goal, used)
            with self.ex.mlflow.client() as c:
                if best is not None and score is not None:
                    c.log_metric(run_id, self.metric, score)
                    c.set_tag(run_id, "best_child_run_id", best.name)
                c.log_figure(run_id, fig, "sweep_comparison.png")
        except Exception as exc:  # a plot must never fail the sweep
            self._log(f"warning: could not log the sweep comparison plot: {exc}")

    def _best_words(self, best: sw.TrialState | None, score: float | None) -> str:
        """The best trial as people know it, by the parameters it used (its run's name),
        then its score and job name: `best svc C=4.2 (val_accuracy=0.97, sweep_3)`."""
        from amlocal import run_names

        if best is None:
            return "no best trial"
        used = (self.ws.store.get("job", best.name) or {}).get("_used_parameters") or best.params
        shown = "none" if score is None else f"{score:.4g}"
        return f"best {run_names.trial(used)} ({self.metric}={shown}, {best.name})"

    # -- helpers ------------------------------------------------------------------------------
    def _update(self, name: str, **fields: Any) -> None:
        """Trial records are written directly: they are not steps of the pipeline record."""

        def upd(r: dict[str, Any]) -> None:
            props = fields.pop("properties", None)
            r.update(fields)
            if props:
                r["properties"] = {**(r.get("properties") or {}), **props}

        self.ws.store.update("job", name, upd)

    def _log(self, line: str) -> None:
        with self.log_path.open("a") as fh:
            fh.write(f"[{_now()}] {line}\n")


def _copy(src: Path, dst: Path) -> None:
    """The best trial's output into the sweep's. Files are written over, never a folder
    removed: the destination may hold what amlocal did not create (a user's `path:`)."""
    if not src.exists() or dst.resolve().is_relative_to(src.resolve()):
        return
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
