"""A `create_monitor:` schedule's action: checked at `schedule create`, run by a firing.

Signals computed offline: data_drift, prediction_drift, data_quality. Production data comes
from the signal's `production_data` or, as on Azure, from the data collector's assets of
`monitoring_target.endpoint_deployment_id` (`<endpoint>-<deployment>-model_inputs` for data
drift and quality, `...-model_outputs` for prediction drift). Source:
https://learn.microsoft.com/azure/machine-learning/reference-yaml-monitor
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amlocal.errors import InvalidInput
from amlocal.workspace import Workspace

SUPPORTED = ("data_drift", "prediction_drift", "data_quality")


def deployment_of(spec: dict[str, Any]) -> tuple[str, str] | None:
    """(endpoint, deployment) of monitoring_target.endpoint_deployment_id, if any."""
    target = (spec.get("monitoring_target") or {}).get("endpoint_deployment_id")
    if not target:
        return None
    ref = str(target).removeprefix("azureml:")
    if "/onlineEndpoints/" in ref:  # an ARM id
        parts = ref.split("/")
        return parts[parts.index("onlineEndpoints") + 1], parts[-1]
    if ":" not in ref:
        raise InvalidInput(
            f"monitoring_target.endpoint_deployment_id: expected azureml:<endpoint>:<deployment>, got {target!r}"
        )
    endpoint, deployment = ref.split(":", 1)
    return endpoint, deployment


def action(ws: Workspace, path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """The monitor's action. Signals amlocal cannot compute offline (another type, or no data
    to compare) are skipped with a one-line warning each, here and in every firing's log,
    instead of refusing the schedule: the others still run, as on Azure."""
    import sys

    signals = spec.get("monitoring_signals") or {}
    target = deployment_of(spec)
    skipped: dict[str, str] = {}
    for name, sig in signals.items():
        if reason := _not_computable(sig or {}, target is not None):
            skipped[name] = reason
            sys.stderr.write(
                f"amlocal: warning: {path}: create_monitor.monitoring_signals.{name}: {reason}; "
                f"skipped offline (computed: {', '.join(SUPPORTED)} with reference data)\n"
            )
    if not signals:
        sys.stderr.write(
            f"amlocal: warning: {path}: create_monitor: no monitoring_signals: Azure's "
            f"out-of-the-box signals need its model and feature-importance services; a firing "
            f"computes nothing offline\n"
        )
    return {
        "type": "monitor",
        "spec": spec,
        "base_dir": str(path.resolve().parent),
        "skipped": skipped,
    }


def _not_computable(sig: dict[str, Any], has_target: bool) -> str | None:
    kind = sig.get("type")
    if kind not in SUPPORTED:
        return f"type {kind!r} is not computed offline"
    if not (sig.get("production_data") or {}).get("input_data") and not has_target:
        return "no production_data and no monitoring_target.endpoint_deployment_id to take it from"
    if not (sig.get("reference_data") or {}).get("input_data"):
        return "no reference_data.input_data (Azure would take the model's training data)"
    return None


def computed(action: dict[str, Any]) -> dict[str, Any]:
    """The monitor spec with only the signals a firing computes."""
    spec = dict(action["spec"])
    skipped = action.get("skipped") or {}
    spec["monitoring_signals"] = {
        k: v for k, v in (spec.get("monitoring_signals") or {}).items() if k not in skipped
    }
    return spec
