"""`amlocal model|environment|data share`: a workspace's asset version copied into a
registry (amlocal.registries.share)."""

from __future__ import annotations

import argparse
from typing import Any


def add_share(verbs: argparse._SubParsersAction, group: str) -> None:
    p = verbs.add_parser("share", help=f"Share a {group} from the workspace to a registry.")
    p.add_argument("-n", "--name", required=True)
    p.add_argument("-v", "--version", required=True)
    p.add_argument(
        "--registry-name", dest="registry_name", required=True, help="The registry to share to."
    )
    p.add_argument(
        "--share-with-name", dest="share_with_name", help=f"The {group}'s name in the registry."
    )
    p.add_argument(
        "--share-with-version",
        dest="share_with_version",
        help=f"The {group}'s version in the registry.",
    )
    p.set_defaults(func=share, group=group)


def share(args: argparse.Namespace) -> Any:
    from amlocal import registries
    from amlocal.registries.share import share as share_asset
    from amlocal.workspace import Workspace

    reg = registries.get(args.registry_name)
    return share_asset(
        Workspace(),
        args.group,
        args.name,
        args.version,
        reg,
        args.share_with_name,
        args.share_with_version,
    )
