"""`online-endpoint` and `online-deployment` verbs, with `az ml`'s flags and JSON.

Handlers import the `endpoints.verbs.online_*` modules lazily; `invoke` never imports azure-ai-ml
or MLflow.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from amlocal.commands import definition_verb, overrides, record_verb
from amlocal.commands import workspace as _ws
from amlocal.errors import AmlocalError, InvalidInput


# -- online-endpoint -------------------------------------------------------------------------
def ep_create(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import online_endpoint

    if args.file is None and not args.name:
        raise InvalidInput("--file or --name is required")
    file = Path(args.file) if args.file else None
    return online_endpoint.create_or_update_endpoint(
        _ws(), file, args.name, overrides(args), creating=True
    )


def ep_update(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import online_endpoint, online_traffic

    if args.file is None and not args.name:
        raise InvalidInput("--file or --name is required")
    return online_endpoint.create_or_update_endpoint(
        _ws(),
        Path(args.file) if args.file else None,
        args.name,
        overrides(args),
        traffic=online_traffic.parse_traffic(args.traffic),
        mirror=online_traffic.parse_traffic(args.mirror_traffic),
        creating=False,
    )


def ep_show(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import online_endpoint

    return _table_traffic(args, online_endpoint.show_endpoint(_ws(), args.name))


def ep_list(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import online_records
    from amlocal.workspace import public

    return [_table_traffic(args, public(r)) for r in _ws().store.list(online_records.EP)]


def _table_traffic(args: argparse.Namespace, rec: dict[str, Any]) -> dict[str, Any]:
    """`-o table` leaves nested values out (az's rule), which hid where traffic goes: the
    table gets it as text, `blue=90 green=10` (JSON output and queries are unchanged)."""
    if args.output != "table" or args.query:
        return rec
    out = dict(rec)
    for key in ("traffic", "mirror_traffic"):
        split = rec.get(key)
        if isinstance(split, dict):
            out[key] = " ".join(f"{d}={pct}" for d, pct in split.items()) or None
    return out


def ep_delete(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import online_endpoint

    online_endpoint.delete_endpoint(_ws(), args.name)
    return None


def ep_invoke(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import online_endpoint

    path = Path(args.request_file)
    if not path.is_file():
        raise InvalidInput(f"--request-file {path}: file not found")
    ws = _ws()
    deployment = args.deployment_name
    if deployment is None and getattr(args, "local", False):
        deployment = _local_deployment(ws, args.name)
    status, headers, body = online_endpoint.invoke(ws, args.name, path.read_bytes(), deployment)
    text = body.decode("utf-8", "replace")
    if status != 200:
        detail = ""
        if "ms-azureml-model-error-statuscode" in headers:
            detail = (
                f" (model server: {headers['ms-azureml-model-error-statuscode']} "
                f"{headers.get('ms-azureml-model-error-reason', '')})"
            )
        raise AmlocalError(f"({status}) Request failed{detail}: {text}")
    # az ml prints the body as a JSON-encoded string ("[1.5, 2.5]" in quotes), and scripts
    # written for az decode it twice: into a pipe or a file it is printed exactly so. A person
    # at a terminal wants the JSON, and --query wants to reach into it: then a JSON body is
    # printed as JSON (docs/local-vs-azure.md). A body that is not JSON is az's string.
    if not (sys.stdout.isatty() or getattr(args, "query", None)):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def ep_credentials(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import online_endpoint

    return online_endpoint.credentials(_ws(), args.name)


def ep_regenerate(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import online_endpoint

    online_endpoint.regenerate_keys(_ws(), args.name, args.key_type)
    return None


# A local endpoint (`--local`) serves one deployment and has no traffic rules: Azure routes
# every request to that deployment (how-to-deploy-online-endpoints, "Deploy and debug locally
# by using a local endpoint"). amlocal's endpoints are all local, so `--local` gives the
# deployment the endpoint's traffic, and `invoke --local` scores its only deployment.
def _local_deployment(ws: Any, endpoint: str, creating: str | None = None) -> str | None:
    from amlocal.endpoints.verbs import online_records

    names = [d["name"] for d in online_records.deployments(ws, endpoint)]
    others = [n for n in names if n != creating]
    if creating is not None and others:
        raise InvalidInput(
            f"--local: a local endpoint has only one deployment; '{endpoint}' already has "
            f"{', '.join(repr(n) for n in others)} (delete it, or create without --local)"
        )
    return names[0] if creating is None and len(names) == 1 else None


# -- online-deployment -----------------------------------------------------------------------
def dep_create(args: argparse.Namespace, creating: bool = True) -> Any:
    from amlocal.endpoints.verbs import online_deployment

    if args.file is None:
        raise InvalidInput("--file is required")
    local = creating and getattr(args, "local", False)
    return online_deployment.create_or_update_deployment(
        _ws(),
        Path(args.file),
        args.name,
        args.endpoint_name,
        overrides(args),
        all_traffic=getattr(args, "all_traffic", False),
        creating=creating,
        only=_local_deployment if local else None,
    )


def dep_update(args: argparse.Namespace) -> Any:
    if args.file is None:  # `update -n blue -e ep --set instance_count=2`, as az ml takes it
        from amlocal.endpoints.verbs import online_deployment

        if not args.name or not args.endpoint_name:
            raise InvalidInput("update without --file needs --name and --endpoint-name")
        if not args.set:
            raise InvalidInput("update without --file needs --set KEY=VALUE ...")
        return online_deployment.update_deployment_in_place(
            _ws(), args.endpoint_name, args.name, overrides(args)
        )
    return dep_create(args, creating=False)


def dep_show(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import online_deployment

    return online_deployment.show_deployment(_ws(), args.endpoint_name, args.name)


def dep_list(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import online_records
    from amlocal.workspace import public

    ws = _ws()
    online_records.get_endpoint(ws, args.endpoint_name)
    return [public(r) for r in online_records.deployments(ws, args.endpoint_name)]


def dep_delete(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import online_deployment

    online_deployment.delete_deployment(_ws(), args.endpoint_name, args.name)
    return None


def dep_logs(args: argparse.Namespace) -> Any:
    from amlocal.endpoints.verbs import online_deployment

    text = online_deployment.logs(_ws(), args.endpoint_name, args.name, args.lines)
    if args.output in ("json", "jsonc"):
        return text
    sys.stdout.write(text + "\n")
    return None


# -- parsers ---------------------------------------------------------------------------------
def add_verbs(subparsers: Any, group: str) -> None:
    if group == "online-endpoint":
        _endpoint_verbs(subparsers)
    else:
        _deployment_verbs(subparsers)


def _endpoint_verbs(sp: Any) -> None:
    p = definition_verb(sp, "create", ep_create, "Create (or update) an endpoint from YAML.")
    p.add_argument("--auth-mode", dest="auth_mode", default=None)
    p.add_argument("--local", action="store_true", help="Accepted; amlocal is always local.")
    p.add_argument("--no-wait", action="store_true")

    text = "Update an endpoint: YAML, traffic or mirror traffic."
    p = definition_verb(sp, "update", ep_update, text)
    p.add_argument("--traffic", help='e.g. "blue=90 green=10"')
    p.add_argument("--mirror-traffic", dest="mirror_traffic", help='e.g. "green=10"')
    p.add_argument("--local", action="store_true")
    p.add_argument("--no-wait", action="store_true")

    p = record_verb(sp, "show", ep_show, "Show an endpoint (restarts its processes if they died).")
    p.add_argument("--local", action="store_true")

    p = sp.add_parser("list", help="List endpoints.")
    p.add_argument("--local", action="store_true")
    p.set_defaults(func=ep_list)

    text = "Delete an endpoint and stop everything it runs."
    p = record_verb(sp, "delete", ep_delete, text, confirm=True, no_wait=True)
    p.add_argument("--local", action="store_true")

    p = record_verb(sp, "invoke", ep_invoke, "Score a request file through the endpoint.")
    p.add_argument("-r", "--request-file", dest="request_file", required=True)
    p.add_argument("-d", "--deployment-name", dest="deployment_name")
    p.add_argument("--local", action="store_true")

    record_verb(sp, "get-credentials", ep_credentials, "The endpoint's keys.")

    text = "Regenerate the primary or secondary key."
    p = record_verb(sp, "regenerate-keys", ep_regenerate, text)
    p.add_argument(
        "--key-type", dest="key_type", choices=["primary", "secondary"], default="primary"
    )


def _deployment_verbs(sp: Any) -> None:
    for verb, func, text in (
        ("create", dep_create, "Create a deployment and wait until it is ready."),
        ("update", dep_update, "Update a deployment (rolls its instances)."),
    ):
        p = definition_verb(sp, verb, func, text, endpoint=True)
        if verb == "create":
            p.add_argument("--all-traffic", dest="all_traffic", action="store_true")
            p.add_argument("--skip-script-validation", action="store_true")
        p.add_argument("--local", action="store_true")
        p.add_argument("--no-wait", action="store_true")

    for verb, func, text in (
        ("show", dep_show, "Show a deployment."),
        ("delete", dep_delete, "Delete a deployment that takes no traffic."),
        ("get-logs", dep_logs, "The inference server's log (instance 0)."),
    ):
        asks = verb == "delete"
        p = record_verb(sp, verb, func, text, endpoint=True, confirm=asks, no_wait=asks)
        p.add_argument("--local", action="store_true")
        if verb == "get-logs":
            p.add_argument("-l", "--lines", type=int, default=None)
            p.add_argument("--container", default="inference-server")

    p = sp.add_parser("list", help="List an endpoint's deployments.")
    p.add_argument("-e", "--endpoint-name", dest="endpoint_name", required=True)
    p.add_argument("--local", action="store_true")
    p.set_defaults(func=dep_list)
