"""`amlocal workspace show`: the local workspace, including its MLflow tracking URI."""

from __future__ import annotations

import argparse
from typing import Any

from amlocal.commands import workspace_status
from amlocal.workspace import Workspace


def add_verbs(verbs: argparse._SubParsersAction, group: str) -> None:
    p = verbs.add_parser("show", help="Show the local workspace.")
    p.add_argument("-n", "--name")
    p.set_defaults(func=show)
    workspace_status.add_verbs(verbs)  # status, stop


def show(args: argparse.Namespace) -> Any:
    return Workspace().show()
