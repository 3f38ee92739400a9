"""`batch-endpoint` and `batch-deployment` verbs, with `az ml`'s flags and JSON.

Handlers import `amlocal.endpoints.verbs.batch_{endpoint,deployment,invoke}` lazily; `invoke`,
`show`, `list` and `list-jobs` never import azure-ai-ml or MLflow (only `create`/`update` validate YAML with azure-ai-ml).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from amlocal import yamlsafe
from amlocal.commands import definition_verb, overrides, record_verb
from amlocal.commands import workspace as _ws
from amlocal.errors import InvalidInput


# -- batch-endpoint --------------------------------------------------------------------------
def ep_create(args: argparse.Namespace, creating: bool = True) -> Any:
    from amlocal.endpoints.verbs import batch_endpoint

    if args.file is None and not args.name:
        raise InvalidInput("--file or --name is required")
    return batch_endpoint.create_or_update_endpoint(
        _ws(),
        Path(args.file) if args.file else None,
        args.name,
        overrides(args),
        creating=creating,
    )


def ep_update(args: argparse.Namespace) -> Any:
    return ep_create(args, creating=False)


def ep_show(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import batch_endpoint
    from amlocal.workspace import public

    return public(batch_endpoint.get_endpoint(_ws(), args.name))


def ep_list(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import batch_endpoint

    return batch_endpoint.list_endpoints(_ws())


def ep_delete(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import batch_endpoint

    batch_endpoint.delete_endpoint(_ws(), args.name)
    return None


def ep_list_jobs(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import batch_endpoint

    deployment = args.name if args.group == "batch-deployment" else None
    endpoint = args.endpoint_name if deployment else args.name
    jobs = batch_endpoint.list_jobs(_ws(), endpoint, deployment)
    if args.max_results:
        jobs = jobs[: args.max_results]
    if args.output == "table":
        keep = ("name", "display_name", "status", "experiment_name", "type")
        return [{k: j.get(k) for k in keep} for j in jobs]
    return jobs


def ep_invoke(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import batch_invoke

    invoke_file = None
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise InvalidInput(f"--file {path}: file not found")
        invoke_file = yamlsafe.load_file(path) or {}
        for section in ("inputs", "outputs"):  # paths in the file are relative to it
            for port in (invoke_file.get(section) or {}).values():
                p = port.get("path") if isinstance(port, dict) else None
                if p and not str(p).startswith("azureml:") and "://" not in str(p):
                    port["path"] = str((path.parent / p).resolve())
    job = batch_invoke.invoke(
        _ws(),
        args.name,
        deployment=args.deployment_name,
        input=args.input,
        input_type=args.input_type,
        output_path=args.output_path,
        mini_batch_size=args.mini_batch_size,
        instance_count=args.instance_count,
        sets=overrides(args),
        invoke_file=invoke_file,
        experiment_name=args.experiment_name,
        job_name=args.job_name,
    )
    from amlocal.commands.job import next_steps

    next_steps(args, job["name"], _output_to_download(args.name, job["name"]))
    return job


def _output_to_download(endpoint: str, job_name: str) -> str | None:
    """The output a person downloads after an invocation: a model deployment's `score`
    (Azure's name), else the pipeline's first output."""
    from amlocal.endpoints.verbs.batch_endpoint import deployment_record

    record = _ws().store.get("job", job_name) or {}
    dep = deployment_record(_ws(), endpoint, str(record.get("_batch_deployment")))
    if (dep.get("_runtime") or {}).get("kind") != "pipeline":
        return "score"
    return next((o for o in (record.get("outputs") or {}) if o != "artifacts"), None)


# -- batch-deployment ------------------------------------------------------------------------
def dep_create(args: argparse.Namespace, creating: bool = True) -> Any:
    from amlocal.endpoints.verbs import batch_deployment

    if args.file is None:
        raise InvalidInput("--file is required")
    return batch_deployment.create_or_update_deployment(
        _ws(),
        Path(args.file),
        args.name,
        args.endpoint_name,
        overrides(args),
        set_default=args.set_default,
        creating=creating,
    )


def dep_update(args: argparse.Namespace) -> Any:
    return dep_create(args, creating=False)


def dep_show(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import batch_deployment
    from amlocal.workspace import public

    return public(batch_deployment.get_deployment(_ws(), args.endpoint_name, args.name))


def dep_list(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import batch_deployment

    return batch_deployment.list_deployments(_ws(), args.endpoint_name)


def dep_delete(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import batch_deployment

    batch_deployment.delete_deployment(_ws(), args.endpoint_name, args.name)
    return None


# -- parsers ---------------------------------------------------------------------------------
def add_verbs(subparsers: Any, group: str) -> None:
    if group == "batch-endpoint":
        _endpoint_verbs(subparsers)
    else:
        _deployment_verbs(subparsers)


def _endpoint_verbs(sp: Any) -> None:
    for verb, func, text in (
        ("create", ep_create, "Create an endpoint (overwrites settings if it exists)."),
        ("update", ep_update, "Update an endpoint (e.g. --set defaults.deployment_name=x)."),
    ):
        p = definition_verb(sp, verb, func, text)
        p.add_argument("--no-wait", action="store_true")

    record_verb(sp, "show", ep_show, "Show an endpoint.")

    p = sp.add_parser("list", help="List batch endpoints.")
    p.set_defaults(func=ep_list)

    text = "Delete an endpoint and its deployments."
    record_verb(sp, "delete", ep_delete, text, confirm=True, no_wait=True)

    p = record_verb(sp, "invoke", ep_invoke, "Start a batch scoring job (returns the job).")
    p.add_argument("-d", "--deployment-name", dest="deployment_name")
    p.add_argument("-f", "--file", help="YAML with inputs: and outputs: (pipeline deployments)")
    p.add_argument("--input", help="folder, file, azureml:<data>:<version> or azureml:// path")
    p.add_argument("--input-type", dest="input_type", choices=["uri_folder", "uri_file"])
    p.add_argument("--output-path", dest="output_path")
    p.add_argument("--mini-batch-size", dest="mini_batch_size", type=int)
    p.add_argument("--instance-count", dest="instance_count", type=int)
    p.add_argument("--experiment-name", dest="experiment_name")
    p.add_argument("--job-name", dest="job_name")
    p.add_argument("--set", action="extend", nargs="+", metavar="KEY=VALUE")
    p.add_argument("--no-wait", action="store_true")

    p = record_verb(sp, "list-jobs", ep_list_jobs, "List an endpoint's jobs (newest first).")
    p.add_argument("-r", "--max-results", dest="max_results", type=int)
    p.set_defaults(group="batch-endpoint")


def _deployment_verbs(sp: Any) -> None:
    for verb, func, text in (
        ("create", dep_create, "Create a deployment from YAML."),
        ("update", dep_update, "Update a deployment from YAML."),
    ):
        p = definition_verb(sp, verb, func, text, endpoint=True)
        p.add_argument("--set-default", dest="set_default", action="store_true")
        p.add_argument("--no-wait", action="store_true")
        p.add_argument("--skip-script-validation", action="store_true")

    record_verb(sp, "show", dep_show, "Show a deployment.", endpoint=True)
    text = "Delete a deployment."
    record_verb(sp, "delete", dep_delete, text, endpoint=True, confirm=True, no_wait=True)

    p = sp.add_parser("list", help="List an endpoint's deployments.")
    p.add_argument("-e", "--endpoint-name", dest="endpoint_name", required=True)
    p.set_defaults(func=dep_list)

    text = "List a deployment's jobs (newest first)."
    p = record_verb(sp, "list-jobs", ep_list_jobs, text, endpoint=True)
    p.add_argument("-r", "--max-results", dest="max_results", type=int)
    p.set_defaults(group="batch-deployment")
