"""Entry point of the deploy component: promote the newly registered model blue/green.

Does nothing (and succeeds) when the register step registered no new version. Deploys to
Azure ML with the compute's managed identity, or to amlocal's local endpoints when the step
runs under `amlocal` (AMLOCAL=1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from deploy_lib import AzureTarget, LocalTarget, SmokeTestFailed, promote


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
    target = (
        LocalTarget() if os.environ.get("AMLOCAL") == "1" else AzureTarget.from_job_environment()
    )
    try:
        result = promote(
            target,
            args.endpoint_config,
            endpoint_name(args.endpoint_config, args.endpoint_name),
            f"azureml:{info['name']}:{info['version']}",
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
    out.write_text(json.dumps({"deployed": True, **result}))
    print(f"deploy: {result['model']} serves 100% of {result['endpoint']} ({result['deployment']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
