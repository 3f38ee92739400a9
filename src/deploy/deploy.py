"""Entry point of the deploy component: promote the newly registered model blue/green.

Does nothing (and succeeds) when the register step registered no new version. Deploys to
Azure ML with the compute's managed identity, or to amlocal's local endpoints when the step
runs under `amlocal` (AMLOCAL=1).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from deploy_lib import (
    AzureTarget,
    LocalTarget,
    SmokeTestFailed,
    describe,
    promote,
    serving,
)

# Azure ML's rule for online endpoint names (the pipeline input reaches paths and URLs).
ENDPOINT_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]")
ENDPOINT_RULE = "3-32 characters, letters, digits and '-', starting with a letter"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--registration", type=Path, required=True, help="register's output folder")
    p.add_argument("--endpoint_config", type=Path, required=True, help="endpoint + slot YAML")
    p.add_argument("--score_code", type=Path, required=True, help="the scoring code folder")
    p.add_argument("--endpoint_name", default="", help="default: name in endpoint.yml")
    p.add_argument("--enabled", default="true", help="false: record the decision, deploy nothing")
    p.add_argument("--mirror_percent", type=int, default=0)
    p.add_argument("--canary_percent", type=int, default=0)
    p.add_argument("--stage_seconds", type=float, default=0.0)
    p.add_argument("--deployment", type=Path, required=True, help="output folder")
    return p.parse_args(argv)


def endpoint_name(config: Path, override: str) -> str:
    if override:
        return override
    import yaml

    return yaml.safe_load((config / "endpoint.yml").read_text())["name"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.deployment.mkdir(parents=True, exist_ok=True)
    info = json.loads((args.registration / "model_info.json").read_text())
    out = args.deployment / "deploy_info.json"
    if args.enabled.strip().lower() not in ("true", "1", "yes"):
        print("deploy: disabled by the pipeline input (deploy: false); nothing deployed")
        out.write_text(json.dumps({"deployed": False, "reason": "deployment disabled"}))
        return 0
    if not info.get("registered"):
        print(f"deploy: nothing to deploy ({info.get('reason', 'no new version registered')})")
        out.write_text(json.dumps({"deployed": False, "reason": info.get("reason")}))
        return 0
    endpoint = endpoint_name(args.endpoint_config, args.endpoint_name)
    if not ENDPOINT_NAME.fullmatch(endpoint):
        print(f"deploy: invalid endpoint name {endpoint!r}: {ENDPOINT_RULE}", file=sys.stderr)
        return 2
    target = (
        LocalTarget() if os.environ.get("AMLOCAL") == "1" else AzureTarget.from_job_environment()
    )
    with target.lock(endpoint):
        # Release the champion, not the version in model_info.json: a register step reused
        # from an earlier run, or another pipeline that crowned a better model meanwhile,
        # would otherwise roll the endpoint back to an older model.
        champion = target.champion(info["name"])
        if champion is None:
            reason = f"{info['name']} has no champion version"
            print(f"deploy: nothing to deploy ({reason})")
            out.write_text(json.dumps({"deployed": False, "reason": reason}))
            return 0
        if str(champion) != str(info.get("version")):
            print(
                f"deploy: register's {info['name']}:{info.get('version')} is not the champion; "
                f"releasing the champion {info['name']}:{champion}"
            )
        try:
            result = promote(
                target,
                args.endpoint_config,
                endpoint,
                f"azureml:{info['name']}:{champion}",
                args.score_code.resolve(),
                args.endpoint_config / "sample-request.json",
                mirror_percent=args.mirror_percent,
                canary_percent=args.canary_percent,
                stage_seconds=args.stage_seconds,
            )
        except SmokeTestFailed as exc:
            print(f"deploy: FAILED, traffic left unchanged: {exc}", file=sys.stderr)
            out.write_text(json.dumps({"deployed": False, "reason": str(exc)}))
            return 1
        now = result.get("serving") or serving(target, endpoint)
    out.write_text(json.dumps({"deployed": True, **result}))
    verb = (
        "unchanged" if result.get("unchanged") else f"{result['deployment']} <- {result['model']}"
    )
    print(f"deploy: {endpoint} {verb}; serving {describe(now)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
