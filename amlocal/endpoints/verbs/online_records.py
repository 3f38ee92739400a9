"""Online endpoints and deployments as the workspace store holds them, and their lookups.

Every online module finds an endpoint or a deployment the same way, with az ml's NotFound
wording; kept apart from the verbs so the daemon control, the traffic rules and the verbs
all import it without a cycle.
"""

from __future__ import annotations

from typing import Any

from amlocal.workspace import Workspace

EP, DEP = "online-endpoint", "online-deployment"


def get_endpoint(ws: Workspace, name: str) -> dict[str, Any]:
    return ws.store.require(EP, name, f"online endpoint '{name}' does not exist")


def get_deployment(ws: Workspace, endpoint: str, name: str) -> dict[str, Any]:
    get_endpoint(ws, endpoint)
    return ws.store.require(
        DEP,
        f"{endpoint}:{name}",
        f"deployment '{name}' does not exist on online endpoint '{endpoint}'",
    )


def deployments(ws: Workspace, endpoint: str) -> list[dict[str, Any]]:
    return ws.store.list(DEP, parent=endpoint)
