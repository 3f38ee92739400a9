"""`amlocal job ...`: create (with --stream), show, list, stream, cancel, download."""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

from amlocal.commands import definition_verb, record_verb
from amlocal.errors import InvalidInput, NotFound
from amlocal.jobs.cancel import reap_dead_runner, request_cancel, wait_terminal
from amlocal.jobs.status import TERMINAL
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

    from amlocal.commands import job_update

    job_update.add_verb(verbs)

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
    from amlocal.jobs import plan, runner

    ws = Workspace()
    path = Path(args.file)
    if not path.is_file():
        raise InvalidInput(f"{path}: file not found")
    overrides = loader.parse_set(args.set)
    from amlocal.overrides import unknown_inputs

    for warning in unknown_inputs(path, overrides):
        sys.stderr.write(f"WARNING: {warning}\n")
    job_plan = plan.load_plan(ws, path, overrides)
    record = runner.submit(ws, job_plan, name=args.name, isolate=args.isolate_environments)
    name = record["name"]
    if not args.stream:
        runner.spawn_runner(ws, name)
        if args.web:
            _web_view(ws, _get(ws, name))
        next_steps(args, name)
        return public(_get(ws, name))
    return _run_streaming(ws, name)


def next_steps(args: argparse.Namespace, name: str, output: str | None = None) -> None:
    """What to run next, after a verb that leaves a job running in the background: on
    stderr, so stdout stays the JSON a script reads; `--only-show-errors` leaves it out."""
    if getattr(args, "only_show_errors", False):
        return
    lines = [
        f"Job {name} runs in the background. Next:",
        f"  amlocal job stream -n {name}    # follow its log until it ends",
        f"  amlocal job show -n {name} --query status -o tsv",
    ]
    if output:
        lines.append(f"  amlocal job download -n {name} --output-name {output} -p <folder>")
    sys.stderr.write("\n".join(lines) + "\n")


def validate(args: argparse.Namespace) -> Any:
    from amlocal import loader
    from amlocal.jobs import dryrun

    return dryrun.validate_job(Workspace(), Path(args.file), loader.parse_set(args.set))


def _run_streaming(ws: Workspace, name: str) -> tuple[dict[str, Any], int]:
    """Run in this process with a live view; Ctrl-C cancels the job and its processes."""
    from amlocal.jobs import runner, stream

    sys.stderr.write(f"RunId: {name}\n")  # Web View: once the job has its MLflow run (_view)
    done = threading.Event()
    viewer = threading.Thread(target=_view, args=(ws, name, done), daemon=True)
    viewer.start()
    try:
        status = runner.execute(ws, name)
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
    """`Web View:` as az prints the studio link: the job's page in `amlocal studio`, then
    its run in the MLflow UI (`make ui`) when it has one."""
    from amlocal import studio, ui

    sys.stderr.write(f"Web View: {studio.url(ws.home, 'jobs', str(job['name']))}\n")
    run_id = (job.get("properties") or {}).get("mlflow.runId")
    mlflow_url = run_id and ui.run_url(ws, run_id)
    if mlflow_url:
        sys.stderr.write(f"MLflow Run: {mlflow_url}\n")
    sys.stderr.flush()
    return True


def show(args: argparse.Namespace) -> Any:
    ws = Workspace()
    record = _get(ws, args.name)
    reap_dead_runner(ws, record)
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


def list_jobs(args: argparse.Namespace) -> Any:
    ws = Workspace()
    if args.parent_job_name:
        reap_dead_runner(ws, _get(ws, args.parent_job_name))
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
                "created": _when((r.get("creation_context") or {}).get("created_at")),
                "duration": _duration(r),
                "reused": r.get("properties", {}).get("azureml.isreused", ""),
            }
            for r in records
        ]
    return [public(r) for r in records]


def _when(iso: Any) -> str:
    """An ISO 8601 time as a table shows it: to the second, UTC."""
    return str(iso or "")[:19].replace("T", " ")


def _duration(record: dict[str, Any]) -> str:
    """How long the job ran (so far, while it runs): `42.1s`, `3m05s`, `1h02m`."""
    import datetime as dt

    try:
        start = dt.datetime.fromisoformat(str(record["start_time"]))
        end_raw = record.get("end_time")
        end = dt.datetime.fromisoformat(str(end_raw)) if end_raw else dt.datetime.now(dt.UTC)
        seconds = (end - start).total_seconds()
    except (KeyError, ValueError, TypeError):
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


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
    request_cancel(ws, record)
    if not args.no_wait:
        wait_terminal(ws, args.name, timeout=30)
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
        sys.stderr.write(f"Downloaded output '{n}' of {args.name} to {target}\n")
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
            # the default output is the MLflow run's artifacts (mlflow.log_artifacts(d, "model")
            # is downloaded as artifacts/model/), as az ml job download lays it out
            run_artifacts = ((job.get("outputs") or {}).get("artifacts") or {}).get("local_path")
            if run_artifacts and Path(run_artifacts).is_dir():
                _copy(Path(run_artifacts), prefix)
        steps = f" and its {len(jobs) - 1} steps" if len(jobs) > 1 else ""
        sys.stderr.write(
            f"Downloaded the logs and outputs of {args.name}{steps} to {dest / 'artifacts'}\n"
        )
    return None


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True)
    elif src.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
