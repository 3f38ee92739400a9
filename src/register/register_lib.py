"""Register the challenger only if evaluate said so, and make it the champion.

The gate lives here as much as in evaluate: a decision that is computed and then ignored
(registering every model anyway) is no gate. register.py is the thin entry point.
"""

from __future__ import annotations

import json
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


def read_json(folder: Path, file_name: str) -> dict[str, Any]:
    """Read a small JSON file from an input folder."""
    return json.loads((folder / file_name).read_text())


def git_commit(client: MlflowClient, run_id: str) -> str:
    """The commit the pipeline was submitted from, as tagged on this step's run."""
    return client.get_run(run_id).data.tags.get(GIT_COMMIT_TAG) or "unknown"


def version_tags(decision: dict[str, Any], metadata: dict[str, Any], commit: str) -> dict[str, str]:
    """What a registered version should say about itself: test metrics, data, code, decision."""
    tags = {f"test_{name}": f"{value:.6g}" for name, value in decision["challenger"].items()}
    tags.update(
        {
            "data_sha256": metadata["data_sha256"],
            "git_commit": commit,
            "evaluation_enabled": str(decision["evaluation_enabled"]).lower(),
            "promotion_reason": "; ".join(decision["reasons"])[:5000],
        }
    )
    if decision.get("champion"):
        tags["previous_champion_version"] = str(decision["champion"]["version"])
    return tags


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

    # Log the model into this step's own run and register from there, so the registry entry
    # points at an artifact the registry's tracking server owns (works on SQLite and Azure).
    client.log_artifacts(run_id, str(model_dir), MODEL_ARTIFACT_PATH)
    version = mlflow.register_model(f"runs:/{run_id}/{MODEL_ARTIFACT_PATH}", model_name)
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
