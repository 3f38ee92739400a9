"""Register the challenger only if evaluate said so, and make it the champion.

The gate lives here as much as in evaluate: a decision that is computed and then ignored
(registering every model anyway) is no gate. register.py is the thin entry point.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

CHAMPION_ALIAS = "champion"
# Same convention as evaluate_lib (each component's code folder must stand alone, so the
# constant is repeated): the alias where supported, plus this tag everywhere.
CHAMPION_TAG = "champion"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
MODEL_ARTIFACT_PATH = "model"
INFO_FILE = "model_info.json"
# Primary metric -> higher is better (evaluate_lib.PRIMARY, repeated: folders stand alone).
HIGHER_IS_BETTER = {"rmse": False, "accuracy": True}
# Version tags that say which test split its test_* metrics were measured on: two versions'
# metrics compare only when all of these agree.
SPLIT_TAGS = ("data_sha256", "test_size", "split_seed")
# The challenger folder's content digest, set when the version is created: a rerun of this
# step (after a crash, or with evaluate reused) finds the version it registered before.
DIGEST_TAG = "model_sha256"


def read_json(folder: Path, file_name: str) -> dict[str, Any]:
    """Read a small JSON file from an input folder."""
    return json.loads((folder / file_name).read_text())


def git_commit(client: MlflowClient, run_id: str) -> str:
    """The commit the pipeline was submitted from, as tagged on this step's run."""
    return client.get_run(run_id).data.tags.get(GIT_COMMIT_TAG) or "unknown"


def version_tags(decision: dict[str, Any], metadata: dict[str, Any], commit: str) -> dict[str, str]:
    """What a registered version should say about itself: test metrics, data, code, decision."""
    # repr: the exact float, so `recheck` compares what evaluate measured, not a rounding.
    tags = {f"test_{name}": repr(float(value)) for name, value in decision["challenger"].items()}
    tags.update(
        {
            "data_sha256": metadata["data_sha256"],
            "test_size": str(metadata.get("test_size", "")),
            "split_seed": str(metadata.get("seed", "")),
            "git_commit": commit,
            "evaluation_enabled": str(decision["evaluation_enabled"]).lower(),
            "promotion_reason": "; ".join(decision["reasons"])[:5000],
        }
    )
    if decision.get("champion"):
        tags["previous_champion_version"] = str(decision["champion"]["version"])
    return tags


def model_digest(model_dir: Path) -> str:
    """sha256 over the model folder's relative paths and file contents (MLmodel carries a
    random model_uuid, so two trainings never share one; a reused training output does)."""
    h = hashlib.sha256()
    for f in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        h.update(f.relative_to(model_dir).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def registered_before(client: MlflowClient, name: str, digest: str) -> Any | None:
    """The version an earlier attempt registered from this very model folder, if any."""
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return None
    same = [v for v in versions if (v.tags or {}).get(DIGEST_TAG) == digest]
    return min(same, key=lambda v: int(v.version), default=None)


def set_champion(client: MlflowClient, name: str, version: str) -> bool:
    """Point the champion at `version`; return whether the alias API accepted it.

    The tag is always written (new version first, then removed from the others, so a reader
    never sees zero champions); the alias is attempted on top and may be unsupported.
    """
    client.set_model_version_tag(name, version, CHAMPION_TAG, "true")
    for other in client.search_model_versions(f"name='{name}'"):
        if str(other.version) != str(version) and (other.tags or {}).get(CHAMPION_TAG):
            client.delete_model_version_tag(name, other.version, CHAMPION_TAG)
    try:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    except MlflowException as error:
        print(f"register: alias API unavailable ({error.error_code}); champion kept as a tag")
        return False
    return True


def find_champion(client: MlflowClient, name: str) -> Any | None:
    """The version holding the champion alias, else the newest tagged champion=true (as in
    evaluate_lib.find_champion: a registry without aliases keeps only the tag)."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        pass
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return None
    tagged = [v for v in versions if (v.tags or {}).get(CHAMPION_TAG) == "true"]
    return max(tagged, key=lambda v: int(v.version), default=None)


@contextlib.contextmanager
def champion_lock(tracking_uri: str | None) -> Iterator[None]:
    """Serialize champion moves between pipelines that share a local SQLite registry.

    Two pipelines running at once both compare with the same champion; without this, the
    slower one could crown a model worse than the one the faster one just crowned. A remote
    registry (Azure ML) offers no lock: there the re-read in `recheck` narrows the window.
    """
    uri = tracking_uri or ""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    db = Path(uri[len("sqlite:///") :].split("?", 1)[0])
    with open(db.with_name(db.name + ".champion.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def recheck(
    champion: Any | None,
    decision: dict[str, Any],
    metadata: dict[str, Any],
    ours_digest: str = "",
) -> str | None:
    """Compare-and-set: None if the decision still holds against the current `champion`, else
    why it does not.

    The decision compared the challenger with the champion of its time. If another pipeline
    has crowned a different version since, the challenger must beat that one too: compared on
    its test_* version tags when they were measured on the same test split, and declined
    otherwise (the next run compares afresh).
    """
    if not decision.get("evaluation_enabled", True):
        return None  # the gate is off: this version is the champion by definition
    seen = (decision.get("champion") or {}).get("version")
    now = None if champion is None else str(champion.version)
    if now == (None if seen is None else str(seen)):
        return None
    if now is not None and (champion.tags or {}).get(DIGEST_TAG) == ours_digest:
        return None  # the champion is this very model, crowned by an earlier attempt
    primary = decision.get("primary_metric", "rmse")
    moved = f"the champion moved from {f'v{seen}' if seen else 'none'} to v{now} meanwhile"
    tags = dict(champion.tags or {})
    ours = version_tags(decision, metadata, "")
    theirs = tags.get(f"test_{primary}")
    if theirs is None or any(tags.get(k) != ours.get(k) for k in SPLIT_TAGS):
        return f"{moved}, measured on another test split: not comparable, the champion is kept"
    new, old = float(decision["challenger"][primary]), float(theirs)
    better = new > old if HIGHER_IS_BETTER.get(primary, False) else new < old
    if theirs == f"{new:.6g}":  # a tag written rounded (before tags were exact): a tie
        better = False
    if better:
        return None
    return f"{moved}: challenger {primary} {new:.6g} vs champion v{now} {old:.6g}, not better"


def register(
    client: MlflowClient,
    run_id: str,
    model_dir: Path,
    decision: dict[str, Any],
    metadata: dict[str, Any],
    model_name: str,
) -> dict[str, Any]:
    """Register iff decision["promote"]; return the model_info.json content."""
    if decision.get("promote") is not True:
        return {
            "registered": False,
            "name": model_name,
            "reason": "; ".join(decision.get("reasons", [])) or "decision did not promote",
        }

    digest = model_digest(model_dir)
    with champion_lock(os.environ.get("MLFLOW_TRACKING_URI") or mlflow.get_tracking_uri()):
        declined = recheck(find_champion(client, model_name), decision, metadata, digest)
        if declined:
            return {"registered": False, "name": model_name, "reason": declined}
        # Idempotent: a rerun after a crash (kill -9 mid-step) finishes what the earlier
        # attempt began (tags, champion) on the version it registered, never a second one.
        version = registered_before(client, model_name, digest)
        if version is not None:
            print(f"register: version {version.version} is this model, registered earlier")
        else:
            # Log the model into this step's own run and register from there, so the registry
            # entry points at an artifact the registry's tracking server owns (SQLite, Azure).
            client.log_artifacts(run_id, str(model_dir), MODEL_ARTIFACT_PATH)
            uri = f"runs:/{run_id}/{MODEL_ARTIFACT_PATH}"
            version = mlflow.register_model(uri, model_name, tags={DIGEST_TAG: digest})
        for key, value in version_tags(decision, metadata, git_commit(client, run_id)).items():
            client.set_model_version_tag(model_name, version.version, key, value)
        alias_set = set_champion(client, model_name, str(version.version))
    return {
        "registered": True,
        "name": model_name,
        "version": str(version.version),
        "champion_alias": alias_set,
        "reasons": decision["reasons"],
    }


def write_info(info: dict[str, Any], output_dir: Path) -> Path:
    """model_info.json in the registration output folder (read by a later deploy step)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / INFO_FILE
    path.write_text(json.dumps(info, indent=2) + "\n")
    return path
