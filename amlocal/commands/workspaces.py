"""`amlocal workspace create|list|show`: the workspaces of one amlocal home (amlocal.workspaces).

Named `workspaces`, not `workspace`: importing a submodule binds it on the package, and
`amlocal.commands.workspace` is the handlers' workspace() helper, which the module would
replace (the other groups then called a module: `'module' object is not callable`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from amlocal.commands import tags_flag, workspace_status
from amlocal.errors import InvalidInput


def add_verbs(verbs: argparse._SubParsersAction, group: str) -> None:
    p = verbs.add_parser("create", help="Create a local workspace (or update its tags).")
    p.add_argument("-n", "--name")
    p.add_argument("-f", "--file", help="a workspace YAML (name, description, tags, ...)")
    p.add_argument("--description")
    p.add_argument("--display-name", dest="display_name", help="accepted")
    p.add_argument("-l", "--location", help="accepted; local workspaces have no region")
    p.add_argument("--tags", nargs="+", metavar="KEY=VALUE")
    p.set_defaults(func=create)

    p = verbs.add_parser("list", help="List the workspaces of this amlocal home.")
    p.set_defaults(func=list_workspaces)

    p = verbs.add_parser("show", help="Show a workspace (the selected one without --name).")
    p.add_argument("-n", "--name")
    p.set_defaults(func=show)
    workspace_status.add_verbs(verbs)  # status, stop


def _shown(name: str) -> dict[str, Any]:
    from amlocal import workspaces
    from amlocal.workspace import Workspace

    rec = workspaces.record(name)
    if rec is None:
        raise InvalidInput(
            f"--name: workspace '{name}' does not exist in the amlocal home {workspaces.root()}"
        )
    out = Workspace(workspaces.folder(name)).show()
    out["description"] = rec.get("description")
    out["tags"] = {**(rec.get("tags") or {}), **out["tags"]}
    return out


def create(args: argparse.Namespace) -> Any:
    from amlocal import workspaces

    doc: dict[str, Any] = {}
    if args.file:
        import yaml

        try:
            loaded = yaml.safe_load(Path(args.file).read_text()[: 1 << 20])
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidInput(f"{args.file}: not a readable workspace YAML ({exc})") from None
        if not isinstance(loaded, dict):
            raise InvalidInput(f"{args.file}: expected a mapping with `name:`")
        doc = loaded
    name = args.name or doc.get("name")
    if not name:
        raise InvalidInput("workspace create needs --name (or `name:` in --file)")
    group = args.resource_group or doc.get("resource_group")
    tags = {str(k): str(v) for k, v in (doc.get("tags") or {}).items()}
    tags.update(tags_flag(args.tags))
    workspaces.create(name, group, args.description or doc.get("description"), tags)
    return _shown(name)


def list_workspaces(args: argparse.Namespace) -> Any:
    from amlocal import workspaces

    return [_shown(n) for n in workspaces.names()]


def show(args: argparse.Namespace) -> Any:
    from amlocal.workspace import Workspace

    if args.name:
        return _shown(args.name)
    return _shown(Workspace().name)
