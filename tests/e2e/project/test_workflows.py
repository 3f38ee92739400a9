"""Offline proof of the Azure path: .github/workflows and the scripts they run.

No machine here reaches Azure, so each script runs against tests/fakes/az, a fake `az` on
PATH that keeps Azure's state in a JSON file, records every call and answers with the JSON
the real CLI prints. Every `az ml` call the scripts make is then parsed by amlocal's parser,
which mirrors `az ml`'s flags: a typo in a flag fails here, not forty minutes into a run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from amlocal.cli import GROUPS, build_parser

ROOT = Path(__file__).resolve().parents[3]
WORKFLOWS = ROOT / ".github" / "workflows"
SCRIPTS = ROOT / "scripts"
FAKES = Path(__file__).resolve().parents[2] / "fakes"
BIN = ROOT / ".venv" / "bin"
ONLINE = "endpoints/online/diabetes"
# `az ml` calls only Azure has: amlocal has no workspace creation (computes are recorded).
AZURE_ONLY = {("workspace", "create")}


def workflow(name: str) -> dict[str, Any]:
    spec = yaml.safe_load((WORKFLOWS / name).read_text())
    spec["on"] = spec.pop(True, spec.get("on"))  # YAML 1.1 reads the key `on` as True
    return spec


def steps(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in spec["jobs"].values() for s in job.get("steps", [])]


# -- running scripts against the fake az ----------------------------------------------------
class Run:
    """One script run: its process, the az calls it made, Azure's state afterwards."""

    def __init__(self, proc: subprocess.CompletedProcess[str], tmp: Path) -> None:
        self.proc = proc
        self.code = proc.returncode
        self.output = proc.stdout + proc.stderr
        log = tmp / "az.log"
        self.calls = [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []
        state = tmp / "state.json"
        self.state = json.loads(state.read_text()) if state.exists() else {}
        out = tmp / "github_output"
        self.gh = dict(
            ln.split("=", 1) for ln in (out.read_text().splitlines() if out.exists() else [])
        )

    @property
    def resources(self) -> dict[str, Any]:
        return self.state.get("resources", {})

    def ml_calls(self, group: str | None = None, verb: str | None = None) -> list[list[str]]:
        return [
            c
            for c in self.calls
            if c[:1] == ["ml"] and group in (None, c[1]) and verb in (None, c[2])
        ]

    def traffic(self, endpoint: str) -> dict[str, int]:
        return self.resources[f"online-endpoint/{endpoint}"]["traffic"]


ALL_CALLS: list[list[str]] = []  # every az call of every run, for the parser tests


def run_script(tmp: Path, *args: str, state: dict[str, Any] | None = None, **env: str) -> Run:
    if state is not None:
        (tmp / "state.json").write_text(json.dumps(state))
    (tmp / "az.log").unlink(missing_ok=True)
    (tmp / "github_output").unlink(missing_ok=True)
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ACTIONS_ID_TOKEN", "GITHUB_", "AZURE_", "MAKE"))
        and k not in ("AML", "RESOURCE_GROUP", "WORKSPACE")
    }
    full_env = {
        **base,
        "PATH": f"{FAKES}:{BIN}:{os.environ['PATH']}",
        "FAKE_AZ_STATE": str(tmp / "state.json"),
        "FAKE_AZ_LOG": str(tmp / "az.log"),
        "GITHUB_OUTPUT": str(tmp / "github_output"),
        "AML": "az ml",
        "POLL_SECONDS": "0",
        **env,
    }
    proc = subprocess.run(
        ["bash", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120
    )
    run = Run(proc, tmp)
    ALL_CALLS.extend(run.calls)
    return run


def add_state(tmp: Path, **changes: Any) -> None:
    path = tmp / "state.json"
    state = json.loads(path.read_text())
    state.update(changes)
    path.write_text(json.dumps(state))


# -- workflows -------------------------------------------------------------------------------
ALL_WORKFLOWS = sorted(p.name for p in WORKFLOWS.glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@(v\d+|[0-9a-f]{40})$")


def test_the_three_workflows_exist() -> None:
    assert {"ci.yml", "train-deploy.yml", "batch.yml"} <= set(ALL_WORKFLOWS)


@pytest.mark.parametrize("name", ALL_WORKFLOWS)
def test_actions_are_pinned_and_nothing_runs_from_a_moving_branch(name: str) -> None:
    for step in steps(workflow(name)):
        if "uses" in step:
            assert PINNED.match(step["uses"]), f"{name}: {step['uses']} is not @vN or a SHA"
    for job_name, job in workflow(name)["jobs"].items():
        if "uses" in job:  # a reusable workflow
            assert PINNED.match(job["uses"]) or job["uses"].startswith("./"), job_name


@pytest.mark.parametrize("name", ALL_WORKFLOWS)
def test_no_stored_secret_and_scripts_named_exist(name: str) -> None:
    text = (WORKFLOWS / name).read_text()
    assert "secrets." not in text, "OIDC with repository variables: no stored secret"
    for script in re.findall(r"scripts/[\w-]+\.sh", text):
        assert (ROOT / script).is_file(), f"{name}: {script}"
    runs = " ".join(s.get("run", "") for s in steps(workflow(name)))
    for script in re.findall(r"scripts/[\w-]+\.sh", runs):
        path = ROOT / script
        assert path.is_file() and os.access(path, os.X_OK), f"{name}: {script}"


def test_scripts_are_executable_except_the_library() -> None:
    for script in SCRIPTS.glob("*.sh"):
        assert os.access(script, os.X_OK) == (script.name != "lib.sh"), script.name


def test_ci_is_offline_lint_validate_test() -> None:
    spec = workflow("ci.yml")
    assert {"pull_request", "push"} <= set(spec["on"])
    runs = [s.get("run", "") for s in steps(spec)]
    for target in ("make lint", "make validate", "make test"):
        assert target in runs
    assert spec["permissions"] == {"contents": "read"}
    assert not any("azure/login" in s.get("uses", "") for s in steps(spec))


def test_train_deploy_shape() -> None:
    spec = workflow("train-deploy.yml")
    assert spec["on"]["push"]["branches"] == ["main"] and spec["on"]["push"]["paths"]
    assert {"alpha", "enable_evaluation", "deploy"} <= set(
        spec["on"]["workflow_dispatch"]["inputs"]
    )
    assert spec["permissions"]["id-token"] == "write"
    assert spec["concurrency"]["cancel-in-progress"] is False
    assert "ENDPOINT_SUFFIX" in spec["concurrency"]["group"]
    jobs = spec["jobs"]
    assert jobs["staging"]["environment"] == "staging"
    assert jobs["production"]["environment"] == "production"
    assert jobs["production"]["needs"] == ["train", "staging"]
    for job in jobs.values():
        logins = [s for s in job["steps"] if s.get("uses", "").startswith("azure/login@")]
        assert len(logins) == 1
        assert logins[0]["with"] == {
            "client-id": "${{ vars.AZURE_CLIENT_ID }}",
            "tenant-id": "${{ vars.AZURE_TENANT_ID }}",
            "subscription-id": "${{ vars.AZURE_SUBSCRIPTION_ID }}",
        }
        assert any("az extension add --name ml" in s.get("run", "") for s in job["steps"])
    runs = " ".join(s.get("run", "") for s in steps(spec))
    assert "scripts/run-job.sh pipelines/train.yml" in runs
    # The pipeline's deploy step must target the suffixed endpoint, never the bare name.
    assert '--set "jobs.deploy.inputs.endpoint_name=$ENDPOINT"' in runs
    assert "--stream" not in runs, "polling with re-login, not --stream (OIDC expiry)"
    assert "blue-green.sh deploy" in runs and "blue-green.sh promote" in runs


def test_batch_workflow_shape() -> None:
    spec = workflow("batch.yml")
    assert spec["permissions"]["id-token"] == "write"
    assert spec["concurrency"]["cancel-in-progress"] is False
    runs = " ".join(s.get("run", "") for s in steps(spec))
    assert "scripts/batch-deploy.sh" in runs and "data/diabetes-batch" in runs
    options = spec["on"]["workflow_dispatch"]["inputs"]["deployment"]["options"]
    for option in options:
        assert (ROOT / "endpoints/batch/diabetes" / option).is_file()


def test_actionlint_with_shellcheck_passes() -> None:
    actionlint, shellcheck = shutil.which("actionlint", path=str(BIN)), BIN / "shellcheck"
    if actionlint is None or not shellcheck.exists():
        pytest.skip("actionlint/shellcheck not installed (make setup installs the dev extra)")
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.run([actionlint], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run(
        [str(shellcheck), "-x", *map(str, sorted(SCRIPTS.glob("*.sh")))],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout
    bad = ROOT / ".github" / "workflows" / "ci.yml"
    broken = bad.read_text().replace("run: make lint", "run: echo $UNQUOTED")
    proc = subprocess.run(
        [actionlint, "-"], input=broken, env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode != 0 and "SC2086" in proc.stdout, "shellcheck must see run: blocks"


# -- blue/green ------------------------------------------------------------------------------
def release(tmp: Path, model: str, **env: str) -> tuple[Run, Run | None]:
    """deploy then (if it passed) promote, as the staging and production jobs do."""
    deployed = run_script(
        tmp, "scripts/blue-green.sh", "deploy", "diabetes-t", ONLINE, model, **env
    )
    if deployed.code != 0:
        return deployed, None
    slot = deployed.gh["slot"]
    promoted = run_script(
        tmp, "scripts/blue-green.sh", "promote", "diabetes-t", ONLINE, slot,
        EXPECT_MODEL=model, **env,
    )  # fmt: skip
    return deployed, promoted


def test_first_release_creates_the_endpoint_and_serves_blue(tmp_path: Path) -> None:
    deployed, promoted = release(tmp_path, "azureml:diabetes-model:1")
    assert deployed.code == 0, deployed.output
    assert deployed.ml_calls("online-endpoint", "create")
    assert deployed.gh == {"slot": "blue", "previous": "", "model": "azureml:diabetes-model:1"}
    assert not deployed.ml_calls("online-endpoint", "update"), "deploy never touches traffic"
    smoke = deployed.ml_calls("online-endpoint", "invoke")[0]
    assert smoke[smoke.index("--deployment-name") + 1] == "blue"
    assert promoted is not None and promoted.code == 0, promoted.output
    assert promoted.traffic("diabetes-t") == {"blue": 100}
    assert promoted.resources["online-deployment/blue@diabetes-t"]["model"] == (
        "azureml:diabetes-model:1"
    )


def test_second_release_goes_to_green_then_takes_all_traffic(tmp_path: Path) -> None:
    release(tmp_path, "azureml:diabetes-model:1")
    deployed, promoted = release(tmp_path, "azureml:diabetes-model:2")
    assert deployed.gh["slot"] == "green" and deployed.gh["previous"] == "blue"
    assert deployed.traffic("diabetes-t") == {"blue": 100}, "staging leaves traffic alone"
    assert promoted is not None and promoted.code == 0, promoted.output
    assert promoted.traffic("diabetes-t") == {"green": 100, "blue": 0}
    # A third release reuses blue with `update` (the deployment exists).
    deployed, promoted = release(tmp_path, "azureml:diabetes-model:3")
    assert deployed.gh["slot"] == "blue"
    assert deployed.ml_calls("online-deployment", "update")
    assert promoted is not None and promoted.traffic("diabetes-t") == {"blue": 100, "green": 0}


@pytest.mark.parametrize(
    "answer",
    ["[1.0]", "[1.0, NaN]", '["a", "b"]', "not json", {"fail": "(424) model init failed"}],
    ids=["too-few-rows", "nan", "strings", "not-json", "http-error"],
)
def test_failed_smoke_test_leaves_traffic_untouched(tmp_path: Path, answer: Any) -> None:
    release(tmp_path, "azureml:diabetes-model:1")
    add_state(tmp_path, responses={"green": answer})
    deployed, promoted = release(tmp_path, "azureml:diabetes-model:2")
    assert deployed.code == 1, deployed.output
    assert promoted is None
    assert "traffic left unchanged (blue=100)" in deployed.output
    assert not deployed.ml_calls("online-endpoint", "update")
    assert deployed.traffic("diabetes-t") == {"blue": 100}
    if isinstance(answer, dict):
        assert deployed.ml_calls("online-deployment", "get-logs"), "logs shown on failure"


def test_live_check_failure_after_the_shift_rolls_back(tmp_path: Path) -> None:
    release(tmp_path, "azureml:diabetes-model:1")
    deployed = run_script(
        tmp_path,
        "scripts/blue-green.sh",
        "deploy",
        "diabetes-t",
        ONLINE,
        "azureml:diabetes-model:2",
    )
    assert deployed.code == 0
    add_state(tmp_path, responses={"green": "[1.0]"})  # breaks between staging and approval
    promoted = run_script(
        tmp_path, "scripts/blue-green.sh", "promote", "diabetes-t", ONLINE, "green"
    )
    assert promoted.code == 1, promoted.output
    assert "rolled back to blue" in promoted.output
    updates = [c[c.index("--traffic") + 1] for c in promoted.ml_calls("online-endpoint", "update")]
    assert updates == ["green=100 blue=0", "blue=100 green=0"]
    assert promoted.traffic("diabetes-t") == {"blue": 100, "green": 0}


def test_a_model_already_live_is_not_deployed_again(tmp_path: Path) -> None:
    """The pipeline's deploy step may have released the version already (or this is a
    rerun): staging and production then change nothing."""
    release(tmp_path, "azureml:diabetes-model:1")
    deployed, promoted = release(tmp_path, "azureml:diabetes-model:1")
    assert deployed.code == 0 and deployed.gh["slot"] == "blue", deployed.output
    assert not deployed.ml_calls("online-deployment", "create")
    assert not deployed.ml_calls("online-deployment", "update")
    assert promoted is not None and promoted.code == 0
    assert not promoted.ml_calls("online-endpoint", "update")
    assert promoted.traffic("diabetes-t") == {"blue": 100}


def test_promote_refuses_a_slot_whose_model_changed(tmp_path: Path) -> None:
    release(tmp_path, "azureml:diabetes-model:1")
    run_script(
        tmp_path,
        "scripts/blue-green.sh",
        "deploy",
        "diabetes-t",
        ONLINE,
        "azureml:diabetes-model:2",
    )
    promoted = run_script(
        tmp_path, "scripts/blue-green.sh", "promote", "diabetes-t", ONLINE, "green",
        EXPECT_MODEL="azureml:diabetes-model:9",
    )  # fmt: skip
    assert promoted.code == 1 and "not the approved" in promoted.output
    assert not promoted.ml_calls("online-endpoint", "update")


def test_canary_stage_before_full_traffic(tmp_path: Path) -> None:
    release(tmp_path, "azureml:diabetes-model:1")
    _, promoted = release(tmp_path, "azureml:diabetes-model:2", CANARY_PERCENT="10")
    assert promoted is not None and promoted.code == 0, promoted.output
    updates = [c[c.index("--traffic") + 1] for c in promoted.ml_calls("online-endpoint", "update")]
    assert updates == ["blue=90 green=10", "green=100 blue=0"]


def test_workspace_flags_are_passed_when_given(tmp_path: Path) -> None:
    deployed, _ = release(tmp_path, "azureml:diabetes-model:1", RESOURCE_GROUP="rg", WORKSPACE="ws")
    for call in deployed.ml_calls():
        assert call[-4:] == ["--resource-group", "rg", "--workspace-name", "ws"], call


# -- training job ------------------------------------------------------------------------------
def test_run_job_polls_until_completed(tmp_path: Path) -> None:
    run = run_script(
        tmp_path,
        "scripts/run-job.sh",
        "pipelines/train.yml",
        "--set",
        "inputs.alpha=0.5",
        state={"job_statuses": ["Queued", "Running", "Running", "Completed"]},
    )
    assert run.code == 0, run.output
    assert run.gh == {"job_name": "job-1", "status": "Completed"}
    create = run.ml_calls("job", "create")[0]
    assert "--stream" not in create and "inputs.alpha=0.5" in create
    assert len(run.ml_calls("job", "show")) >= 4


def test_run_job_fails_when_the_job_fails(tmp_path: Path) -> None:
    run = run_script(
        tmp_path, "scripts/run-job.sh", "pipelines/train.yml", state={"job_statuses": ["Failed"]}
    )
    assert run.code == 1 and "ended Failed" in run.output
    assert run.gh["status"] == "Failed"


def test_run_job_cancels_a_job_that_outlives_the_limit(tmp_path: Path) -> None:
    run = run_script(
        tmp_path,
        "scripts/run-job.sh",
        "pipelines/train.yml",
        state={"job_statuses": ["Running"]},
        MAX_WAIT_SECONDS="-1",
    )
    assert run.code == 1 and run.ml_calls("job", "cancel")
    assert run.state["jobs"]["job-1"]["canceled"] is True


OIDC_ENV = {
    "ACTIONS_ID_TOKEN_REQUEST_URL": "https://token.example/oidc?x=1",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token",
    "AZURE_CLIENT_ID": "cid",
    "AZURE_TENANT_ID": "tid",
    "AZURE_SUBSCRIPTION_ID": "sid",
}


def test_token_expiry_while_polling_logs_in_again_and_goes_on(tmp_path: Path) -> None:
    """AADSTS700024 mid-poll (the OIDC failure of long runs): fresh GitHub token, az login
    with it, and the poll continues to the job's real end."""
    run = run_script(
        tmp_path,
        "scripts/run-job.sh",
        "pipelines/train.yml",
        # The first failure hits the (optional) studio-link lookup, the second a poll.
        state={"auth_failures": 2, "job_statuses": ["Running", "Completed"]},
        **OIDC_ENV,
    )
    assert run.code == 0, run.output
    logins = [c for c in run.calls if c[:1] == ["login"]]
    assert len(logins) == 1
    assert logins[0][logins[0].index("--federated-token") + 1] == "fake-github-id-token"
    assert ["account", "set", "--subscription", "sid"] in run.calls
    curl = (tmp_path / "az.curl.log").read_text()
    assert "audience=api://AzureADTokenExchange" in curl


def test_login_is_refreshed_before_it_can_expire(tmp_path: Path) -> None:
    run = run_script(
        tmp_path,
        "scripts/run-job.sh",
        "pipelines/train.yml",
        state={"job_statuses": ["Running", "Running", "Completed"]},
        REFRESH_SECONDS="0",
        **OIDC_ENV,
    )
    assert run.code == 0, run.output
    polls = [c for c in run.ml_calls("job", "show") if "status" in c]
    assert len([c for c in run.calls if c[:1] == ["login"]]) == len(polls) >= 2


def test_no_relogin_outside_github_actions(tmp_path: Path) -> None:
    run = run_script(tmp_path, "scripts/run-job.sh", "pipelines/train.yml", REFRESH_SECONDS="0")
    assert run.code == 0 and not [c for c in run.calls if c[:1] == ["login"]]


@pytest.mark.parametrize("registered", [True, False])
def test_registered_model_reads_the_pipeline_output(tmp_path: Path, registered: bool) -> None:
    info = (
        {"registered": True, "name": "diabetes-model", "version": "7"}
        if registered
        else {"registered": False, "reason": "challenger rmse 60.1 > champion 55.0"}
    )
    state = {
        "jobs": {"job-1": {"name": "job-1", "shows": 0}},
        "job_outputs": {"registration": {"model_info.json": json.dumps(info)}},
    }
    run = run_script(tmp_path, "scripts/registered-model.sh", "job-1", state=state)
    assert run.code == 0, run.output
    if registered:
        assert run.proc.stdout.strip() == "azureml:diabetes-model:7"
        assert run.gh == {"registered": "true", "model": "azureml:diabetes-model:7"}
    else:
        assert run.proc.stdout.strip() == "" and run.gh == {"registered": "false"}
        assert "champion 55.0" in run.output


# -- batch -------------------------------------------------------------------------------------
BATCH_ARGS = (
    "scripts/batch-deploy.sh",
    "diabetes-batch-t",
    "endpoints/batch/diabetes",
    "endpoints/batch/diabetes/deployment.yml",
    "data/diabetes-batch",
)


def test_batch_deploys_scores_checks_and_sets_the_default(tmp_path: Path) -> None:
    run = run_script(tmp_path, *BATCH_ARGS, OUTPUT_DIR=str(tmp_path / "out"))
    assert run.code == 0, run.output
    assert run.ml_calls("batch-endpoint", "create") and run.ml_calls("batch-deployment", "create")
    invoke = run.ml_calls("batch-endpoint", "invoke")[0]
    assert invoke[invoke.index("--deployment-name") + 1] == "score-script"
    predictions = next((tmp_path / "out").rglob("predictions.csv"))
    assert f"442 predictions for 442 input rows in {predictions}" in run.output
    ep = run.resources["batch-endpoint/diabetes-batch-t"]
    assert ep["set"] == {"defaults.deployment_name": "score-script"}
    again = run_script(tmp_path, *BATCH_ARGS, OUTPUT_DIR=str(tmp_path / "out2"))
    assert again.code == 0 and again.ml_calls("batch-deployment", "update")
    assert not again.ml_calls("batch-endpoint", "create")


def test_batch_with_missing_predictions_keeps_the_old_default(tmp_path: Path) -> None:
    run = run_script(
        tmp_path, *BATCH_ARGS, state={"predictions_rows": 400}, OUTPUT_DIR=str(tmp_path / "o")
    )
    assert run.code == 1 and "has 400 rows, expected 442" in run.output
    assert not run.ml_calls("batch-endpoint", "update")


def test_batch_job_failure_fails_the_script(tmp_path: Path) -> None:
    run = run_script(tmp_path, *BATCH_ARGS, state={"job_statuses": ["Running", "Failed"]})
    assert run.code == 1 and "scoring job batchjob-1 ended" in run.output


# -- workspace setup ---------------------------------------------------------------------------
SETUP_ENV = {"GITHUB_REPO": "contoso/diabetes", "RESOURCE_GROUP": "rg", "WORKSPACE": "ws"}


def created(run: Run) -> list[list[str]]:
    return [c for c in run.calls if "create" in c[:4] or c[:2] == ["extension", "add"]]


def test_azure_setup_creates_everything_once(tmp_path: Path) -> None:
    first = run_script(tmp_path, "scripts/azure-setup.sh", state={}, **SETUP_ENV)
    assert first.code == 0, first.output
    res = first.resources
    assert {"group/rg", "workspace/ws", "compute/cpu-cluster", "identity/id-ws-github"} <= set(res)
    assert {
        "environment/diabetes-train:1",
        "environment/diabetes-score:3",
        "data/diabetes:1",
    } <= set(res)
    subjects = sorted(v["subject"] for k, v in res.items() if k.startswith("fic/"))
    assert subjects == [
        "repo:contoso/diabetes:environment:production",
        "repo:contoso/diabetes:environment:staging",
        "repo:contoso/diabetes:ref:refs/heads/main",
    ]
    for k, v in res.items():
        if k.startswith("fic/"):
            assert v["issuer"] == "https://token.actions.githubusercontent.com"
            assert v["audiences"] == ["api://AzureADTokenExchange"]
    roles = {(v["principal"], v["role"]) for k, v in res.items() if k.startswith("role/")}
    # GitHub's identity runs jobs and deployments; the cluster's identity runs the
    # pipeline's deploy step.
    assert roles == {
        ("pid-github", "AzureML Data Scientist"),
        ("pid-compute", "AzureML Data Scientist"),
    }
    assert "gh variable set AZURE_CLIENT_ID --body cid-github" in first.output

    second = run_script(tmp_path, "scripts/azure-setup.sh", **SETUP_ENV)
    assert second.code == 0, second.output
    assert created(second) == [], "a second run must create nothing"
    assert "done: created 0 resource(s)" in second.output
    assert second.resources == res


def test_azure_setup_requires_the_repository(tmp_path: Path) -> None:
    run = run_script(
        tmp_path, "scripts/azure-setup.sh", state={}, RESOURCE_GROUP="rg", WORKSPACE="w"
    )
    assert run.code != 0 and "GITHUB_REPO" in run.output and run.calls == []


def test_register_assets_is_idempotent(tmp_path: Path) -> None:
    first = run_script(tmp_path, "scripts/register-assets.sh", state={})
    assert first.code == 0 and first.proc.stdout.strip().splitlines()[-1] != "0"
    second = run_script(tmp_path, "scripts/register-assets.sh")
    assert second.proc.stdout.strip() == "0" and not second.ml_calls(verb="create")


# -- every az ml call parses with amlocal's parser ---------------------------------------------
def _script_call_forms() -> set[tuple[str, str]]:
    """(group, verb) of every `aml GROUP VERB` written in scripts/*.sh, including calls
    through `ensure ... aml GROUP VERB`."""
    forms = set()
    for script in SCRIPTS.glob("*.sh"):
        for group, verb in re.findall(r"\baml \"?\$?([\w-]+)\"? ([\w-]+)", script.read_text()):
            forms.add((group, verb))
    # `aml "$kind" show/create` in register-assets.sh is environment and data.
    for verb in ("show", "create"):
        if ("kind", verb) in forms:
            forms.discard(("kind", verb))
            forms |= {("environment", verb), ("data", verb)}
    return forms


def _makefile_calls() -> list[list[str]]:
    """The `$(AML) ...` commands of every Makefile target that has one, as `make -n`
    expands them with AML, the workspace and an endpoint suffix set."""
    targets, current = set(), None
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([\w-]+):", line)
        if match:
            current = match.group(1)
        elif line.startswith("\t") and "$(AML)" in line and current:
            targets.add(current)
    assert {"assets", "train"} <= targets
    proc = subprocess.run(
        ["make", "-n", *sorted(targets), "AML=AMLX", "RESOURCE_GROUP=rg", "WORKSPACE=ws",
         "ENDPOINT_SUFFIX=t", "SET=inputs.alpha=0.5"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    calls = [
        ["ml", *shlex.split(ln)[1:]] for ln in proc.stdout.splitlines() if ln.startswith("AMLX ")
    ]
    for call in calls:
        assert call[-4:] == ["--resource-group", "rg", "--workspace-name", "ws"], call
        if "-n" in call:
            assert call[call.index("-n") + 1].endswith("-t"), f"no endpoint suffix: {call}"
    return calls


def _module_present(group: str) -> bool:
    return importlib.util.find_spec(GROUPS[group][0]) is not None


@pytest.fixture(scope="module")
def recorded_calls(tmp_path_factory: pytest.TempPathFactory) -> list[list[str]]:
    """The az ml calls of one pass over every scenario (the tests above, if they ran first,
    plus a fixed tour, so this test also works alone)."""
    tmp = tmp_path_factory.mktemp("tour")
    for sub in ("bg", "job", "reg", "batch", "setup", "relogin"):
        (tmp / sub).mkdir()
    release(tmp / "bg", "azureml:diabetes-model:1")
    release(tmp / "bg", "azureml:diabetes-model:2")
    add_state(tmp / "bg", responses={"blue": {"fail": "down"}})
    release(tmp / "bg", "azureml:diabetes-model:3")
    run_script(tmp / "job", "scripts/run-job.sh", "pipelines/train.yml", "--set", "inputs.alpha=2",
               state={"job_statuses": ["Running"]}, MAX_WAIT_SECONDS="-1")  # fmt: skip
    run_script(
        tmp / "reg", "scripts/registered-model.sh", "job-1",
        state={"jobs": {"job-1": {"name": "job-1", "shows": 0}},
               "job_outputs": {"registration": {"model_info.json": '{"registered": false}'}}},
    )  # fmt: skip
    run_script(tmp / "batch", *BATCH_ARGS, OUTPUT_DIR=str(tmp / "batch" / "out"))
    run_script(tmp / "batch", *BATCH_ARGS, OUTPUT_DIR=str(tmp / "batch" / "out2"))  # update
    run_script(tmp / "setup", "scripts/azure-setup.sh", state={}, **SETUP_ENV)
    return [c for c in ALL_CALLS if c[:1] == ["ml"]] + _makefile_calls()


def test_every_az_ml_form_in_the_scripts_is_exercised(recorded_calls: list[list[str]]) -> None:
    """The fake runs reach every call written in the scripts, so the parser test below
    covers them all (a call only on an untested branch would escape it)."""
    seen = {(c[1], c[2]) for c in recorded_calls}
    missing = _script_call_forms() - seen
    assert not missing, f"az ml calls in scripts/*.sh no test runs: {sorted(missing)}"


@pytest.mark.parametrize("group", sorted(GROUPS) + ["compute"])
def test_az_ml_calls_parse_with_amlocal(group: str, recorded_calls: list[list[str]]) -> None:
    calls = [c for c in recorded_calls if c[1] == group]
    if not calls:
        pytest.skip(f"no az ml {group} call in the workflows, scripts or Makefile")
    azure_only = [c for c in calls if (c[1], c[2]) in AZURE_ONLY]
    calls = [c for c in calls if (c[1], c[2]) not in AZURE_ONLY]
    if not calls:
        pytest.skip(f"az ml {group} calls here are Azure-only setup: {azure_only[:1]}")
    if group not in GROUPS or not _module_present(group):
        pytest.skip(
            f"amlocal's {group} group ({GROUPS.get(group, ('-',))[0]}) is not written yet; "
            f"{len(calls)} call(s) unchecked"
        )
    parser = build_parser(group)
    for call in calls:
        try:
            args = parser.parse_args(call[1:])
        except SystemExit:
            pytest.fail(f"amlocal rejects: az {shlex.join(call)}")
        for flag in ("file", "request_file"):
            value = getattr(args, flag, None)
            if value:
                assert (ROOT / value).is_file(), f"az {shlex.join(call)}: {value} does not exist"


def test_the_parser_check_can_fail() -> None:
    """A misspelt flag, as in a workflow typo, is rejected by amlocal's parser."""
    parser = build_parser("online-endpoint")
    with pytest.raises(SystemExit):
        parser.parse_args(["online-endpoint", "invoke", "--name", "e", "--request-fille", "r"])
