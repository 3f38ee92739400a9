"""A deployment's environment, as its instances (online) or mini-batch workers (batch) run it.

Azure builds an image per deployment from the environment it declares (for an MLflow
no-code deployment, from the model's own conda dependencies plus what its inference server
needs). Locally the environment's packages (`amlocal.environments.spec`) are checked against
the project venv as a job step's are: when the project venv satisfies them nothing is built
(the common case, no cost); otherwise a content-hashed venv is built once with uv
(`amlocal.environments.build`) and reused by every deployment with the same environment.
An online deployment's venv also gets azureml-inference-server-http at this project's pin,
as Azure's inference images carry it (and the loopback module that binds it to 127.0.0.1
reaches amlocal through PYTHONPATH); an MLflow no-code one gets mlflow-skinny, numpy and
pandas too (Azure's MLflow inference image carries MLflow, which brings both), unless the model
declares them.

When a venv cannot be built (offline with an empty uv cache, no wheel, a conflict) the
deployment serves in the project venv, and one line names every pin that moves
("scikit-learn 1.7.* declared, 1.9.1 serves"): printed at create, written at the top of every
instance log (`get-logs`). AMLOCAL_ENVIRONMENTS=project never builds; the line still names
the pins.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amlocal import yamlsafe
from amlocal.environments import spec as speclib
from amlocal.errors import AmlocalError

SERVER_PACKAGE = "azureml-inference-server-http"
_MAX_FILE = 1_000_000


@dataclass(frozen=True)
class Serving:
    """Where a deployment's code runs: an interpreter, the built venv it belongs to (None for
    the project venv) and the lines that say what moved."""

    python: str
    venv: str | None = None
    notes: tuple[str, ...] = field(default=())


PROJECT = Serving(sys.executable)


def mlflow_environment(model_dir: Path) -> dict[str, Any] | None:
    """The environment of an MLflow model's no-code deployment, as a definition: its
    `conda.yaml` (the file MLmodel's python_function flavor names, as Azure reads the
    model's conda dependencies), else its `requirements.txt`. None when it has neither."""
    root = _mlmodel_root(model_dir)
    if root is None:
        return None
    conda_name = "conda.yaml"
    try:
        mlmodel = yamlsafe.load((root / "MLmodel").read_text()[:_MAX_FILE], "MLmodel") or {}
        env = ((mlmodel.get("flavors") or {}).get("python_function") or {}).get("env")
        if isinstance(env, dict) and isinstance(env.get("conda"), str):
            conda_name = env["conda"]
        elif isinstance(env, str):
            conda_name = env
    except (OSError, ValueError, AttributeError):
        pass
    for name, kind in ((conda_name, "conda_file"), ("requirements.txt", "requirements")):
        path = (root / name).resolve()
        if not path.is_relative_to(root.resolve()) or not path.is_file():
            continue
        text = path.read_bytes()[:_MAX_FILE].decode("utf-8", "replace")
        if kind == "conda_file":
            doc = yamlsafe.load(text, str(path))
            if isinstance(doc, dict):
                return {"name": f"mlflow-model ({root.name})", "conda_file": doc}
        else:
            return {"name": f"mlflow-model ({root.name})", "requirements": text}
    return None


def _mlmodel_root(model_dir: Path) -> Path | None:
    if (model_dir / "MLmodel").is_file():
        return model_dir
    found = sorted(p.parent for p in model_dir.glob("*/MLmodel"))
    return found[0] if found else None


def label(record: dict[str, Any]) -> str:
    """How messages name an environment record: its curated reference, `name:version`, or
    for an inline one (azure-ai-ml names it CliV2AnonymousEnvironment) `inline` and the name
    its conda file gives."""
    if record.get("curated"):
        return str(record["curated"])
    name = str(record.get("name") or "")
    if name and not name.startswith("CliV2AnonymousEnvironment"):
        return f"{name}:{record['version']}" if record.get("version") else name
    conda = record.get("conda_file")
    conda_name = conda.get("name") if isinstance(conda, dict) else None
    return f"inline ({conda_name})" if conda_name else "inline"


def spec_of(definition: dict[str, Any] | None) -> speclib.Spec:
    """An environment definition (record, curated record, MLflow model's) as a Spec."""
    if definition and definition.get("requirements") is not None:
        return speclib.from_requirements(str(definition["requirements"]), "requirements.txt")
    return speclib.of_definition(definition)


def resolve(
    definition: dict[str, Any] | None, label: str, *, online: bool, mlflow: bool = False
) -> Serving:
    """Where a deployment with environment `definition` runs, its venv built now if needed.

    `online`: the venv gets the inference server; `mlflow` (no-code): what the no-code
    drivers import too (`_serving_extras`)."""
    from amlocal.jobs import environments

    wanted = spec_of(definition)
    if not wanted.requirements and not wanted.python:
        return PROJECT  # an image alone: nothing to check (as for a job)
    how = environments.mode(False)
    if how == "project" or environments.project_satisfies(wanted):
        return Serving(sys.executable, None, _notes(label, wanted, _project_versions(), None))
    from amlocal.environments import build

    try:
        built = build.ensure(wanted, label, _serving_extras(wanted, online, mlflow))
    except AmlocalError as exc:
        why = f"its venv could not be built ({_reason(str(exc))}); it serves in the project venv"
        notes = _notes(label, wanted, _project_versions(), None, why)
        return Serving(sys.executable, None, notes)
    have = build.installed(built.root)
    notes = _notes(label, wanted, lambda n: have.get(speclib.normalize(n)), built.python_version)
    return Serving(str(built.bin_dir / "python"), str(built.root), notes)


def announce(served: Serving, deployment: str, verb: str) -> Serving:
    """Say on stderr where a deployment runs (`verb`: "serves" online, "runs" in batch) and
    every note on its environment, as `create` prints them; returns `served`."""
    for note in served.notes:
        sys.stderr.write(f"WARNING: deployment {deployment}: {note}\n")
    if served.venv:
        sys.stderr.write(
            f"amlocal: deployment {deployment} {verb} in its environment's venv {served.venv}\n"
        )
    return served


def _reason(message: str) -> str:
    """The line of uv's message that says why (its "Because ..." explanation, else its
    cause or error line), for a one-line warning."""
    lines = [ln.strip(" ×╰─▶│").strip() for ln in message.splitlines() if ln.strip()]
    for marker in ("Because", "cause:", "error:"):
        for ln in lines:
            if marker in ln:
                return ln[:300]
    return (lines[-1] if lines else "uv failed")[:300]


def _serving_extras(wanted: speclib.Spec, online: bool, mlflow: bool) -> tuple[str, ...]:
    """What Azure's inference images add to an environment, unless it declares it."""
    from amlocal import packages

    declared = speclib.declared_names(wanted.requirements)
    extras = []
    if online and SERVER_PACKAGE not in declared:
        pin = packages.version(SERVER_PACKAGE)
        extras.append(f"{SERVER_PACKAGE}=={pin}" if pin else SERVER_PACKAGE)
    if mlflow:  # the no-code drivers load the model with MLflow and read inputs with these
        if not declared & {"mlflow", "mlflow-skinny"}:
            extras.append("mlflow-skinny")
        extras += [n for n in ("numpy", "pandas") if n not in declared]
    return tuple(extras)


def _project_versions() -> Any:
    from amlocal import packages

    return packages.version


def _notes(
    label: str, wanted: speclib.Spec, version_of: Any, python: str | None, why: str = ""
) -> tuple[str, ...]:
    """The lines for create's output and the instance log: why the project venv serves when
    a venv was wanted, and every pin that moves, on one line."""
    serves = python or sys.version.split()[0]
    moved = moved_pins(wanted, version_of, serves)
    out = [f"environment {label}: {why}"] if why else []
    if moved:
        out.append(f"environment {label}: " + "; ".join(moved))
    if wanted.left_out:
        out.append(
            f"environment {label}: left out (conda-only or no pip equivalent): "
            + ", ".join(wanted.left_out)
        )
    return tuple(out)


def moved_pins(wanted: speclib.Spec, version_of: Any, python: str) -> list[str]:
    """Every declared pin the interpreter that serves does not meet, as "<name> <declared>
    declared, <version> serves" ("not installed" when it has none)."""
    out = []
    if wanted.python and not (python == wanted.python or python.startswith(wanted.python + ".")):
        out.append(f"python {wanted.python} declared, {python} serves")
    for line, req in speclib.applicable(wanted):
        if req is None:
            out.append(f"{line} declared, not a requirement pip reads")
            continue
        have = version_of(req.name)
        shown = _declared(req)
        if have is None:
            out.append(f"{shown} declared, not installed")
        elif req.specifier and not req.specifier.contains(have, prereleases=True):
            out.append(f"{shown} declared, {have} serves")
    return out


def _declared(req: Any) -> str:
    """`scikit-learn==1.7.*` as "scikit-learn 1.7.*", a range as written."""
    specs = list(req.specifier)
    if len(specs) == 1 and specs[0].operator == "==":
        return f"{req.name} {specs[0].version}"
    return f"{req.name}{req.specifier}" if specs else req.name


def import_path(cache: Path) -> str:
    """A folder holding only a link to the `amlocal` package: on PYTHONPATH, a venv that is
    not the project's can run amlocal's instance module without seeing the project venv's
    other packages."""
    import amlocal
    from amlocal.hashing import text_digest

    package = Path(amlocal.__file__).resolve().parent
    folder = cache / "amlocal-path" / text_digest(str(package))[:16]
    link = folder / "amlocal"
    if not link.is_symlink():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".amlocal.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(package, target_is_directory=True)
        tmp.replace(link)
    return str(folder)
