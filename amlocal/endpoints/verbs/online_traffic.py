"""Online endpoint traffic: az ml's `--traffic` syntax and Azure's rules for live and
mirrored traffic between an endpoint's deployments."""

from __future__ import annotations

import re

from amlocal.endpoints.verbs.online_records import deployments
from amlocal.errors import InvalidInput
from amlocal.workspace import Workspace


def parse_traffic(text: str | None) -> dict[str, int] | None:
    """`"blue=90 green=10"` (az ml's --traffic syntax; commas also accepted)."""
    if text is None:
        return None
    out: dict[str, int] = {}
    for part in re.split(r"[\s,]+", text.strip()):
        if not part:
            continue
        name, sep, pct = part.partition("=")
        if not sep or not pct.strip().isdigit():
            raise InvalidInput(f"traffic must look like 'blue=90 green=10', got {part!r}")
        out[name.strip()] = int(pct)
    return out


def check_traffic(
    ws: Workspace, name: str, traffic: dict[str, int], mirror: dict[str, int]
) -> None:
    """Azure's rules: known deployments, 0..100, live traffic totals 0 or 100, mirror <= 50 %
    to one deployment that takes no live traffic."""
    known = {d["name"] for d in deployments(ws, name)}
    for kind, table in (("traffic", traffic), ("mirror_traffic", mirror)):
        for dep, pct in table.items():
            if dep not in known:
                raise InvalidInput(f"{kind}: deployment '{dep}' does not exist on '{name}'")
            if not 0 <= int(pct) <= 100:
                raise InvalidInput(f"{kind}: {dep}={pct} is not a percentage")
    total = sum(int(v) for v in traffic.values())
    if total not in (0, 100):
        raise InvalidInput(f"traffic must add up to 0 or 100, got {total}: {traffic}")
    live_mirror = {k: v for k, v in mirror.items() if v}
    if len(live_mirror) > 1:
        raise InvalidInput("mirror_traffic can target only one deployment")
    for dep, pct in live_mirror.items():
        if pct > 50:
            raise InvalidInput(f"mirror_traffic: {dep}={pct} exceeds the 50% maximum")
        if traffic.get(dep, 0) > 0:
            raise InvalidInput(f"deployment '{dep}' cannot take both live and mirror traffic")
