"""Blue/green promotion of a registered model to an online endpoint, on Azure or amlocal.

The new version goes to the slot (blue or green) that takes no live traffic, is smoke-tested
through the `azureml-model-deployment` header (live callers never see it), and only then gets
traffic: optionally a mirror stage and a canary stage first, then 100 %. A failed smoke test
leaves traffic exactly as it was and fails the step with the reason.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

SLOTS = ("blue", "green")
# register_lib's convention: the champion is the version tagged champion=true (and the MLflow
# alias of the same name where the registry has aliases; Azure ML's has only the tag).
CHAMPION = "champion"


class SmokeTestFailed(RuntimeError):
    """The new deployment answered the sample request wrongly; traffic was not touched."""


class Target(Protocol):
    """What blue/green needs from an endpoint host (Azure ML or amlocal)."""

    def traffic(self, endpoint: str) -> dict[str, int] | None:
        """Live traffic by deployment, or None if the endpoint does not exist."""

    def serving(self, endpoint: str, deployment: str) -> str | None:
        """The model a deployment serves (any reference form), or None."""

    def create_endpoint(self, endpoint_yml: Path, endpoint: str) -> None: ...

    def deploy(
        self, deployment_yml: Path, endpoint: str, slot: str, model: str, code: Path
    ) -> None: ...

    def invoke(self, endpoint: str, request: Path, deployment: str) -> tuple[int, str]: ...

    def set_traffic(
        self, endpoint: str, traffic: dict[str, int], mirror: dict[str, int]
    ) -> None: ...

    def champion(self, name: str) -> str | None:
        """The version of registered model `name` tagged champion, or None."""

    def lock(self, endpoint: str) -> contextlib.AbstractContextManager[Any]:
        """Held while one deploy step reads and changes the endpoint."""


@dataclass
class Plan:
    live: str | None
    target: str


def choose_slot(traffic: dict[str, int]) -> Plan:
    """Deploy to the slot with 0 % traffic; the other one (if any) is live."""
    live = max(SLOTS, key=lambda s: traffic.get(s, 0))
    if traffic.get(live, 0) <= 0:
        return Plan(live=None, target=SLOTS[0])
    return Plan(live=live, target=SLOTS[1] if live == SLOTS[0] else SLOTS[0])


def request_items(request: Any) -> int:
    """How many answers a sample request asks for, whatever convention the endpoint speaks.

    `{"data": [...]}` (the tabular endpoints) asks for one per row; `{"image": ...}` or
    `{"url": ...}` (the digits endpoint's native form, what a user `curl`s) for one; a list
    of such objects for one each. Anything else is a broken sample request, which is the
    repository's bug, not the model's: say so rather than fail the smoke test obscurely.
    """
    if isinstance(request, dict) and isinstance(request.get("data"), list):
        return len(request["data"])
    if isinstance(request, dict) and ("image" in request or "url" in request):
        return 1
    if (
        isinstance(request, list)
        and request
        and all(isinstance(r, dict) and ("image" in r or "url" in r) for r in request)
    ):
        return len(request)
    raise ValueError(
        'sample request must be {"data": [...]}, {"image"|"url": ...} or a list of '
        f"such objects; got {str(request)[:200]}"
    )


def _is_number(p: Any) -> bool:
    # bool is an int subclass, but `true` is not a prediction.
    return isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p)


def _is_labelled(p: Any) -> bool:
    return isinstance(p, dict) and "label" in p


def check_response(status: int, body: str, items: int) -> None:
    """The smoke test's assertion: 200 and one answer per requested item (see request_items).

    An answer is either a finite number (regression endpoints: `[151.2, 99.0]`) or an object
    with a `label` (classifiers: `{"label": 7, "probabilities": {...}}`); a single labelled
    object answers a single-item request. Probabilities are not checked: their shape is the
    scoring script's business, a missing label is what breaks callers.
    """
    if status != 200:
        raise SmokeTestFailed(f"smoke test got HTTP {status}: {body[:500]}")
    try:
        preds = json.loads(body)
        if isinstance(preds, str):  # az ml / MLClient invoke return the body as a JSON string
            preds = json.loads(preds)
    except ValueError:
        raise SmokeTestFailed(f"smoke test response is not JSON: {body[:500]}") from None
    if items == 1 and _is_labelled(preds):
        return
    if not isinstance(preds, list) or len(preds) != items:
        raise SmokeTestFailed(f"expected {items} predictions, got {str(preds)[:500]}")
    if all(_is_labelled(p) for p in preds):
        return
    bad = [p for p in preds if not _is_number(p)]
    if bad:
        raise SmokeTestFailed(
            f"expected finite numbers or objects with a 'label', got: {str(bad[:5])[:500]}"
        )


def same_model(a: Any, b: Any) -> bool:
    """Whether two model references (`azureml:name:version`, an ARM id ending in
    `models/<name>/versions/<version>`) name the same version."""

    def key(ref: Any) -> tuple[str, str] | None:
        if not isinstance(ref, str):
            return None
        if m := re.search(r"models/([^/]+)/versions/([^/]+)$", ref):
            return m.group(1), m.group(2)
        if m := re.match(r"^azureml:([^:@/]+):([^:@/]+)$", ref):
            return m.group(1), m.group(2)
        return None

    ka, kb = key(a), key(b)
    return ka is not None and ka == kb


def promote(
    target: Target,
    config: Path,
    endpoint: str,
    model: str,
    code: Path,
    request: Path,
    mirror_percent: int = 0,
    canary_percent: int = 0,
    stage_seconds: float = 0.0,
) -> dict[str, Any]:
    """Deploy `model` blue/green and shift traffic to it; returns what happened."""
    # A malformed sample request fails here, before anything is created or deployed.
    items = request_items(json.loads(request.read_text()))
    traffic = target.traffic(endpoint)
    if traffic is None:
        target.create_endpoint(config / "endpoint.yml", endpoint)
        traffic = {}
    plan = choose_slot(traffic)
    if plan.live is not None and traffic.get(plan.live) == 100:
        if same_model(target.serving(endpoint, plan.live), model):
            # A rerun whose register step was reused: the model is already live. Deploying it
            # again to the idle slot would only flip blue and green.
            print(f"deploy: {model} already serves 100% of {endpoint} ({plan.live})")
            return {
                "endpoint": endpoint,
                "deployment": plan.live,
                "previous": plan.live,
                "model": model,
                "traffic": dict(traffic),
                "unchanged": True,
            }
    print(f"deploy: {endpoint}/{plan.target} <- {model} (live: {plan.live or 'none'})")
    target.deploy(config / f"{plan.target}.yml", endpoint, plan.target, model, code)

    status, body = target.invoke(endpoint, request, plan.target)
    check_response(status, body, items)
    print(f"deploy: smoke test passed on {plan.target}: {body[:200]}")

    stages: list[tuple[dict[str, int], dict[str, int]]] = []
    if plan.live is not None:
        if mirror_percent > 0:
            stages.append(({plan.live: 100, plan.target: 0}, {plan.target: mirror_percent}))
        if canary_percent > 0:
            stages.append(
                ({plan.live: 100 - canary_percent, plan.target: canary_percent}, {plan.target: 0})
            )
        final = {plan.live: 0, plan.target: 100}
    else:
        final = {plan.target: 100}
    stages.append((final, {plan.target: 0} if plan.live is not None else {}))
    for live_traffic, mirror in stages:
        target.set_traffic(endpoint, live_traffic, mirror)
        print(f"deploy: traffic {live_traffic} mirror {mirror}")
        if (live_traffic, mirror) != stages[-1] and stage_seconds:
            time.sleep(stage_seconds)
    return {
        "endpoint": endpoint,
        "deployment": plan.target,
        "previous": plan.live,
        "model": model,
        "traffic": final,
        "serving": serving(target, endpoint),
    }


def serving(target: Target, endpoint: str) -> dict[str, dict[str, Any]]:
    """What the endpoint serves now, read back from it: {deployment: {traffic, model}} for
    every deployment with live traffic (what a deploy step reports, not what it meant to do)."""
    traffic = target.traffic(endpoint) or {}
    return {
        name: {"traffic": pct, "model": target.serving(endpoint, name)}
        for name, pct in sorted(traffic.items())
        if pct > 0
    }


def describe(now: dict[str, dict[str, Any]]) -> str:
    """`green 100% diabetes-model:2` for each deployment that takes traffic."""
    if not now:
        return "no deployment takes traffic"
    return ", ".join(f"{d} {v['traffic']}% {short_model(v['model'])}" for d, v in now.items())


def short_model(ref: Any) -> str:
    """`name:version` for an `azureml:` reference or an ARM id; anything else as it is."""
    if isinstance(ref, str):
        if m := re.search(r"models/([^/]+)/versions/([^/]+)$", ref):
            return f"{m.group(1)}:{m.group(2)}"
        return ref.removeprefix("azureml:")
    return str(ref)


# -- targets ---------------------------------------------------------------------------------
class AzureTarget:
    """Azure ML through azure-ai-ml's MLClient (the compute's managed identity)."""

    def __init__(self, ml_client: Any) -> None:
        self.ml = ml_client

    @classmethod
    def from_job_environment(cls) -> AzureTarget:
        import os

        from azure.ai.ml import MLClient
        from azure.identity import ManagedIdentityCredential

        credential = ManagedIdentityCredential(
            client_id=os.environ.get("DEFAULT_IDENTITY_CLIENT_ID")
        )
        return cls(
            MLClient(
                credential,
                subscription_id=os.environ["AZUREML_ARM_SUBSCRIPTION"],
                resource_group_name=os.environ["AZUREML_ARM_RESOURCEGROUP"],
                workspace_name=os.environ["AZUREML_ARM_WORKSPACE_NAME"],
            )
        )

    def traffic(self, endpoint: str) -> dict[str, int] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return dict(self.ml.online_endpoints.get(endpoint).traffic or {})
        except ResourceNotFoundError:
            return None

    def serving(self, endpoint: str, deployment: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            model = self.ml.online_deployments.get(name=deployment, endpoint_name=endpoint).model
        except ResourceNotFoundError:
            return None
        return model if isinstance(model, str) else getattr(model, "id", None)

    def create_endpoint(self, endpoint_yml: Path, endpoint: str) -> None:
        from azure.ai.ml import load_online_endpoint

        ep = load_online_endpoint(endpoint_yml, params_override=[{"name": endpoint}])
        self.ml.online_endpoints.begin_create_or_update(ep).result()

    def deploy(
        self, deployment_yml: Path, endpoint: str, slot: str, model: str, code: Path
    ) -> None:
        from azure.ai.ml import load_online_deployment

        dep = load_online_deployment(
            deployment_yml,
            params_override=[
                {"name": slot},
                {"endpoint_name": endpoint},
                {"model": model},
                {"code_configuration.code": str(code)},
            ],
        )
        self.ml.online_deployments.begin_create_or_update(dep).result()

    def invoke(self, endpoint: str, request: Path, deployment: str) -> tuple[int, str]:
        from azure.core.exceptions import HttpResponseError

        try:
            body = self.ml.online_endpoints.invoke(
                endpoint_name=endpoint, request_file=str(request), deployment_name=deployment
            )
        except HttpResponseError as exc:
            return int(exc.status_code or 500), str(exc.message)
        return 200, body

    def set_traffic(self, endpoint: str, traffic: dict[str, int], mirror: dict[str, int]) -> None:
        ep = self.ml.online_endpoints.get(endpoint)
        ep.traffic = traffic
        ep.mirror_traffic = mirror
        self.ml.online_endpoints.begin_create_or_update(ep).result()

    def champion(self, name: str) -> str | None:
        """Azure ML's registry has no aliases: the newest version tagged champion=true."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            versions = list(self.ml.models.list(name=name))
        except ResourceNotFoundError:
            return None
        tagged = [v for v in versions if (v.tags or {}).get(CHAMPION) == "true"]
        return str(max(tagged, key=lambda v: int(v.version)).version) if tagged else None

    def lock(self, endpoint: str) -> contextlib.AbstractContextManager[Any]:
        # No lock across Azure jobs: the service answers a concurrent update with 409 Conflict.
        return contextlib.nullcontext()


class LocalTarget:
    """amlocal's endpoints (the step runs under `amlocal job create`)."""

    def __init__(self) -> None:
        from amlocal.workspace import Workspace

        self.ws = Workspace()

    def traffic(self, endpoint: str) -> dict[str, int] | None:
        rec = self.ws.store.get("online-endpoint", endpoint)
        return None if rec is None else dict(rec.get("traffic") or {})

    def serving(self, endpoint: str, deployment: str) -> str | None:
        rec = self.ws.store.get("online-deployment", f"{endpoint}:{deployment}")
        return None if rec is None else rec.get("model")

    def create_endpoint(self, endpoint_yml: Path, endpoint: str) -> None:
        from amlocal import endpoints

        endpoints.create_or_update_endpoint(self.ws, endpoint_yml, endpoint)

    def deploy(
        self, deployment_yml: Path, endpoint: str, slot: str, model: str, code: Path
    ) -> None:
        from amlocal import endpoints

        exists = self.ws.store.get("online-deployment", f"{endpoint}:{slot}") is not None
        endpoints.create_or_update_deployment(
            self.ws,
            deployment_yml,
            slot,
            endpoint,
            [{"model": model}, {"code_configuration.code": str(code)}],
            all_traffic=False,
            creating=not exists,
        )

    def invoke(self, endpoint: str, request: Path, deployment: str) -> tuple[int, str]:
        from amlocal import endpoints

        status, _, body = endpoints.invoke(self.ws, endpoint, request.read_bytes(), deployment)
        return status, body.decode("utf-8", "replace")

    def set_traffic(self, endpoint: str, traffic: dict[str, int], mirror: dict[str, int]) -> None:
        from amlocal import endpoints

        endpoints.set_traffic(self.ws, endpoint, traffic, mirror)

    def champion(self, name: str) -> str | None:
        """The champion alias, else the newest version tagged champion=true (register_lib).
        The alias is read straight from the workspace's store when it can be: a rerun's
        deploy step then decides without importing MLflow."""
        from amlocal import tracking

        version = tracking.model_alias(self.ws, name, CHAMPION)
        if version:
            return version
        from mlflow.exceptions import MlflowException

        client = tracking.client(self.ws)
        try:
            return str(client.get_model_version_by_alias(name, CHAMPION).version)
        except MlflowException:
            pass
        versions = client.search_model_versions(f"name='{name}'")
        tagged = [v for v in versions if (v.tags or {}).get(CHAMPION) == "true"]
        return str(max(tagged, key=lambda v: int(v.version)).version) if tagged else None

    @contextlib.contextmanager
    def lock(self, endpoint: str) -> Any:
        """Deploy steps of pipelines running at once take turns on an endpoint, so the second
        sees what the first released (and finds the champion already live)."""
        import fcntl

        locks = self.ws.home / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"deploy-{endpoint}.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
