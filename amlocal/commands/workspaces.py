"""`amlocal workspace show`: the local workspace, including its MLflow tracking URI.

Named `workspaces`, not `workspace`: importing a submodule binds it on the package, and
`amlocal.commands.workspace` is the handlers' workspace() helper, which the module would
replace (the other groups then called a module: `'module' object is not callable`)."""

from __future__ import annotations

import argparse
from typing import Any

from amlocal.workspace import Workspace


def add_verbs(verbs: argparse._SubParsersAction, group: str) -> None:
    p = verbs.add_parser("show", help="Show the local workspace.")
    p.add_argument("-n", "--name")
    p.set_defaults(func=show)


def show(args: argparse.Namespace) -> Any:
    return Workspace().show()
