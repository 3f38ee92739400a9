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
    signals = spec.get("monitoring_signals") or {}
    if not signals:
        raise InvalidInput(
            f"{path}: create_monitor.monitoring_signals: amlocal needs at least one signal "
            f"(Azure's out-of-the-box signals need its model and feature-importance services)"
        )
    target = deployment_of(spec)
    for name, sig in signals.items():
        kind = sig.get("type")
        if kind not in SUPPORTED:
            raise InvalidInput(
                f"{path}: create_monitor.monitoring_signals.{name}: type {kind!r} is not "
                f"computed offline (supported: {', '.join(SUPPORTED)})"
            )
        if not (sig.get("production_data") or {}).get("input_data") and target is None:
            raise InvalidInput(
                f"{path}: create_monitor.monitoring_signals.{name}: no production_data and no "
                "monitoring_target.endpoint_deployment_id to take it from"
            )
        if not (sig.get("reference_data") or {}).get("input_data"):
            raise InvalidInput(
                f"{path}: create_monitor.monitoring_signals.{name}.reference_data: required offline"
            )
    return {"type": "monitor", "spec": spec, "base_dir": str(path.resolve().parent)}
