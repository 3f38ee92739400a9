"""Load and validate YAML with azure-ai-ml, the code `az ml` itself runs.

Errors are re-raised as `InvalidInput` naming the file, the key and what was expected.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, TypeAlias

from amlocal.errors import InvalidInput

# `--set` overrides as azure-ai-ml's `params_override` takes them: one {key: value} each.
Overrides: TypeAlias = list[dict[str, Any]]

# `az ml`'s loaders, by YAML kind. Batch deployments dispatch on type, as `az ml` does.
_LOADERS = {
    "job": "load_job",
    "component": "load_component",
    "data": "load_data",
    "environment": "load_environment",
    "model": "load_model",
    "compute": "load_compute",
    "online-endpoint": "load_online_endpoint",
    "online-deployment": "load_online_deployment",
    "batch-endpoint": "load_batch_endpoint",
    "registry": "load_registry",
}


def quiet_sdk_notices() -> None:
    """azure-ai-ml prints 'experimental class' notices on import; az ml hides them too."""
    warnings.filterwarnings("ignore")
    logging.getLogger("azure").setLevel(logging.ERROR)
    logging.getLogger("azure.ai.ml._utils._experimental").disabled = True


# YAML 1.1 words PyYAML resolves to bool or null; `true`/`false` are answered directly.
_TRUE, _FALSE = {"true", "True", "TRUE"}, {"false", "False", "FALSE"}
_WORDS = {"yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"}
_WORDS |= {"null", "Null", "NULL"}


def _scalar(value: str) -> tuple[bool, Any]:
    """(True, value) for the plain scalars `--set` mostly gets, parsed as yaml.safe_load
    would parse them; (False, None) for anything else, which goes to PyYAML.

    Why not always PyYAML: importing it costs 23 ms (`python -X importtime`: yaml.reader
    compiles its large non-printable class on import) of a one-step job's ~250 ms start, and
    `job create --set settings.force_rerun=true` needs nothing else from it. Only words
    PyYAML's implicit resolvers cannot take for anything but these are answered here
    (a decimal int without a leading zero, the exact true/false spellings, a name that starts
    with a letter and holds only letters, digits and `_./-`); a test checks agreement with
    yaml.safe_load over a generated corpus."""
    if value in _TRUE or value in _FALSE:
        return True, value in _TRUE
    head, body = value[:1], value.lstrip("+-")
    if body and body.isascii() and body.isdigit() and (body == "0" or body[0] != "0"):
        if len(value) - len(body) <= 1:
            return True, int(value)
    if head.isascii() and (head.isalpha() or head == "_") and value not in _WORDS:
        if all(c.isascii() and (c.isalnum() or c in "_./-") for c in value):
            return True, value
    return False, None


def parse_set(pairs: list[str] | None) -> list[dict[str, Any]]:
    """`--set a.b=c` pairs as azure-ai-ml params_override entries (values parsed as YAML)."""
    out = []
    for pair in pairs or []:
        if "=" not in pair:
            raise InvalidInput(f"--set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        known, parsed = _scalar(value) if value != "" else (True, "")
        if not known:
            import yaml

            from amlocal import yamlsafe

            try:
                parsed = yamlsafe.load(value, f"--set {key.strip()}")
            except yaml.YAMLError:
                parsed = value
        out.append({key.strip(): parsed})
    return out


def load(kind: str, path: str | Path, overrides: list[dict[str, Any]] | None = None) -> Any:
    """Load one YAML file as the azure-ai-ml entity `az ml <kind> create -f` would build."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: file not found")
    from amlocal import yamlsafe

    yamlsafe.check_tree(path)  # alias bombs, cycles, deep nesting: before azure-ai-ml reads
    quiet_sdk_notices()
    enable_control_flow()
    import azure.ai.ml as aml
    from azure.ai.ml.entities import _load_functions as lf

    fn: Any
    try:
        if kind == "batch-deployment":
            raw = yamlsafe.load_file(path) or {}
            schema = str(raw.get("$schema", ""))
            if raw.get("type") == "pipeline" or "pipelineComponentBatchDeployment" in schema:
                fn = lf.load_pipeline_component_batch_deployment
            elif raw.get("type") == "model" or "modelBatchDeployment" in schema:
                fn = lf.load_model_batch_deployment
            else:
                fn = aml.load_batch_deployment
        elif kind == "schedule":  # az ml schedule: job and monitor schedules
            fn = _load_schedule
        else:
            fn = getattr(aml, _LOADERS[kind])
        entity = fn(source=path, params_override=overrides or [])
    except InvalidInput:
        raise
    except Exception as exc:  # azure-ai-ml raises several exception types; all are user errors
        raise InvalidInput(f"{path}: {_message(exc)}") from None
    return entity


def enable_control_flow() -> None:
    """azure-ai-ml builds its pipeline schema with `if_else`, `do_while`, `parallel_for` and
    `settings.on_init`/`on_finalize` only when its private-preview flag is set before the
    schema is imported (its own control-flow tests set it); amlocal always loads them
    (docs/local-vs-azure.md, "Pipeline control flow")."""
    import os

    os.environ.setdefault("AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED", "true")


def validate(entity: Any, path: str | Path) -> None:
    """Run the entity's own validation (bindings, types, required fields), as `az ml` does."""
    validate_fn = getattr(entity, "_validate", None)
    if validate_fn is None:
        return
    try:
        result = validate_fn()
    except NotImplementedError:  # MonitorSchedule has no validator; az ml skips it too
        return
    if result is not None and not result.passed:
        details = "; ".join(f"{k}: {v}" for k, v in result.error_messages.items())
        raise InvalidInput(f"{path}: {details}")


def _message(exc: Exception) -> str:
    msg = str(getattr(exc, "message", "") or exc).strip()
    # azure-ai-ml wraps marshmallow errors in a long banner; keep the informative lines.
    lines = [ln.rstrip() for ln in msg.splitlines() if ln.strip()]
    keep = [
        ln
        for ln in lines
        if not ln.startswith(("Visit", "Resolutions", "If using the CLI", "Please review"))
    ]
    return "\n  ".join(keep[:25]) or type(exc).__name__


# -- validation cache ---------------------------------------------------------------------
CACHE_VERSION = "1"


def cache_dir() -> Path:
    """Validated YAML is cached per user, keyed by content, so a new workspace or a rerun
    does not pay azure-ai-ml's ~2 s import for files it has already validated."""
    import os

    base = (
        os.environ.get("AMLOCAL_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "amlocal"
    )
    return Path(base)


def _aml_version() -> str:
    from amlocal import packages

    return packages.version("azure-ai-ml") or "not installed"


def validated(
    kind: str,
    path: Path,
    overrides: list[dict[str, Any]] | None,
    extract: Any,
    *,
    files: list[Path] | None = None,
    tag: str = "",
) -> Any:
    """`extract(entity)` for the YAML at `path`, loaded and validated by azure-ai-ml, or the
    cached result for exactly these file contents, overrides and azure-ai-ml version."""
    import hashlib
    import json
    import os

    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: file not found")
    h = hashlib.sha256()
    for part in (CACHE_VERSION, _aml_version(), kind, tag, repr(overrides or [])):
        h.update(part.encode() + b"\0")
    for f in files or [path.resolve()]:
        h.update(str(f).encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    target = cache_dir() / f"{kind}{tag}-{h.hexdigest()[:40]}.json"
    try:
        return json.loads(target.read_text())
    except (FileNotFoundError, ValueError):
        pass
    entity = load(kind, path, overrides)
    validate(entity, path)
    value = extract(entity)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, default=str))
    os.replace(tmp, target)
    return value


def _load_schedule(source: Any, params_override: list[dict[str, Any]]) -> Any:
    """azure-ai-ml's load_schedule; a monitor schedule's schema errors are reported as such
    (azure-ai-ml's error path raises a bare NotImplementedError for MonitorSchedule)."""
    from azure.ai.ml.entities._load_functions import load_schedule

    try:
        return load_schedule(source=source, params_override=params_override)
    except NotImplementedError:
        from azure.ai.ml._schema.monitoring.schedule import MonitorScheduleSchema
        from azure.ai.ml.constants._common import BASE_PATH_CONTEXT_KEY

        from amlocal import yamlsafe

        data = yamlsafe.load_file(source) or {}
        ctx = {BASE_PATH_CONTEXT_KEY: Path(source).parent}
        MonitorScheduleSchema(context=ctx).load(data)  # raises the marshmallow error
        raise


# -- cache key without azure-ai-ml --------------------------------------------------------
def source_files(path: Path) -> list[Path]:
    """The job YAML and every local file it pulls in (components, conda files), recursively."""
    seen: list[Path] = []
    todo = [path.resolve()]
    while todo:
        p = todo.pop()
        if p in seen or not p.is_file():
            continue
        seen.append(p)
        if p.suffix not in (".yml", ".yaml"):
            continue
        todo.extend((p.parent / ref).resolve() for ref in _refs(p))
    return seen


def _refs(path: Path) -> list[str]:
    """The local files one YAML file names, memoized by its content in the validation cache.

    Why a memo: without it every `job create` imported PyYAML (23 ms) and parsed the job YAML
    and each component and conda file in pure Python, only to find the cache key; the memo is
    one small JSON read per file. Keyed by the bytes, so an edited file is parsed anew."""
    import hashlib
    import json
    import os

    data = path.read_bytes()
    memo = cache_dir() / "refs" / f"{hashlib.sha256(data).hexdigest()[:40]}.json"
    try:
        memoized = json.loads(memo.read_text())
        if isinstance(memoized, list) and all(isinstance(r, str) for r in memoized):
            return memoized
    except (OSError, ValueError):
        pass  # no memo yet, or a damaged one: parse the file again
    import yaml

    text = data.decode("utf-8")  # not UTF-8: the CLI names the file (UnicodeDecodeError)
    try:
        from amlocal import yamlsafe

        refs = yamlsafe.file_refs(yamlsafe.load(text, path))
    except yaml.YAMLError:
        return []  # azure-ai-ml reports it with the file and line
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(refs))
        os.replace(tmp, memo)
    except OSError:
        pass  # a read-only cache only costs the parse next time
    return refs
