"""`--set inputs.<name>=...` naming an input the job does not declare.

azure-ai-ml (1.35) takes such an override as a new job input: `load_job(...,
params_override=[{"inputs.alpah": 5}])` validates and is submitted with an extra input that no
step reads, so a typo silently runs the job with the default value. Azure ML accepts it too,
so amlocal does not reject it; it warns before anything runs, naming the key, the job's inputs
and the closest one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def unknown_inputs(path: Path, overrides: list[dict[str, Any]]) -> list[str]:
    """One warning per `inputs.<name>` override whose name the YAML's `inputs` lacks."""
    if not any(key.startswith("inputs.") for override in overrides for key in override):
        return []  # nothing to check: the file is not parsed (PyYAML's import alone is 23 ms)
    import yaml

    # libyaml's parser when PyYAML has it: the pure-Python one took ~30 ms for a small
    # pipeline, on every `job create --set` (the validated job itself is cached).
    from amlocal import yamlsafe

    try:
        raw = yamlsafe.load_file(path)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []  # the loader reports an unreadable file with its own message
    if not isinstance(raw, dict):
        return []
    inputs = raw.get("inputs")
    declared: dict[str, Any] = inputs if isinstance(inputs, dict) else {}
    kind = "pipeline" if raw.get("type") == "pipeline" else "job"
    warnings = []
    for override in overrides:
        for key in override:
            parts = key.split(".")
            if len(parts) < 2 or parts[0] != "inputs" or parts[1] in declared:
                continue
            name = parts[1]
            have = ", ".join(sorted(declared)) or "none"
            import difflib

            close = difflib.get_close_matches(name, list(declared), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            warnings.append(
                f"--set {key}: the {kind} in {path} has no input '{name}' (its inputs: {have});"
                f" it is added as a new input that no step reads, as Azure ML does.{hint}"
            )
    return warnings
