"""`make new-project`: bad input writes nothing; a churn classifier from a CSV of its own
validates, trains, registers `churn-model`, serves on `churn`, and passes its own tests.

The generated repository reuses this venv (a `.venv` symlink; `make -o .venv/.installed`
skips setup) with PYTHONPATH on its own copy of the engine, as a user's first run would use
a venv of its own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
NAMES = yaml.safe_load((ROOT / "newproject" / "names.yml").read_text())
VENV = Path(sys.prefix)
# Where "diabetes" may still appear in a project made from other data: the engine's
# benchmarks (copied unchanged), the guide that says where the names came from, and the
# endpoint tests' fixture model (scikit-learn's bundled diabetes set).
ALLOWED = ("bench/", "docs/bring-your-own-code.md", "tests/online_support.py")
# Where this repository's own tests live, in the template and so in a generated project.
PROJECT_TESTS = "tests/e2e/project"


def churn_csv(path: Path, rows: int = 300) -> Path:
    """A small binary-label data set: churn grows with charges and support calls."""
    rng = np.random.default_rng(7)
    tenure = rng.integers(1, 72, rows)
    charges = rng.uniform(20, 120, rows).round(2)
    calls = rng.poisson(2, rows)
    contract = rng.choice([1, 12, 24], rows)
    logit = -0.04 * tenure + 0.02 * charges + 0.5 * calls - 0.05 * contract - 1.0
    churned = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(
        {
            "tenure": tenure,
            "monthly_charges": charges,
            "support_calls": calls,
            "contract_months": contract,
            "churned": churned,
        }
    )
    frame.to_csv(path, index=False)
    return path


def make(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 900):
    return subprocess.run(
        ["make", "-o", ".venv/.installed", *args],
        cwd=cwd,
        env=env or os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tracked_text(root: Path) -> dict[str, str]:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    out = {}
    for name in files:
        try:
            out[name] = (root / name).read_text()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            pass
    return out


def test_every_declared_literal_occurs_in_the_repository() -> None:
    """A renamed file or name would otherwise silently keep the old name in new projects."""
    files = tracked_text(ROOT)
    for path_glob, entries in NAMES["files"].items():
        assert path_glob in files, f"newproject/names.yml: no file {path_glob}"
        for literal in entries:
            assert literal in files[path_glob], f"names.yml: {literal[:40]!r} not in {path_glob}"
    for literal in NAMES["names"]:
        assert any(literal in text or literal in path for path, text in files.items()), literal


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["NAME=Churn"], "NAME='Churn': must be 3-24 characters of lowercase"),
        (["NAME=ch"], "NAME='ch'"),
        (["NAME=churn_model"], "NAME='churn_model'"),
        (["NAME=1churn"], "NAME='1churn'"),
        (["NAME=churn-"], "NAME='churn-'"),
        (["NAME=a-name-far-too-long-for-azure"], "NAME='a-name-far-too-long-for-azure'"),
        (["NAME=churn", "DATA=missing.csv", "TARGET=churned"], "DATA=missing.csv: no such file"),
        (["NAME=churn", "DATA={csv}", "TARGET=label"], "TARGET='label': not a column of"),
        (["NAME=churn", "DATA={csv}"], "TARGET: required with DATA"),
        (["NAME=churn", "TASK=classification"], "TASK=classification: the diabetes data"),
        (["NAME=churn", "TASK=ranking"], "TASK='ranking'"),
        (["NAME=churn", "DEST={full}"], "exists and is not an empty folder"),
    ],
)
def test_bad_input_exits_2_names_the_problem_and_writes_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    csv = churn_csv(tmp_path / "churn.csv", rows=20)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    dest = tmp_path / "out" / "churn"
    values = [a.format(csv=csv, full=full) for a in args]
    if not any(v.startswith("DEST=") for v in values):
        values.append(f"DEST={dest}")
    before = sorted(p.name for p in tmp_path.iterdir())
    done = make(ROOT, "new-project", *values, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no DEST, no temp folder
    assert [p.name for p in full.iterdir()] == ["keep.txt"]


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory):
    """make new-project NAME=churn TASK=classification DATA=<csv> TARGET=churned."""
    tmp = tmp_path_factory.mktemp("byoc")
    csv = churn_csv(tmp / "customers.csv")
    dest = tmp / "churn"
    done = make(
        ROOT,
        "new-project",
        "NAME=churn",
        f"DEST={dest}",
        "TASK=classification",
        f"DATA={csv}",
        "TARGET=churned",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (dest / ".venv").symlink_to(VENV)
    env = {**os.environ, "PYTHONPATH": str(dest)}
    for var in ("AMLOCAL_HOME", "MLFLOW_TRACKING_URI"):
        env.pop(var, None)
    yield dest, csv, env
    subprocess.run(
        [str(VENV / "bin" / "amlocal"), "online-endpoint", "delete", "-n", "churn", "--yes",
         "-o", "none"],
        cwd=dest, env=env, capture_output=True, timeout=120,
    )  # fmt: skip


def test_churn_project_is_one_commit_with_its_own_names(churn) -> None:
    dest, csv, _ = churn
    log = subprocess.run(["git", "log", "--oneline"], cwd=dest, capture_output=True, text=True)
    assert len(log.stdout.splitlines()) == 1
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=dest, capture_output=True, text=True
    )
    assert status.stdout.strip() in ("", "?? .venv")
    assert (dest / "data" / "churn.csv").read_bytes() == csv.read_bytes()
    assert yaml.safe_load((dest / "data" / "churn.yml").read_text())["name"] == "churn"
    pipeline = yaml.safe_load((dest / "pipelines" / "train.yml").read_text())
    assert pipeline["experiment_name"] == "churn-train"
    assert pipeline["inputs"]["task"] == "classification"
    assert pipeline["inputs"]["model_name"] == "churn-model"
    assert pipeline["inputs"]["data"]["path"] == "azureml:churn:1"
    component = yaml.safe_load((dest / "components" / "prep_data.yml").read_text())
    assert component["name"] == "churn_prep_data"
    assert not list(dest.rglob("*digits*")), "digits left out without EXAMPLES=digits"
    # The engine is the template's, byte for byte.
    for path in (ROOT / "amlocal").rglob("*.py"):
        assert (dest / path.relative_to(ROOT)).read_bytes() == path.read_bytes(), path
    stray = [
        f"{path}: {line.strip()[:80]}"
        for path, text in tracked_text(dest).items()
        if not path.startswith(ALLOWED)
        for line in text.splitlines()
        if re.search("diabetes", line, re.IGNORECASE)
    ]
    assert not stray, "\n".join(stray)


def test_churn_project_validates_trains_registers_and_serves(churn) -> None:
    dest, csv, env = churn
    done = make(dest, "validate", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    done = make(dest, "train", env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Status: Completed" in done.stdout + done.stderr
    amlocal = str(VENV / "bin" / "amlocal")

    def cli(*args: str) -> str:
        out = subprocess.run([amlocal, *args], cwd=dest, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert json.loads(cli("model", "list", "-n", "churn-model", "-o", "json"))
    # A request built from the CSV's own columns, as records.
    frame = pd.read_csv(csv)
    records = frame.drop(columns=["churned"]).head(4).to_dict(orient="records")
    request = dest / "request.json"
    request.write_text(json.dumps({"data": records}))
    answer = json.loads(
        json.loads(cli("online-endpoint", "invoke", "-n", "churn", "-r", str(request)))
    )
    assert len(answer) == 4 and set(answer) <= {0, 1}


def test_churn_project_fast_tests_pass_and_contracts_name_a_broken_train(churn) -> None:
    dest, _, env = churn
    fast = [
        f"{PROJECT_TESTS}/{name}"
        for name in ("test_contracts.py", "test_env_pins.py", "test_batch_yaml.py")
    ]
    pytest_cmd = [str(VENV / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run([*pytest_cmd, *fast], cwd=dest, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:]
    # A user's train_lib.py that forgets the MLflow model format: the contract test says so.
    lib = dest / "src" / "train" / "train_lib.py"
    lib.write_text(
        lib.read_text()
        + "\n\ndef save_model(model, x_example, output_dir):  # a user's replacement\n"
        + "    import pickle\n\n"
        + "    (output_dir / 'model.pkl').write_bytes(pickle.dumps(model))\n"
    )
    done = subprocess.run(
        [*pytest_cmd, f"{PROJECT_TESTS}/test_contracts.py", "-k", "train"],
        cwd=dest, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-4000:]
    assert "train: the `model` output holds no MLflow model (MLmodel)" in done.stdout


def test_default_project_with_a_hyphenated_name_and_digits_is_valid(
    tmp_path: Path,
) -> None:
    """Without DATA: the diabetes data under the new names; `-` becomes `_` where Python and
    component names need it, and every file still parses; EXAMPLES=digits keeps digits."""
    dest = tmp_path / "churn-risk"
    done = make(ROOT, "new-project", "NAME=churn-risk", f"DEST={dest}", "EXAMPLES=digits",
                env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (dest / "data" / "churn-risk.csv").read_bytes() == (
        ROOT / "data" / "diabetes.csv"
    ).read_bytes()
    assert (dest / PROJECT_TESTS / "test_churn_risk_prep.py").is_file()
    assert (dest / "endpoints" / "online" / "churn-risk" / "endpoint.yml").is_file()
    component = yaml.safe_load((dest / "components" / "train_model.yml").read_text())
    assert component["name"] == "churn_risk_train_model"
    assert (dest / "pipelines" / "train-digits.yml").is_file()
    assert len(list((dest / "data" / "digits").rglob("*.png"))) == len(
        list((ROOT / "data" / "digits").rglob("*.png"))
    )
    for path in dest.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    (dest / ".venv").symlink_to(VENV)
    done = make(dest, "validate", env={**os.environ, "PYTHONPATH": str(dest)})
    assert done.returncode == 0, done.stdout + done.stderr
