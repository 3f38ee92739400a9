"""Submitting and executing jobs: the DAG scheduler for pipelines (a standalone command job
is a one-node graph without a parent).

Everything the engine knows is written to the workspace store as it happens, so any CLI
process can show, stream or cancel a job, and a crashed runner leaves a readable record.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from amlocal import assets
from amlocal.errors import AmlocalError, InvalidInput
from amlocal.jobs import artifacts, environments, reuse, warm
from amlocal.jobs import run as steprun
from amlocal.jobs.plan import dependencies, topo_order
from amlocal.workspace import DEFAULT_DATASTORE, Workspace

TERMINAL = {"Completed", "Failed", "Canceled"}
_WORDS_A = [
    "amber",
    "brave",
    "calm",
    "dapper",
    "eager",
    "frosty",
    "gentle",
    "happy",
    "icy",
    "jolly",
    "keen",
    "lucid",
    "mellow",
    "nimble",
    "olive",
    "plucky",
    "quiet",
    "rosy",
    "sunny",
    "tidy",
    "upbeat",
    "vivid",
    "witty",
    "zesty",
]
_WORDS_B = [
    "apple",
    "badger",
    "cactus",
    "dream",
    "engine",
    "forest",
    "garden",
    "harbor",
    "island",
    "jacket",
    "kettle",
    "lemon",
    "mango",
    "needle",
    "orange",
    "pepper",
    "quill",
    "river",
    "sponge",
    "tiger",
    "umbrella",
    "violin",
    "whale",
    "yacht",
]


def new_job_name() -> str:
    """Names like Azure ML's generated ones: two words and a random suffix."""
    return f"{secrets.choice(_WORDS_A)}_{secrets.choice(_WORDS_B)}_{secrets.token_hex(5)}"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def git_commit(path: Path) -> str | None:
    try:
        r = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


# -- submission ---------------------------------------------------------------------------
def submit(
    ws: Workspace,
    plan: dict[str, Any],
    *,
    name: str | None = None,
    isolate: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """Create the job record (and its step records) with status NotStarted."""
    name = name or new_job_name()
    if ws.store.get("job", name) is not None:
        raise InvalidInput(f"a job named '{name}' already exists; job names are unique")
    base = Path(plan["base_dir"])
    plan["experiment_name"] = plan.get("experiment_name") or Path.cwd().name
    _resolve_component_refs(ws, plan)
    steps = plan["steps"] if plan["kind"] == "pipeline" else {"__job__": plan["step"]}
    env_labels: dict[str, str] = {}
    for sname, step in steps.items():
        where = f"{plan['source']}: jobs.{sname}" if plan["kind"] == "pipeline" else plan["source"]
        env = environments.resolve(ws, step_environment(step), where)
        step["env"] = env
        env_labels[sname] = env["label"]
    commit = git_commit(base)
    record: dict[str, Any] = {
        "name": name,
        "display_name": plan.get("display_name") or name,
        "type": plan["kind"],
        "status": "NotStarted",
        "experiment_name": plan["experiment_name"],
        "description": plan.get("description"),
        "tags": plan.get("tags") or {},
        "properties": {"azureml.git.commit": commit} if commit else {},
        "creation_context": {
            "created_at": now_iso(),
            "created_by": os.environ.get("USER", "local"),
            "created_by_type": "User",
        },
        "compute": (plan.get("settings") or {}).get("default_compute")
        or plan["spec"].get("compute")
        or "local",
        "services": {"Tracking": {"endpoint": ws.mlflow_tracking_uri, "type": "Tracking"}},
        "inputs": _show_inputs(plan),
        "outputs": {},
        "settings": plan.get("settings"),
        "id": "azureml:" + ws.arm_id(f"jobs/{name}"),
        "_plan": plan,
        "_isolate": isolate,
        "_git_commit": commit,
        **extra,
    }
    if plan["kind"] == "pipeline":
        record["jobs"] = {
            s: {"name": f"{name}_{s}", "status": "NotStarted", "type": st["kind"]}
            for s, st in plan["steps"].items()
        }
    ws.job_dir(name).mkdir(parents=True, exist_ok=True)
    ws.store.put("job", name, record)
    if plan["kind"] == "pipeline":
        for s, st in plan["steps"].items():
            ws.store.put(
                "job",
                f"{name}_{s}",
                {
                    "name": f"{name}_{s}",
                    "display_name": st["display_name"],
                    "type": st["kind"],
                    "status": "NotStarted",
                    "parent_job_name": name,
                    "step_name": s,
                    "experiment_name": plan["experiment_name"],
                    "properties": {},
                    "inputs": {},
                    "outputs": {},
                    "environment": env_labels.get(s),
                    "creation_context": record["creation_context"],
                },
                parent=name,
            )
    return record


def step_environment(step: dict[str, Any]) -> Any:
    """Where each step kind keeps its environment: command components, a parallel task,
    a sweep trial."""
    spec, component = step.get("spec") or {}, step.get("component") or {}
    if step["kind"] == "parallel":
        return (component.get("task") or spec.get("task") or {}).get("environment")
    if step["kind"] == "sweep":
        trial = spec.get("trial") if isinstance(spec.get("trial"), dict) else {}
        return trial.get("environment")
    return component.get("environment")


def _resolve_component_refs(ws: Workspace, plan: dict[str, Any]) -> None:
    """`component: azureml:name:version|@latest` resolves at submission, as in Azure."""
    steps = plan["steps"].values() if plan["kind"] == "pipeline" else [plan["step"]]
    for step in steps:
        ref = step.get("component_ref")
        if ref:
            try:
                rec = assets.get(ws, "component", ref)
            except AmlocalError as exc:
                raise InvalidInput(
                    f"{plan['source']}: jobs.{step['name']}.component: {exc}"
                ) from None
            step["component"] = assets.public(rec)


def _show_inputs(plan: dict[str, Any]) -> dict[str, Any]:
    if plan["kind"] != "pipeline":
        return plan["spec"].get("inputs") or {}
    out = {}
    for k, v in plan["inputs"].items():
        out[k] = (
            v["literal"] if "literal" in v else {kk: vv for kk, vv in v.items() if vv is not None}
        )
    return out


def spawn_runner(ws: Workspace, name: str) -> int:
    """Run the job in a detached process that outlives this CLI (as Azure runs it remotely)."""
    log = (ws.job_dir(name) / "runner.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "amlocal.jobs.pipeline", str(ws.home), name],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "AMLOCAL_HOME": str(ws.home)},
    )
    log.close()
    ws.store.update("job", name, lambda r: r.update(_runner_pid=proc.pid))
    return proc.pid


# -- execution ----------------------------------------------------------------------------
class Execution:
    """Runs one job to a terminal state, writing every transition to the store."""

    def __init__(self, ws: Workspace, name: str) -> None:
        self.ws = ws
        self.name = name
        record = ws.store.get("job", name)
        if record is None:
            raise AmlocalError(f"job '{name}' does not exist")
        self.record = record
        self.plan = record["_plan"]
        self.base = Path(self.plan["base_dir"])
        self.cancel = threading.Event()
        self.mlflow_lock = threading.Lock()
        self.parent_run: str | None = None
        self.procs: dict[str, steprun.StepProcess] = {}
        settings = self.plan.get("settings") or {}
        self.datastore = _datastore_name(settings.get("default_datastore"))
        self.force_rerun = bool(settings.get("force_rerun"))
        cosf = settings.get("continue_on_step_failure")
        self.continue_on_failure = True if cosf is None else bool(cosf)
        self.warned_envs: set[str] = set()
        self.user_canceled = False
        self.warm: warm.ForkServer | None = None

    def request_cancel(self) -> None:
        self.user_canceled = True
        self.cancel.set()

    # -- the API step kinds (amlocal.jobs.kinds) use ---------------------------------------
    def update_job(self, job: str, **fields: Any) -> None:
        """Write fields to a job record (status changes also update the pipeline's view)."""
        self._set(job, **fields)

    def mlflow_run(self, job: str, parent_run_id: str | None = None) -> str | None:
        """Create the MLflow run for a job that really executes: nested under the pipeline's
        run, or under `parent_run_id` (a sweep's trials under the sweep); returns its id."""
        if parent_run_id is None:
            return self._mlflow_run(job)
        from amlocal import tracking

        with self.mlflow_lock:
            return tracking.start_run(
                self.ws,
                self.plan["experiment_name"],
                job,
                parent_run_id=parent_run_id,
                tags=self._run_tags(job) | (self._job_tags() if job == self.name else {}),
            )

    def end_mlflow_run(self, run_id: str, status: str) -> None:
        from amlocal import tracking

        with self.mlflow_lock:
            tracking.end_run(self.ws, run_id, status)

    def step_env_vars(self, job: str, run_id: str | None) -> dict[str, str]:
        """The variables Azure ML sets for a job process (MLflow run, job name)."""
        return self._mlflow_env(job, run_id)

    def warn_environment(self, env: dict[str, Any]) -> None:
        self._warn_env(env)

    def find_reusable(self, step: dict[str, Any], key: str, job: str) -> dict[str, Any] | None:
        """The earlier step job to reuse for fingerprint `key` (recorded as reused), or None."""
        deterministic = (step.get("component") or {}).get("is_deterministic", True) is not False
        if not deterministic or self.force_rerun or self.plan["kind"] != "pipeline":
            return None  # Azure reuses pipeline steps only
        hit = reuse.lookup(self.ws.store, key)
        if hit is None or hit["name"] == job:
            return None
        props = {"azureml.isreused": "true", "azureml.reusedrunid": hit["name"]}
        if hit.get("properties", {}).get("mlflow.runId"):
            props["mlflow.runId"] = hit["properties"]["mlflow.runId"]
        self._set(
            job,
            status="Completed",
            properties=props,
            outputs=hit["outputs"],
            start_time=now_iso(),
            end_time=now_iso(),
            _log=hit.get("_log"),
        )
        return hit

    def remember(self, step: dict[str, Any], key: str, job: str) -> None:
        """Record a successful step job as reusable under fingerprint `key`."""
        deterministic = (step.get("component") or {}).get("is_deterministic", True) is not False
        if deterministic and not self.force_rerun and self.plan["kind"] == "pipeline":
            reuse.remember(self.ws.store, key, job)

    # status helpers
    def _set(self, job: str, **fields: Any) -> None:
        self.ws.store.update("job", job, lambda r: r.update(fields))
        if job != self.name and self.plan["kind"] == "pipeline" and "status" in fields:
            step = job[len(self.name) + 1 :]

            def upd(r: dict[str, Any]) -> None:
                if step not in r["jobs"]:  # a step nested in a pipeline-component step
                    return
                r["jobs"][step].update(status=fields["status"])
                if "properties" in fields and fields["properties"].get("azureml.isreused"):
                    r["jobs"][step]["reused"] = True

            self.ws.store.update("job", self.name, upd)

    def _cancel_requested(self) -> bool:
        r = self.ws.store.get("job", self.name) or {}
        return r.get("status") == "CancelRequested"

    def _run_tags(self, job: str, **extra: str) -> dict[str, str]:
        tags = {"azureml.jobName": job, **extra}
        if self.record.get("_git_commit"):
            tags["mlflow.source.git.commit"] = self.record["_git_commit"]
        return tags

    def _job_tags(self) -> dict[str, str]:
        """The job's YAML `tags` and `description` on its own MLflow run, as Azure sets them."""
        tags = {str(k): str(v) for k, v in (self.record.get("tags") or {}).items()}
        if self.record.get("description"):
            tags["mlflow.note.content"] = str(self.record["description"])
        return tags

    def _mlflow_run(self, job: str, run_name: str | None = None) -> str | None:
        """Create the MLflow run for a job that really executes (not for reused steps); the
        pipeline's own run is created with its first executing step."""
        from amlocal import tracking

        with self.mlflow_lock:
            if self.plan["kind"] == "pipeline" and self.parent_run is None:
                self.parent_run = tracking.start_run(
                    self.ws,
                    self.plan["experiment_name"],
                    self.name,
                    tags=self._run_tags(self.name, **{"azureml.runType": "pipeline"})
                    | self._job_tags(),
                )
                self._set(
                    self.name,
                    properties={
                        **self.record.get("properties", {}),
                        "mlflow.runId": self.parent_run,
                    },
                )
            return tracking.start_run(
                self.ws,
                self.plan["experiment_name"],
                run_name or job,
                parent_run_id=self.parent_run,
                tags=self._run_tags(job) | (self._job_tags() if job == self.name else {}),
            )

    def run(self) -> str:
        self._set(self.name, status="Running", start_time=now_iso(), _runner_pid=os.getpid())
        try:
            if self.plan["kind"] == "pipeline":
                status = self._run_pipeline()
            else:
                status = self._run_standalone()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                self.user_canceled = True
            self.cancel.set()
            for p in list(self.procs.values()):
                p.kill()
            status = "Canceled" if self.user_canceled else "Failed"
            self._set(
                self.name,
                status=status,
                end_time=now_iso(),
                error={"message": str(exc) or type(exc).__name__},
            )
            self._finish_mlflow(status)
            if not isinstance(exc, (KeyboardInterrupt, AmlocalError)):
                raise
            return status
        self._set(self.name, status=status, end_time=now_iso())
        self._finish_mlflow(status)
        return status

    def _warn_env(self, env: dict[str, Any]) -> None:
        if env.get("definition") and env["identity"] not in self.warned_envs:
            self.warned_envs.add(env["identity"])
            for problem in environments.mismatches(env["definition"]):
                sys.stderr.write(f"WARNING: environment {env['label']}: {problem}\n")
        if env.get("curated") and env["identity"] not in self.warned_envs:
            self.warned_envs.add(env["identity"])
            sys.stderr.write(
                f"WARNING: {env['label']} is an Azure ML registry environment; "
                f"running in the project venv instead\n"
            )

    def _mlflow_env(self, job: str, run_id: str | None) -> dict[str, str]:
        env = {
            "MLFLOW_TRACKING_URI": self.ws.mlflow_tracking_uri,
            "MLFLOW_EXPERIMENT_NAME": self.plan["experiment_name"],
            "AMLOCAL": "1",
            "AMLOCAL_HOME": str(self.ws.home),
            "AZUREML_RUN_ID": job,
        }
        if run_id:
            env["MLFLOW_RUN_ID"] = run_id
            from amlocal import tracking

            with self.mlflow_lock:
                env["MLFLOW_EXPERIMENT_ID"] = tracking.experiment_id(
                    self.ws, self.plan["experiment_name"]
                )
        return env

    def _finish_mlflow(self, status: str) -> None:
        if self.parent_run:
            from amlocal import tracking

            with self.mlflow_lock:
                tracking.end_run(self.ws, self.parent_run, status)

    def _run_standalone(self) -> str:
        step = self.plan["step"]
        bound = {k: _standalone_binding(v) for k, v in step["inputs"].items()}
        status, _ = self._run_step(self.name, step, bound, step["outputs"], standalone=True)
        return status

    def _run_pipeline(self) -> str:
        steps = self.plan["steps"]
        order = topo_order(steps)
        done: dict[str, str] = {}
        outputs: dict[str, dict[str, dict[str, Any]]] = {}
        running: dict[str, Future[tuple[str, dict[str, Any]]]] = {}
        workers = max(1, min(os.cpu_count() or 1, len(steps)))
        if warm.enabled() and sum(s.get("kind") == "command" for s in steps.values()) > 1:
            bin_dir = Path(sys.executable).parent
            base = steprun.base_env(bin_dir) | self._mlflow_env("", None)
            self.warm = warm.ForkServer(base, bin_dir, self.ws.home / "warm")
            from amlocal import tracking

            if not tracking.direct_writes(self.ws):
                # The first run needs MLflow itself (a new store, say): seconds before the
                # first step can start, in which the server can preload for free.
                self.warm.arm()
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                try:
                    self._schedule(pool, steps, order, done, outputs, running)
                except BaseException:
                    self.request_cancel()  # before the pool waits for its workers
                    for p in list(self.procs.values()):
                        p.kill()
                    raise
        finally:
            if self.warm is not None:
                self.warm.close()
        self._collect_pipeline_outputs(outputs)
        if self.user_canceled:
            return "Canceled"
        return "Completed" if all(s == "Completed" for s in done.values()) else "Failed"

    def _schedule(
        self,
        pool: ThreadPoolExecutor,
        steps: dict[str, Any],
        order: list[str],
        done: dict[str, str],
        outputs: dict[str, Any],
        running: dict[str, Future[tuple[str, dict[str, Any]]]],
    ) -> None:
        last_poll = 0.0
        while True:
            if time.monotonic() - last_poll > 0.25:
                last_poll = time.monotonic()
                if self._cancel_requested():
                    self.request_cancel()
            for sname, fut in list(running.items()):
                if fut.done():
                    del running[sname]
                    try:
                        status, outs = fut.result()
                    except Exception as exc:  # a resolution error: the step fails
                        status, outs = "Failed", {}
                        self._set(
                            f"{self.name}_{sname}",
                            status="Failed",
                            end_time=now_iso(),
                            error={"message": str(exc)},
                        )
                    done[sname] = status
                    outputs[sname] = outs
                    if status != "Completed":
                        if not self.continue_on_failure:
                            self.cancel.set()
            if self.cancel.is_set():
                for p in list(self.procs.values()):
                    p.kill()
                if not running:
                    break
            else:
                for sname in order:
                    if sname in done or sname in running:
                        continue
                    deps = dependencies(steps[sname])
                    if any(done.get(d) not in (None, "Completed") for d in deps):
                        done[sname] = "NotStarted"  # an upstream step failed
                        continue
                    if all(done.get(d) == "Completed" for d in deps):
                        bound = self._bind(steps[sname], outputs)
                        targets = self._out_targets(steps[sname])
                        running[sname] = pool.submit(
                            self._run_step, f"{self.name}_{sname}", steps[sname], bound, targets
                        )
                if not running:
                    break
            time.sleep(0.02)

    def _bind(
        self, step: dict[str, Any], outputs: dict[str, dict[str, dict[str, Any]]]
    ) -> dict[str, Any]:
        """Evaluate a step's input bindings in the parent context."""
        bound: dict[str, Any] = {}
        for key, b in step["inputs"].items():
            if "step_output" in b:
                src, out = b["step_output"]
                bound[key] = {"upstream": outputs[src][out]}
            elif "parent_input" in b:
                pin = self.plan["inputs"][b["parent_input"]]
                if "literal" in pin:
                    if pin["literal"] is not None:
                        bound[key] = {"literal": pin["literal"]}
                elif pin.get("path"):
                    bound[key] = {"data": {**pin, "mode": b.get("mode") or pin.get("mode")}}
            elif "template" in b:
                from amlocal.jobs.expressions import EXPR

                def sub(m: Any, key: str = key) -> str:
                    expr = m.group(1)
                    if expr.startswith("parent.inputs."):
                        v = self.plan["inputs"][expr.split(".", 2)[2]]
                        return str(v.get("literal", v.get("path")))
                    raise InvalidInput(f"unsupported expression in input '{key}': {expr}")

                bound[key] = {"literal": EXPR.sub(sub, b["template"])}
            else:
                bound[key] = b
        return bound

    def _out_targets(self, step: dict[str, Any]) -> dict[str, dict[str, Any]]:
        targets = {}
        for key, o in step["outputs"].items():
            if "parent_output" in o:
                decl = dict(self.plan["outputs"].get(o["parent_output"]) or {})
                if o.get("mode"):
                    decl["mode"] = o["mode"]
                targets[key] = decl
            else:
                targets[key] = o
        return targets

    def _collect_pipeline_outputs(self, outputs: dict[str, dict[str, dict[str, Any]]]) -> None:
        shown: dict[str, Any] = {}
        for sname, step in self.plan["steps"].items():
            for key, o in step["outputs"].items():
                if "parent_output" in o and key in outputs.get(sname, {}):
                    shown[o["parent_output"]] = outputs[sname][key]
        self._set(self.name, outputs=shown)

    def _run_step(
        self,
        job: str,
        step: dict[str, Any],
        bound: dict[str, Any],
        targets: dict[str, dict[str, Any]],
        standalone: bool = False,
    ) -> tuple[str, dict[str, Any]]:
        if step["kind"] != "command":
            from amlocal.jobs import kinds

            return kinds.run(self, job, step, bound, targets)
        env = step["env"]
        r = steprun.resolve(
            self.ws, job, step, bound, targets, base=self.base, datastore=self.datastore, env=env
        )
        shown = {
            "inputs": r.input_meta,
            "outputs": r.outputs,
            "command": r.command,
            "environment": env["label"],
        }
        deterministic = step["component"].get("is_deterministic", True) is not False
        reusable = deterministic and not self.force_rerun and not standalone
        if reusable:
            hit = reuse.lookup(self.ws.store, r.fingerprint)
            if hit is not None and hit["name"] != job:
                props = {"azureml.isreused": "true", "azureml.reusedrunid": hit["name"]}
                if hit.get("properties", {}).get("mlflow.runId"):
                    props["mlflow.runId"] = hit["properties"]["mlflow.runId"]
                self._set(
                    job,
                    status="Completed",
                    properties=props,
                    inputs=r.input_meta,
                    outputs=hit["outputs"],
                    command=hit.get("command"),
                    environment=env["label"],
                    start_time=now_iso(),
                    end_time=now_iso(),
                    _log=hit.get("_log"),
                )
                return "Completed", hit["outputs"]
        self._warn_env(env)
        run_id = self._mlflow_run(job, self.record["display_name"] if standalone else None)
        artifacts_in_run = artifacts.bind(self.ws, r, run_id)
        mlflow_env = self._mlflow_env(job, run_id)
        bin_dir = environments.python_bin_dir(self.ws, env, bool(self.record.get("_isolate")))
        proc = steprun.StepProcess(self.ws, r, mlflow_env, bin_dir)
        props = {"mlflow.runId": run_id} if run_id else {}
        self._set(
            job,
            status="Running",
            start_time=now_iso(),
            properties=props,
            _log=str(proc.log_path),
            **shown,
        )
        if self.cancel.is_set():
            self._set(job, status="Canceled", end_time=now_iso())
            return "Canceled", {}
        self.procs[job] = proc
        proc.start(self.warm)
        code = proc.wait(self.cancel)
        del self.procs[job]
        if proc.timed_out:
            status, error = "Canceled", f"the job exceeded limits.timeout ({r.timeout:g} s)"
        elif self.cancel.is_set() and code != 0:
            status, error = "Canceled", "canceled"
        elif code != 0:
            status, error = "Failed", f"command exited with code {code}"
        else:
            status, error = "Completed", None
        if run_id:
            from amlocal import tracking

            with self.mlflow_lock:
                outdir = proc.cwd / "outputs"
                if any(outdir.iterdir()) and not artifacts_in_run:
                    tracking.log_outputs_dir(self.ws, run_id, str(outdir))
                tracking.end_run(self.ws, run_id, status)
        artifacts.collect(r, proc.cwd, proc.log_path)
        if status == "Completed" and reusable:
            reuse.remember(self.ws.store, r.fingerprint, job)
        fields: dict[str, Any] = {
            "status": status,
            "end_time": now_iso(),
            "exit_code": code,
            "outputs": r.outputs,
        }
        if error:
            fields["error"] = {"message": error, "log_tail": steprun.log_tail(proc.log_path)}
        self._set(job, **fields)
        return status, r.outputs


def _standalone_binding(b: dict[str, Any]) -> dict[str, Any]:
    if "template" in b:
        return {"literal": b["template"]}
    return b


def _datastore_name(value: Any) -> str:
    if not value:
        return DEFAULT_DATASTORE
    v = str(value).removeprefix("azureml:")
    return v.split("/")[-1] or DEFAULT_DATASTORE


def execute(ws: Workspace, name: str) -> str:
    """Run a job in this process; SIGTERM (from `job cancel`) and Ctrl-C cancel it."""
    ex = Execution(ws, name)

    def on_term(signum: int, frame: Any) -> None:
        ex.request_cancel()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)
    return ex.run()


if __name__ == "__main__":  # the detached runner
    from amlocal.workspace import Workspace as _W

    home, job_name = sys.argv[1], sys.argv[2]
    final = execute(_W(Path(home)), job_name)
    raise SystemExit(0 if final == "Completed" else 1)
