"""`make monitor`: production traffic for the diabetes endpoint, then its model monitor, now.

1. Samples rows of data/diabetes.csv and, unless --no-shift, perturbs them (bmi x1.3,
   bp +15: a population that got heavier and more hypertensive).
2. Sends them to the endpoint's deployment (the data collector logs the model inputs).
3. Creates the monitor schedule (schedules/monitor-diabetes.yml) if it does not exist, with
   `endpoint_deployment_id` pointing at that deployment, triggers it, follows the monitor
   job and prints its signals table.

The shifted variant (blue) shows drift in bmi and bp; the unshifted one (--no-shift, sent to
green, the other slot, so the two production windows do not mix) shows none. Runs with
`AML="az ml"` too: every step is an `az ml` command.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def aml(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = shlex.split(os.environ.get("AML", "amlocal")) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    return r


def perturb(rows: pd.DataFrame) -> pd.DataFrame:
    out = rows.copy()
    out["bmi"] = out["bmi"] * 1.3
    out["bp"] = out["bp"] + 15
    return out


def send(endpoint: str, deployment: str, rows: pd.DataFrame, batch: int) -> int:
    show = json.loads(aml("online-endpoint", "show", "-n", endpoint).stdout)
    key = json.loads(aml("online-endpoint", "get-credentials", "-n", endpoint).stdout)["primaryKey"]
    sent = 0
    for i in range(0, len(rows), batch):
        body = json.dumps({"data": rows.iloc[i : i + batch][FEATURES].values.tolist()}).encode()
        req = urllib.request.Request(
            show["scoring_uri"],
            data=body,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {key}",
                "azureml-model-deployment": deployment,
            },
        )
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (the endpoint's URI)
            resp.read()
        sent += 1
    return sent


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--endpoint", default="diabetes")
    ap.add_argument("--deployment", help="default: blue (shifted) or green (--no-shift)")
    ap.add_argument("--no-shift", action="store_true", help="send rows as they are")
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--batch", type=int, default=10, help="rows per request")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    deployment = args.deployment or ("green" if args.no_shift else "blue")
    data = pd.read_csv(REPO / "data" / "diabetes.csv")
    rows = data.sample(min(args.rows, len(data)), random_state=args.seed)
    if not args.no_shift:
        rows = perturb(rows)
    n = send(args.endpoint, deployment, rows, args.batch)
    print(
        f"sent {len(rows)} {'unshifted' if args.no_shift else 'shifted'} rows in {n} requests "
        f"to {args.endpoint}/{deployment}"
    )
    schedule = f"monitor-{args.endpoint}-{deployment}"
    if aml("schedule", "show", "-n", schedule, check=False).returncode != 0:
        aml(
            "schedule",
            "create",
            "-f",
            str(REPO / "schedules" / "monitor-diabetes.yml"),
            "--name",
            schedule,
            "--set",
            f"create_monitor.monitoring_target.endpoint_deployment_id=azureml:{args.endpoint}:{deployment}",
            "--set",
            f"display_name=Monitor {args.endpoint} ({deployment})",
        )
        print(f"created schedule {schedule}")
    job = json.loads(aml("schedule", "trigger", "-n", schedule).stdout)
    print(f"monitor job {job['name']}:")
    r = aml("job", "stream", "-n", job["name"], check=False)
    sys.stdout.write(r.stdout + r.stderr)
    if not os.environ.get("AML", "amlocal").startswith("az"):  # offline: the studio's pages
        from amlocal import studio
        from amlocal.workspace import home_dir

        print(f"signals and drift plots: {studio.url(home_dir(), 'monitors', schedule)}")
        print(f"monitor job graph: {studio.url(home_dir(), 'jobs', job['name'])}")
        print("(open them with `make studio`)")
    return r.returncode


if __name__ == "__main__":
    raise SystemExit(main())
