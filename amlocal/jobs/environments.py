"""Azure ML environments, locally: a step runs in what its environment declares.

For each step the environment's packages are worked out (`amlocal.environments.spec`: conda
file, build context, curated specification). When the project venv satisfies them the step
runs there (no cost); otherwise in a content-hashed venv built once with uv and shared across
runs and workspaces (`amlocal.environments.build`). A step that may install packages gets an
overlay venv of its own (`amlocal.environments.overlay`), so no step can change the venv
amlocal runs from, or a shared built one. A step whose MLflow is not the project's logs
through a tracking server on the workspace store (`amlocal.environments.tracking_server`).

`--isolate-environments` always builds; `AMLOCAL_ENVIRONMENTS=project` always uses the
project venv (pins are then only warned about).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from amlocal import assets
from amlocal.environments import curated, overlay, spec
from amlocal.errors import AmlocalError, InvalidInput
from amlocal.hashing import text_digest
from amlocal.registries import refs as registry_refs
from amlocal.workspace import Workspace

MODE_VAR = "AMLOCAL_ENVIRONMENTS"
_lock = threading.Lock()
_satisfied: dict[str, bool] = {}  # identity -> the project venv satisfies it
_warned: set[str] = set()


def resolve(ws: Workspace, env: Any, where: str) -> dict[str, Any]:
    """An environment reference or inline definition as {label, definition, identity, spec}.

    `identity` (part of a step's reuse fingerprint) covers the definition and the resolved
    specification (a build context's requirements.txt content, a curated table row)."""
    if env is None:
        return {"label": "(none)", "definition": None, "identity": "none"}
    left_out: tuple[str, ...] = ()
    if isinstance(env, str) and curated.parse(env) is not None:
        try:
            found = curated.lookup(env)
        except curated.UnknownCuratedEnvironment as exc:
            return {
                "label": env,
                "definition": None,
                "identity": env,
                "curated": True,
                "why": str(exc),
            }
        assert found is not None
        body: dict[str, Any] = {"curated": found.name, "conda_file": found.conda_file()}
        label = env
        resolved = spec.from_conda(body["conda_file"], f"curated {found.name} ({found.source})")
        resolved = dataclasses.replace(resolved, exclude_newer=found.built)
        left_out = found.azure_only
    elif (
        isinstance(env, str)
        and env.startswith("azureml://registries/")
        and not registry_refs.is_local(env)
    ):
        # Another registry's environments can't be reproduced offline: name them and move on.
        return {"label": env, "definition": None, "identity": env, "curated": True}
    else:
        if isinstance(env, dict):
            definition = env
            label = env.get("name") or "inline"
        elif isinstance(env, str) and env.startswith("azureml:"):
            try:
                definition = assets.get(ws, "environment", env)
            except AmlocalError as exc:
                raise InvalidInput(f"{where}: environment {env}: {exc}") from None
            label = f"{definition['name']}:{definition['version']}"
            if registry_refs.is_local(env):  # a registry's: named as Azure shows it, pinned
                reg = env.split("/")[3]
                label = (
                    f"azureml://registries/{reg}/environments/{label.replace(':', '/versions/')}"
                )
        else:
            raise InvalidInput(f"{where}: environment '{env}' is not a reference or definition")
        body = {k: definition.get(k) for k in ("image", "conda_file", "build", "inference_config")}
        resolved = spec.of_definition(body)
    doc = {
        "python": resolved.python,
        "requirements": list(resolved.requirements),
        "left_out": [*resolved.left_out, *left_out],
        "origin": resolved.origin,
        "exclude_newer": resolved.exclude_newer,
    }
    identity = text_digest(json.dumps([body, resolved.digest()], sort_keys=True, default=str))
    return {"label": label, "definition": body, "identity": identity, "spec": doc}


def mode(isolate: bool) -> str:
    """ "isolate" (always build), "project" (never) or "resolve" (build what the project venv
    does not satisfy)."""
    if isolate:
        return "isolate"
    if os.environ.get(MODE_VAR, "").strip().lower() == "project":
        return "project"
    return "resolve"


def _spec(env: dict[str, Any]) -> spec.Spec | None:
    doc = env.get("spec")
    if not doc:
        return None
    return spec.Spec(
        doc["python"],
        tuple(doc["requirements"]),
        tuple(doc["left_out"]),
        doc["origin"],
        exclude_newer=doc.get("exclude_newer"),  # absent in records written before it
    )


def mismatches(definition: dict[str, Any] | None) -> list[str]:
    """What the project venv lacks of a definition, to warn about when steps run there anyway
    (AMLOCAL_ENVIRONMENTS=project); in the other modes such a step gets its own venv."""
    if mode(False) != "project":
        return []
    return spec.unmet(spec.of_definition(definition))


def python_bin_dir(ws: Workspace, env: dict[str, Any], isolate: bool) -> Path:
    """The bin folder whose `python` runs the step: the project venv's, or a built venv's.
    A build failure raises AmlocalError with uv's message and the environment's name."""
    wanted = _venv_spec(env, isolate)
    if wanted is None:
        return Path(sys.executable).parent
    from amlocal.environments import build

    built = build.ensure(wanted, env["label"])
    with _lock:
        first = built.root.name not in _warned
        _warned.add(built.root.name)
    if first and built.warning:
        sys.stderr.write(f"WARNING: environment {env['label']}: {built.warning}\n")
    if first and built.resolved:  # what the step really gets (an unpinned package's version)
        when = f" as of {built.exclude_newer}" if built.exclude_newer else ""
        sys.stderr.write(
            f"environment {env['label']}: resolved{when}: {', '.join(built.resolved)}\n"
        )
    return built.bin_dir


def interpreter(env: dict[str, Any], isolate: bool) -> str:
    """What the step would run in, for its reuse fingerprint: "project" (the project venv,
    whichever mode chose it), or "venv:<key>" (the content-hashed venv `python_bin_dir`
    builds or finds). Decided as `python_bin_dir` decides, without building anything."""
    wanted = _venv_spec(env, isolate)
    if wanted is None:
        return "project"
    from amlocal.environments import build

    return "venv:" + build.venv_key(wanted)


def _venv_spec(env: dict[str, Any], isolate: bool) -> spec.Spec | None:
    """The specification a venv is built for, or None: the step runs in the project venv
    (no specification, AMLOCAL_ENVIRONMENTS=project, or the project venv satisfies it)."""
    wanted = _spec(env)
    how = mode(isolate)
    if wanted is None or how == "project":
        return None
    if how == "resolve":
        with _lock:
            ok = _satisfied.get(env["identity"])
        if ok is None:
            ok = project_satisfies(wanted)
            with _lock:
                _satisfied[env["identity"]] = ok
        if ok:
            return None
    return wanted


def project_satisfies(wanted: spec.Spec) -> bool:
    """Whether the project venv has what `wanted` declares. Reading every installed
    distribution's metadata costs ~0.2 s, so the answer is kept per user, keyed by the
    specification and the state of the venv's site-packages (any install changes its mtime)."""
    v = sys.version_info
    try:
        state = os.stat(f"{sys.prefix}/lib/python{v.major}.{v.minor}/site-packages").st_mtime_ns
    except OSError:
        return not spec.unmet(wanted)
    from amlocal.environments import cache_root  # not build: a reused step asks this too

    name = f"{wanted.digest()[:24]}-{text_digest(sys.prefix)[:8]}-{state}"
    marker = cache_root() / "satisfied" / name
    try:
        return marker.read_text() == "1"
    except OSError:
        pass
    ok = not spec.unmet(wanted)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_suffix(f".{os.getpid()}")
        tmp.write_text("1" if ok else "0")
        tmp.replace(marker)
    except OSError:
        pass
    return ok


def prepare_step(
    ws: Workspace, bin_dir: Path, command: str, cwd: Path, env: dict[str, str]
) -> Path:
    """Last touches on a step process about to start in `cwd` with variables `env` (changed in
    place): an overlay venv when it may install packages, and the workspace's tracking server
    when its MLflow is not the project's. Returns the bin folder it runs from."""
    installs = overlay.needed(command, cwd)
    base = bin_dir
    if installs:
        bin_dir = overlay.create(bin_dir, cwd.parent / "venv")
        env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
        env["VIRTUAL_ENV"] = str(bin_dir.parent)
    own_mlflow = installs and overlay.mentions_mlflow_install(command, cwd)
    route_tracking(ws, base, command, cwd, env, force=own_mlflow)
    return bin_dir


def route_tracking(
    ws: Workspace, bin_dir: Path, command: str, code: Path, env: dict[str, str], force: bool = False
) -> None:
    """Point a step at the workspace's tracking server (in `env`) when the venv in `bin_dir`
    has an MLflow that cannot use the workspace's SQLite store and its code mentions MLflow
    (or `force`: it installs an MLflow of its own)."""
    store = env.get("MLFLOW_TRACKING_URI", "")
    if not store.startswith("sqlite:") or not (force or _foreign_mlflow(bin_dir)):
        return  # (checked first: tracking_server's imports cost ~10 ms on every step)
    from amlocal.environments import tracking_server

    if force or tracking_server.used_by(command, code):
        env["MLFLOW_TRACKING_URI"] = tracking_server.uri(store, ws.home)
        # The step starts while the server imports MLflow: its client retries a refused
        # connection with backoff; give it minutes on a busy machine (a user's value wins).
        env.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "9")  # 10 is the limit
        no_proxy = [p for p in env.get("NO_PROXY", "").split(",") if p]
        env["NO_PROXY"] = env["no_proxy"] = ",".join([*no_proxy, "127.0.0.1", "localhost"])


def _foreign_mlflow(bin_dir: Path) -> bool:
    """A built venv whose MLflow is not the one amlocal runs."""
    if bin_dir == Path(sys.executable).parent:
        return False
    from amlocal.environments import build

    built = build.load(bin_dir.parent)
    if built is None:
        return False
    if built.mlflow is None:
        return built.mlflow_skinny is not None  # skinny cannot open a SQL store
    from amlocal import packages  # indexed once per process: every built-venv step asks

    return built.mlflow != (packages.version("mlflow") or "")
