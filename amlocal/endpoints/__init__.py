"""Online endpoints served locally: a front door per endpoint in front of azmlinfsrv instances;
batch endpoints as jobs.

The names below are the package's public surface for code outside amlocal (this repository's
`src/deploy` blue/green step): it uses them, never a module inside, so the modules can move
without breaking user code. They load on first use (PEP 562 `__getattr__`): an instance and
the data collector run as `python -m` modules of this package and import it first, so it
must not import the CLI's verbs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amlocal.endpoints.verbs.online_deployment import create_or_update_deployment
    from amlocal.endpoints.verbs.online_endpoint import (
        create_or_update_endpoint,
        invoke,
        set_traffic,
    )

_HOME = {
    "create_or_update_deployment": "verbs.online_deployment",
    "create_or_update_endpoint": "verbs.online_endpoint",
    "invoke": "verbs.online_endpoint",
    "set_traffic": "verbs.online_endpoint",
}
__all__ = ["create_or_update_deployment", "create_or_update_endpoint", "invoke", "set_traffic"]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
