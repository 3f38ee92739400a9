"""`amlocal data|environment|component|model create|list|show`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from amlocal import assets
from amlocal.assets.component import create_component
from amlocal.assets.data import create_data, resolve_path
from amlocal.assets.environment import create_environment
from amlocal.assets.model import (
    latest_version,
    list_versions,
    mlflow_client,
    registered_model_path,
    registered_model_version,
    show_model,
)
from amlocal.assets.model_registration import create_model
from amlocal.commands import tags_flag
from amlocal.errors import InvalidInput, NotFound
from amlocal.workspace import Workspace

_CREATE = {
    "data": create_data,
    "environment": create_environment,
    "component": create_component,
    "model": create_model,
}


# `az ml <group> create` without --file builds the asset from these flags (az ml's names).
_FLAGS = {
    "data": ("name", "version", "type", "path", "description", "tags"),
    "environment": ("name", "version", "image", "conda_file", "description", "tags"),
    "model": ("name", "version", "type", "path", "description", "tags"),
    "component": ("name", "version"),
}
_SCHEMAS = {
    "data": "data.schema.json",
    "environment": "environment.schema.json",
    "model": "model.schema.json",
}


def add_verbs(verbs: argparse._SubParsersAction, group: str) -> None:
    article = "an" if group[0] in "aeiou" else "a"
    p = verbs.add_parser(
        "create", help=f"Create {article} {group} asset from a YAML file or flags."
    )
    p.add_argument("-f", "--file", required=group == "component")
    p.add_argument("-n", "--name")
    p.add_argument("-v", "--version")
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE")
    if group != "component":
        p.add_argument("-d", "--description")
        p.add_argument("--tags", nargs="+", metavar="KEY=VALUE")
        p.add_argument("--datastore", help="accepted; offline assets live in the workspace")
    if group in ("data", "model"):
        p.add_argument("-p", "--path")
        p.add_argument("-t", "--type")
    if group == "environment":
        p.add_argument("--conda-file")
        p.add_argument("-i", "--image")
        p.add_argument("-b", "--build-context", dest="build_context")
        p.add_argument("--dockerfile-path", dest="dockerfile_path")
    _registry_flag(p)
    p.set_defaults(func=create, group=group)

    p = verbs.add_parser("list", help=f"List {group} assets.")
    p.add_argument("-n", "--name")
    p.add_argument("-r", "--max-results", type=int)
    p.add_argument("--archived-only", action="store_true")
    p.add_argument("--include-archived", action="store_true")
    _registry_flag(p)
    p.set_defaults(func=list_assets, group=group)

    p = verbs.add_parser("show", help=f"Show a {group} asset.")
    p.add_argument("-n", "--name", required=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--version")
    g.add_argument("-l", "--label")
    _registry_flag(p)
    p.set_defaults(func=show, group=group)

    if group in ("model", "environment", "data"):
        from amlocal.commands.registry_assets import add_share

        add_share(verbs, group)

    if group in ("model", "data"):
        p = verbs.add_parser("download", help=f"Download a {group} asset's files.")
        p.add_argument("-n", "--name", required=True)
        p.add_argument("-v", "--version", required=True)
        p.add_argument("-p", "--download-path", dest="download_path", default=".")
        p.set_defaults(func=download, group=group)

    from amlocal.commands import asset_lifecycle

    asset_lifecycle.add_verbs(verbs, group)


def _registry_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--registry-name", dest="registry_name", help="act on this registry of the amlocal home"
    )


def _target(args: argparse.Namespace) -> Workspace:
    """The workspace, or the registry `--registry-name` names (amlocal.registries)."""
    if getattr(args, "registry_name", None):
        from amlocal import registries

        return registries.get(args.registry_name)
    return Workspace()


def _create(group: str, ws: Workspace, spec: Path, overrides: list[dict[str, Any]]) -> Any:
    from amlocal.registries import Registry

    if isinstance(ws, Registry):
        from amlocal.registries import rules

        return rules.create(ws, group, spec, overrides)
    return _CREATE[group](ws, spec, overrides)


def create(args: argparse.Namespace) -> Any:
    from amlocal import loader

    overrides = loader.parse_set(args.set)
    if args.file is None:
        return _create_from_flags(args, overrides)
    for key in ("name", "version", "path", "type", "image", "conda_file", "description"):
        value = getattr(args, key, None)
        if value is not None:
            overrides.append({key: value})
    for k, v in tags_flag(getattr(args, "tags", None)).items():
        overrides.append({f"tags.{k}": v})
    return _create(args.group, _target(args), Path(args.file), overrides)


def _create_from_flags(args: argparse.Namespace, overrides: list[dict[str, Any]]) -> Any:
    """`az ml model create --name m --version 1 --path ./model --type custom_model`: the same
    YAML a file would hold (local paths made absolute: flags are relative to the current
    folder), loaded and validated the same way; errors name the flags."""
    import tempfile

    import yaml

    group = args.group
    if not args.name:
        raise InvalidInput(f"{group} create needs --file, or --name and the asset's flags")
    doc: dict[str, Any] = {
        "$schema": f"https://azuremlschemas.azureedge.net/latest/{_SCHEMAS[group]}"
    }
    for key in _FLAGS[group]:
        value = tags_flag(args.tags) if key == "tags" else getattr(args, key, None)
        if value in (None, {}):
            continue
        if (
            key in ("path", "conda_file")
            and "://" not in str(value)
            and not str(value).startswith(("azureml:", "runs:/"))
        ):
            local = Path(str(value)).expanduser().resolve()
            if not local.exists():
                flag = "--" + key.replace("_", "-")
                raise InvalidInput(f"{flag} {value}: no such file or folder")
            value = str(local)
        doc[key] = value
    if getattr(args, "build_context", None):
        build = {"path": str(Path(args.build_context).resolve())}
        if args.dockerfile_path:
            build["dockerfile_path"] = args.dockerfile_path
        doc["build"] = build
    if group in ("data", "model") and "path" not in doc:
        raise InvalidInput(f"{group} create --name {args.name}: --path is required without --file")
    with tempfile.TemporaryDirectory(prefix=assets.FLAGS_DIR_PREFIX) as tmp:
        spec = Path(tmp) / f"{group}.yml"
        spec.write_text(yaml.safe_dump(doc, sort_keys=False))
        try:
            return _create(group, _target(args), spec, overrides)
        except InvalidInput as exc:
            raise InvalidInput(str(exc).replace(str(spec), assets.source_name(spec))) from None


def download(args: argparse.Namespace) -> Any:
    """`az ml model download`: the files land in <download-path>/<name>/ under the registered
    path's last component, as azure-ai-ml writes them."""
    import shutil

    ws = Workspace()
    dest = Path(args.download_path) / args.name
    src: Path | None
    if args.group == "model":
        name, version = registered_model_version(ws, f"azureml:{args.name}:{args.version}")
        src = registered_model_path(ws, name, version)
    else:
        rec = assets.get(ws, "data", f"azureml:{args.name}:{args.version}")
        src = resolve_path(ws, rec["path"], Path.cwd())
        if src is None or not src.exists():
            raise NotFound(
                f"data {args.name}:{args.version}: {rec['path']} is not available offline"
            )
    dest.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dest / src.name, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dest / src.name)
    return None


def list_assets(args: argparse.Namespace) -> Any:
    ws = _target(args)
    if args.group == "model":
        c = mlflow_client(ws)
        if args.name:
            items = list_versions(ws, args.name)
        else:
            items = [
                {
                    "name": m.name,
                    "latest_version": latest_version(ws, m.name),
                    "description": m.description,
                    "tags": dict(m.tags or {}),
                }
                for m in c.search_registered_models()
            ]
    else:
        records = [
            r
            for r in ws.store.list(args.group, name=args.name)
            if (bool(r.get("_archived")) == args.archived_only)
            or (args.include_archived and not args.archived_only)
        ]
        if args.name:
            items = [assets.public(r) for r in reversed(records)]
        else:  # one entry per name with its latest version, as az ml lists containers
            latest: dict[str, dict[str, Any]] = {}
            for r in records:
                latest[r["name"]] = {
                    "name": r["name"],
                    "latest_version": r["version"],
                    "description": r.get("description"),
                    "tags": r.get("tags", {}),
                }
            items = list(latest.values())
    return items[: args.max_results] if args.max_results else items


def show(args: argparse.Namespace) -> Any:
    ws = _target(args)
    if args.registry_name:
        from amlocal.registries.rules import shown

        return shown(ws, args.group, _show(ws, args))  # type: ignore[arg-type]
    return _show(ws, args)


def _show(ws: Workspace, args: argparse.Namespace) -> Any:
    if args.group == "model":
        ref = (
            f"azureml:{args.name}:{args.version}"
            if args.version
            else f"azureml:{args.name}@{args.label or 'latest'}"
        )
        return show_model(ws, ref)
    if not args.version and not args.label:
        if args.group != "component":  # az ml component show defaults to the latest
            raise InvalidInput(f"{args.group} show needs --version or --label")
        args.label = "latest"
    ref = (
        f"azureml:{args.name}:{args.version}"
        if args.version
        else f"azureml:{args.name}@{args.label}"
    )
    try:
        return assets.public(assets.get(ws, args.group, ref))
    except NotFound:
        raise
