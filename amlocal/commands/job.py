"""`amlocal job ...`: create (with --stream), show, list, stream, cancel, download."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amlocal import procs
from amlocal.commands import definition_verb, record_verb
from amlocal.errors import InvalidInput, NotFound
from amlocal.jobs.status import TERMINAL, Status
from amlocal.workspace import Workspace
from amlocal.workspace import public_job as public


def add_verbs(verbs: argparse._SubParsersAction, group: str) -> None:
    text = "Create (submit) a job from a YAML file."
    p = definition_verb(verbs, "create", create, text, file_required=True)
    p.add_argument("-s", "--stream", action="store_true")
    p.add_argument("--web", action="store_true", help="print the MLflow UI address of the job")
    p.add_argument("--skip-validation", action="store_true")
    p.add_argument("--save-as")
    p.add_argument(
        "--isolate-environments",
        action="store_true",
        help="amlocal only: one content-hashed venv per Azure ML environment",
    )

    p = verbs.add_parser("validate", help="Validate a job YAML file without running it.")
    p.add_argument("-f", "--file", required=True)
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=validate)

    p = record_verb(verbs, "show", show, "Show a job.")
    p.add_argument("--web", action="store_true", help="print the MLflow UI address of the job")

    p = verbs.add_parser("list", help="List jobs.")
    p.add_argument("-p", "--parent-job-name")
    p.add_argument("-r", "--max-results", type=int)
    p.add_argument("--all-results", action="store_true")
    p.add_argument("--include-archived", action="store_true")
    p.set_defaults(func=list_jobs)

    record_verb(verbs, "stream", stream, "Stream a job's logs until it finishes.")
    record_verb(verbs, "cancel", cancel, "Cancel a job.", no_wait=True)

    text = "Download a job's logs, ./outputs and named outputs."
    p = record_verb(verbs, "download", download, text)
    p.add_argument("--download-path", "-p", default=".")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--output-name")
    g.add_argument("--all", action="store_true")


def _get(ws: Workspace, name: str) -> dict[str, Any]:
    return ws.store.require("job", name, f"job '{name}' was not found in workspace {ws.home}")


def create(args: argparse.Namespace) -> Any:
    from amlocal import loader
    from amlocal.jobs import pipeline, plan

    ws = Workspace()
    path = Path(args.file)
    if not path.is_file():
        raise InvalidInput(f"{path}: file not found")
    overrides = loader.parse_set(args.set)
    from amlocal.overrides import unknown_inputs

    for warning in unknown_inputs(path, overrides):
        sys.stderr.write(f"WARNING: {warning}\n")
    job_plan = plan.load_plan(ws, path, overrides)
    record = pipeline.submit(ws, job_plan, name=args.name, isolate=args.isolate_environments)
    name = record["name"]
    if not args.stream:
        pipeline.spawn_runner(ws, name)
        if args.web:
            _web_view(ws, _get(ws, name))
        return public(_get(ws, name))
    return _run_streaming(ws, name)


def validate(args: argparse.Namespace) -> Any:
    from amlocal import loader
    from amlocal.jobs import dryrun

    return dryrun.validate_job(Workspace(), Path(args.file), loader.parse_set(args.set))


def _run_streaming(ws: Workspace, name: str) -> tuple[dict[str, Any], int]:
    """Run in this process with a live view; Ctrl-C cancels the job and its processes."""
    from amlocal.jobs import pipeline, stream

    sys.stderr.write(f"RunId: {name}\n")  # Web View: once the job has its MLflow run (_view)
    done = threading.Event()
    viewer = threading.Thread(target=_view, args=(ws, name, done), daemon=True)
    viewer.start()
    try:
        status = pipeline.execute(ws, name)
    except KeyboardInterrupt:
        status = "Canceled"
    done.set()
    viewer.join(timeout=5)
    record = _get(ws, name)
    if record.get("type") == "pipeline" and not sys.stderr.isatty():  # a terminal has it
        sys.stderr.write(stream.render(ws, record) + "\n")
    if status != "Completed":
        report = stream.failure_report(ws, record)
        if report:
            sys.stderr.write(report + "\n")
    sys.stderr.write(f"Execution Summary\n=================\nRunId: {name}\nStatus: {status}\n")
    return public(record), 0 if status == "Completed" else 1


def _view(ws: Workspace, name: str, done: threading.Event) -> None:
    """The live view while this process runs the job, then one last tick."""
    from amlocal.jobs import stream

    view = stream.LiveView(ws, name)
    web = False
    try:
        while not done.wait(0.2):
            job = view.tick()
            if not web and job and (job.get("properties") or {}).get("mlflow.runId"):
                web = _web_view(ws, job)  # on a terminal rich prints it above its view
        job = ws.store.get("job", name)
        if not web and job:
            _web_view(ws, job)
        # A last tick: a single job's log tail and progress, the step transitions of the
        # job's last poll interval, or (on a terminal) the final table, left on screen.
        if job:
            view.tick()
    finally:
        view.close()


def _web_view(ws: Workspace, job: dict[str, Any]) -> bool:
    """`Web View:` as az prints the studio link: here the job's run in the MLflow UI."""
    from amlocal import ui

    sys.stderr.write(f"Web View: {ui.job_url(ws, job)}\n")
    sys.stderr.flush()
    return True


def show(args: argparse.Namespace) -> Any:
    ws = Workspace()
    record = _get(ws, args.name)
    _reap_dead_runner(ws, record)
    if args.web:
        _web_view(ws, _get(ws, args.name))
    out = public(_get(ws, args.name))
    if out.get("type") == "pipeline":
        for child in ws.store.list("job", parent=args.name):
            step = child.get("step_name")
            if step in out.get("jobs", {}):
                out["jobs"][step].update(
                    status=child.get("status"),
                    properties=child.get("properties") or {},
                    outputs=public(child).get("outputs") or {},
                )
    return out


def _reap_dead_runner(ws: Workspace, record: dict[str, Any]) -> None:
    """A runner that died without finishing (killed, reboot) leaves a Failed job, not a
    forever-Running one; its steps are reaped with it (running ones Failed, the rest
    Canceled), whichever of the pipeline or its steps is shown."""
    root = record
    while root.get("parent_job_name"):
        parent = ws.store.get("job", root["parent_job_name"])
        if parent is None:
            break
        root = parent
    pid = root.get("_runner_pid")
    if root.get("status") in TERMINAL or not pid or procs.alive(pid):
        return
    error = {"message": _runner_death(ws, root["name"])}
    ws.store.update("job", root["name"], _merge({"status": Status.FAILED, "error": error}))
    pending = [root["name"]]
    while pending:
        for child in ws.store.list("job", parent=pending.pop()):
            pending.append(child["name"])
            if child.get("status") not in TERMINAL:
                change: dict[str, Any] = (
                    {"status": Status.FAILED, "error": error}
                    if child.get("status") == Status.RUNNING
                    else {"status": Status.CANCELED}
                )
                ws.store.update("job", child["name"], _merge(change))


def _runner_death(ws: Workspace, name: str) -> str:
    """Why the runner died, as far as can be told: the last line of its log (its traceback),
    and whether the disk holding the workspace is full (then it could not record the end)."""
    import shutil

    from amlocal.errors import disk_full

    message = "the job's runner process exited unexpectedly"
    last = ""
    try:
        with open(ws.job_dir(name) / "runner.log", "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 4096))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
        last = next((ln for ln in reversed(lines) if ln), "")
    except OSError:
        pass
    try:
        full_now = shutil.disk_usage(ws.home).free == 0
    except OSError:
        full_now = False
    if disk_full(Exception(last)) or full_now:
        message += (
            f": the disk holding the workspace {'is' if full_now else 'was'} full, so it could "
            "not record the job's end"
        )
    if last:
        message += f" (its last log line: {last[:300]})"
    return message


def _merge(change: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda record: record.update(change)


def list_jobs(args: argparse.Namespace) -> Any:
    ws = Workspace()
    if args.parent_job_name:
        _reap_dead_runner(ws, _get(ws, args.parent_job_name))
        records = ws.store.list("job", parent=args.parent_job_name)
    else:
        records = [r for r in ws.store.list("job") if not r.get("parent_job_name")]
        records.reverse()  # newest first, as az ml lists them
    if args.max_results:
        records = records[: args.max_results]
    if args.output == "table":
        return [
            {
                "name": r["name"],
                "display_name": r.get("display_name"),
                "type": r.get("type"),
                "status": r.get("status"),
                "experiment_name": r.get("experiment_name"),
                "reused": r.get("properties", {}).get("azureml.isreused", ""),
            }
            for r in records
        ]
    return [public(r) for r in records]


def stream(args: argparse.Namespace) -> Any:
    from amlocal.jobs import stream as live

    ws = Workspace()
    _get(ws, args.name)
    # As `az ml job stream`: the log on stdout and nothing else (the status goes to stderr;
    # `job show` gives the record).
    final = live.follow(ws, args.name, out=sys.stdout, summary=sys.stderr)
    return None, 0 if final.get("status") == "Completed" else 1


def cancel(args: argparse.Namespace) -> Any:
    ws = Workspace()
    record = _get(ws, args.name)
    if record.get("status") in TERMINAL:
        return public(record)
    ws.store.update("job", args.name, lambda r: r.update(status="CancelRequested"))
    pid = record.get("_runner_pid")
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            ws.store.update("job", args.name, lambda r: r.update(status="Canceled"))
    if not args.no_wait:
        import time

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if _get(ws, args.name).get("status") in TERMINAL:
                break
            time.sleep(0.1)
    return None


def download(args: argparse.Namespace) -> Any:
    """Lay files out as `az ml job download` does: artifacts/ and named-outputs/<name>/."""
    ws = Workspace()
    record = _get(ws, args.name)
    dest = Path(args.download_path)
    outputs = record.get("outputs") or {}
    names: list[str] = []
    if args.output_name:
        if args.output_name not in outputs:
            raise NotFound(
                f"job '{args.name}' has no output '{args.output_name}' "
                f"(outputs: {', '.join(outputs) or 'none'})"
            )
        names = [args.output_name]
    elif args.all:
        names = [n for n in outputs if n != "artifacts"]  # the default output: artifacts/
    for n in names:
        src = Path(outputs[n]["local_path"])
        target = dest / "named-outputs" / n
        _copy(src, target if src.is_dir() else target / src.name)
    if not args.output_name:
        jobs = [record, *ws.store.list("job", parent=args.name)]
        for job in jobs:
            jd = ws.job_dir(job["name"])
            prefix = (
                dest / "artifacts"
                if job is record
                else dest / "artifacts" / job.get("step_name", job["name"])
            )
            for sub in ("user_logs", "logs", "wd/outputs"):
                if (jd / sub).exists():
                    _copy(jd / sub, prefix / Path(sub).name)
    return None


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True)
    elif src.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
