"""The digits batch endpoint end to end through the real CLI in a temporary workspace: a digits
model (trained here with the pipeline's own train_lib, on images that exclude the sample
folder) is registered, endpoints/batch/digits/ is created, the committed data asset
data/digits-batch is scored, and predictions.csv (file, label, probability per image) equals
the model's in-process predictions. Images of any size and colour work as online; an
undecodable file fails the job naming it. The sample folder is what its generator selects.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_support import Project
from PIL import Image

from amlocal import loader
from tests.batch_support import ROOT, assert_no_processes

BATCH = ROOT / "endpoints" / "batch" / "digits"
DIGITS = ROOT / "data" / "digits"
SAMPLE = ROOT / "data" / "digits-batch"
MODEL_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json
name: digits-model
type: mlflow_model
path: ./model
"""
COLUMNS = ["file", "label", "probability"]


def _load(path: Path, name: str) -> ModuleType:
    """A source file as a module under a unique name, with its folder importable (for
    digits_image, which prep takes from src/shared/ by additional_includes); other tests
    import same-named modules from other folders."""
    folders = [str(path.parent), str(ROOT / "src" / "shared")]
    sys.path[:0] = folders
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        for folder in folders:
            sys.path.remove(folder)


def _truth() -> dict[str, int]:
    """File name -> true label, from data/digits/<label>/<name>."""
    return {p.name: int(p.parent.name) for p in DIGITS.glob("*/*.png")}


# -- no workspace needed ----------------------------------------------------------------------
def test_sample_folder_is_what_its_generator_selects() -> None:
    make = _load(ROOT / "data" / "make_digits_batch.py", "make_digits_batch_t")
    picked = make.selection()
    assert sorted(p.name for p in SAMPLE.iterdir()) == sorted(p.name for p in picked)
    assert {int(p.parent.name) for p in picked} == set(range(10))
    for p in picked:
        assert (SAMPLE / p.name).read_bytes() == p.read_bytes(), p.name


def test_data_asset_validates() -> None:
    path = ROOT / "data" / "digits-batch.yml"
    data = loader.load("data", path)
    loader.validate(data, path)
    assert data.type == "uri_folder" and (path.parent / data.path).resolve() == SAMPLE


def test_run_names_an_undecodable_file(
    model: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: run() raises with the file's name, which the executor logs."""
    scorer = _load(ROOT / "src" / "batch_digits" / "batch_score.py", "batch_digits_score_t")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model["dir"]))
    monkeypatch.setattr(sys, "argv", ["batch_score.py"])  # init() parses known arguments
    scorer.init()
    good = sorted(SAMPLE.glob("*.png"))[:2]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    out = scorer.run([str(p) for p in good])
    assert list(out.columns) == COLUMNS and list(out["file"]) == [p.name for p in good]
    with pytest.raises(ValueError, match=r"broken\.png: cannot decode image"):
        scorer.run([str(good[0]), str(bad)])


# -- the model and the workspace --------------------------------------------------------------
@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Logistic regression trained as the pipeline's trial does (train_lib.build and
    save_model), on every third image outside the sample folder, so the sample is unseen."""
    prep = _load(ROOT / "src" / "prep_digits" / "prep_lib.py", "digits_prep_lib_t")
    train = _load(ROOT / "src" / "train_digits" / "train_lib.py", "digits_train_lib_t")
    frame, _ = prep.load_frame(DIGITS)
    sample = {p.name for p in SAMPLE.iterdir()}
    frame = frame[~frame["file"].str.split("/").str[-1].isin(sample)].iloc[::3]
    x = frame[prep.FEATURES].astype("float64")
    estimator = train.build("logistic_regression", 1.0, 5, 0).fit(x, frame[prep.TARGET])
    dest = tmp_path_factory.mktemp("digits-model") / "model"
    train.save_model(estimator, x, dest)
    return {"dir": dest, "estimator": estimator, "prep": prep}


def in_process(model: dict[str, Any], files: list[Path]) -> pd.DataFrame:
    """What the deployment should write, computed here with prep's copy of the image code."""
    prep = model["prep"]
    x = pd.DataFrame(
        np.vstack([prep.features_from_bytes(f.read_bytes()) for f in files]),
        columns=prep.FEATURES,
    )
    proba = model["estimator"].predict_proba(x)
    return pd.DataFrame(
        {
            "file": [f.name for f in files],
            "label": model["estimator"].classes_[proba.argmax(axis=1)],
            "probability": proba.max(axis=1),
        }
    )


@pytest.fixture(scope="module")
def ws(model: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    project = Project(tmp_path_factory.mktemp("digits-batch"))
    try:
        for args in (
            ("environment", "create", "-f", str(ROOT / "environments/digits-score.yml")),
            ("data", "create", "-f", str(ROOT / "data/digits-batch.yml")),
            ("batch-endpoint", "create", "-f", str(BATCH / "endpoint.yml")),
        ):
            project.run(*args, "-o", "none")
        shutil.copytree(model["dir"], project.root / "model")
        project.write("model.yml", MODEL_YML)
        project.run("model", "create", "-f", "model.yml", "-o", "none")
        project.run(
            "batch-deployment", "create", "-f", str(BATCH / "deployment.yml"), "--set-default"
        )
        yield project
    finally:
        project.run("batch-endpoint", "delete", "-n", "digits-batch", "--yes", check=False)
        assert_no_processes(project.home)


def invoke(project: Project, *args: str) -> tuple[dict[str, Any], str]:
    """`batch-endpoint invoke` then `job stream`: the finished job record and its log."""
    job = project.json("batch-endpoint", "invoke", "-n", "digits-batch", *args)
    assert job["type"] == "parallel", job
    # `job stream` prints the log on stdout, as az ml's does; the record comes from `job show`.
    r = project.run("job", "stream", "-n", job["name"], check=False)
    return project.json("job", "show", "-n", job["name"]), r.stdout + r.stderr


def download(project: Project, name: str, dest: Path) -> pd.DataFrame:
    project.run("job", "download", "-n", name, "--output-name", "score", "-p", str(dest))
    return pd.read_csv(dest / "named-outputs" / "score" / "predictions.csv", names=COLUMNS)


def test_records(ws: Project) -> None:
    ep = ws.json("batch-endpoint", "show", "-n", "digits-batch")
    assert ep["defaults"] == {"deployment_name": "images"} and ep["auth_mode"] == "aad_token"
    dep = ws.json("batch-deployment", "show", "-e", "digits-batch", "-n", "images")
    assert dep["model"] == "azureml:digits-model:1" and dep["type"] == "model"
    assert dep["settings"]["output_action"] == "append_row"


def test_data_asset_is_classified_like_in_process(ws: Project, model: dict[str, Any]) -> None:
    job, log = invoke(ws, "--input", "azureml:digits-batch:1")
    assert job["status"] == "Completed", log
    assert "mini-batches 2/2" in log and "12 rows" in log
    shown = ws.json("job", "show", "-n", job["name"])
    assert shown["status"] == "Completed"
    got = download(ws, job["name"], ws.root / "dl-asset")
    want = in_process(model, sorted(SAMPLE.glob("*.png")))
    pd.testing.assert_frame_equal(got, want, check_dtype=False, atol=1e-6)
    # A model never trained on these images still gets (nearly) all of them right.
    truth = _truth()
    assert sum(int(r.label) == truth[r.file] for r in got.itertuples()) >= 10


def test_any_size_and_colour_and_a_broken_file(ws: Project, model: dict[str, Any]) -> None:
    """A folder path (not an asset) of big colour JPEGs scores as the originals; adding an
    undecodable file fails the job (error_threshold: 0) with the file's name."""
    folder = ws.root / "photos"
    folder.mkdir()
    originals = sorted(SAMPLE.glob("*.png"))[:4]
    for f in originals:
        big = Image.open(f).resize((96, 96), Image.NEAREST).convert("RGB")
        buf = io.BytesIO()
        big.save(buf, format="JPEG", quality=95)
        (folder / f"{f.stem}.jpg").write_bytes(buf.getvalue())
    job, log = invoke(ws, "--input", str(folder), "--input-type", "uri_folder")
    assert job["status"] == "Completed", log
    got = download(ws, job["name"], ws.root / "dl-photos")
    want = in_process(model, originals)
    assert list(got["label"]) == list(want["label"])
    assert list(got["file"]) == [f"{f.stem}.jpg" for f in originals]

    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    job, log = invoke(ws, "--input", str(folder), "--mini-batch-size", "1")
    assert job["status"] == "Failed", log
    message = job["error"]["message"]
    assert "broken.png" in message and "error_threshold" in message
    assert "cannot decode image" in log
