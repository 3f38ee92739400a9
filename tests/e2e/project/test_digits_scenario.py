"""The digits scenario end to end: `pipelines/train-digits.yml` runs through the real CLI in a
temporary workspace (prep -> sweep -> evaluate -> register -> deploy), then the deployed
endpoint classifies held-out images at the accuracy evaluate reported, base64 and URL
inputs agree (URLs served by a local http.server), and bad input gets a 400 naming it.

The sweep is cut to 2 trials with `--set` to keep the test short; the full sweep is the same
code path with more trials.
"""

from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.online_support import descendants_alive

REPO = Path(__file__).resolve().parents[3]
DIGITS = REPO / "data" / "digits"
ONLINE = REPO / "endpoints" / "online" / "digits"
sys.path.insert(0, str(REPO / "src" / "score_digits"))
import digits_image  # noqa: E402

sys.path.remove(str(REPO / "src" / "score_digits"))


def test_image_code_is_identical_in_prep_score_and_batch() -> None:
    """Training, online and batch scoring must turn an image into features the same way."""
    prep = (REPO / "src" / "shared" / "digits_image.py").read_bytes()  # prep's, by include
    for copy in ("score_digits", "batch_digits"):
        assert (REPO / "src" / copy / "digits_image.py").read_bytes() == prep, copy


def test_any_size_colour_and_polarity_gives_the_same_features() -> None:
    png = (DIGITS / "3" / "0003.png").read_bytes()
    base = digits_image.features_from_bytes(png)
    assert base.shape == (64,) and 0 <= base.min() and base.max() <= 16
    small = Image.open(io.BytesIO(png))
    for variant in (
        small.resize((80, 80), Image.NEAREST).convert("RGB"),  # bigger, colour
        Image.eval(small, lambda v: 255 - v),  # light ink on dark
        _pad(small.resize((40, 40), Image.NEAREST), 120),  # small digit in a big canvas
    ):
        buf = io.BytesIO()
        variant.save(buf, format="JPEG" if variant.mode == "RGB" else "BMP", quality=95)
        got = digits_image.features_from_bytes(buf.getvalue())
        assert np.abs(got - base).mean() < 1.0


def test_undecodable_bytes_raise_image_error() -> None:
    with pytest.raises(digits_image.ImageError, match="cannot decode"):
        digits_image.features_from_bytes(b"not an image")


def test_sample_requests_are_the_encoder_output_for_a_real_seven() -> None:
    """The shipped requests stay reproducible with the shipped encoder (and stay a 7)."""
    encoder = ONLINE / "encode_image.py"
    seven = str(DIGITS / "7" / "0007.png")
    for name, flags in (("sample-request.json", []), ("sample-request-data.json", ["--data"])):
        out = subprocess.run(
            [sys.executable, str(encoder), *flags, seven], capture_output=True, check=True
        )
        assert out.stdout == (ONLINE / name).read_bytes(), name


def _pad(img: Image.Image, side: int) -> Image.Image:
    canvas = Image.new("L", (side, side), 255)
    canvas.paste(img, (side // 3, side // 5))
    return canvas


# -- the pipeline and the endpoint ------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("digits") / ".amlocal"
    # The URL tests serve images from 127.0.0.1 and a file under data/digits: both need the
    # scoring script's opt-in settings (refused by default), which the instances inherit.
    reach = {"DIGITS_ALLOW_PRIVATE_URLS": "1", "DIGITS_FILE_ROOT": str(DIGITS)}
    env = {**os.environ, "AMLOCAL_HOME": str(home), **reach}
    env.pop("MLFLOW_TRACKING_URI", None)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "amlocal.cli", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    saved = {k: os.environ.get(k) for k in ("AMLOCAL_HOME", "MLFLOW_TRACKING_URI", *reach)}
    try:
        for args in (
            ("data", "create", "-f", "data/digits.yml"),
            *(("environment", "create", "-f", f"environments/{e}.yml") for e in ENVS),
        ):
            r = cli(*args, "-o", "none")
            assert r.returncode == 0, r.stderr
        r = cli(
            "job",
            "create",
            "-f",
            "pipelines/train-digits.yml",
            "--stream",
            "--set",
            "jobs.sweep.limits.max_total_trials=2",
        )
        assert r.returncode == 0, r.stdout + r.stderr
        job = json.loads(r.stdout)
        steps = {
            c["display_name"]: c
            for c in json.loads(cli("job", "list", "--parent-job-name", job["name"]).stdout or "[]")
        }
        os.environ["AMLOCAL_HOME"] = str(home)
        os.environ.update(reach)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        yield {"home": home, "job": job, "steps": steps, "cli": cli}
    finally:
        cli("online-endpoint", "delete", "-n", "digits", "--yes", "-o", "none")
        leftovers = descendants_alive(str(home))
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        assert leftovers == []


ENVS = ("digits-train", "digits-score", "train")


def _output(step: dict[str, Any], name: str) -> Path:
    return Path(step["outputs"][name]["local_path"])


def _invoke(trained: dict[str, Any], body: Any) -> tuple[int, Any]:
    from amlocal.endpoints.verbs import online_endpoint
    from amlocal.workspace import Workspace

    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, _, data = online_endpoint.invoke(Workspace(trained["home"]), "digits", raw)
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data.decode("utf-8", "replace")


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_pipeline_trains_registers_and_deploys(trained: dict[str, Any]) -> None:
    steps = trained["steps"]
    assert {s: steps[s]["status"] for s in steps} == dict.fromkeys(
        ("prep", "sweep", "evaluate", "register", "deploy"), "Completed"
    )
    out = trained["cli"]("job", "show", "-n", steps["sweep"]["name"])
    sweep = json.loads(out.stdout)
    trials = sweep["trials"]
    assert len(trials) == 2 and trials[0]["name"] == sweep["best_trial"]
    scores = [t["val_accuracy"] for t in trials]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.9
    assert {"model_family", "C", "n_neighbors"} <= set(trials[0]["parameters"])
    decision = json.loads((_output(steps["evaluate"], "decision") / "decision.json").read_text())
    assert decision["promote"] and decision["primary_metric"] == "accuracy"
    assert {"accuracy", "macro_f1"} <= set(decision["challenger"])
    info = json.loads((_output(steps["register"], "registration") / "model_info.json").read_text())
    assert info["registered"] and info["name"] == "digits-model"
    deployed = json.loads((_output(steps["deploy"], "deployment") / "deploy_info.json").read_text())
    assert deployed["deployed"] and deployed["model"] == f"azureml:digits-model:{info['version']}"


def test_endpoint_matches_evaluated_accuracy_on_held_out_images(trained: dict[str, Any]) -> None:
    steps = trained["steps"]
    decision = json.loads((_output(steps["evaluate"], "decision") / "decision.json").read_text())
    test = pd.read_csv(_output(steps["prep"], "prepared_data") / "test.csv")
    files = [DIGITS / f for f in test["file"]]
    labels: list[int] = []
    for i in range(0, len(files), 60):
        status, answer = _invoke(trained, [{"image": _b64(p)} for p in files[i : i + 60]])
        assert status == 200, answer
        labels += [a["label"] for a in answer]
        probs = answer[0]["probabilities"]
        assert set(probs) == {str(d) for d in range(10)}
        assert abs(sum(probs.values()) - 1) < 1e-3
    accuracy = float(np.mean(np.array(labels) == test["label"].to_numpy()))
    assert accuracy == pytest.approx(decision["challenger"]["accuracy"], abs=0.01)


@pytest.fixture()
def http_root() -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(DIGITS))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_base64_url_and_file_inputs_agree(trained: dict[str, Any], http_root: str) -> None:
    picks = [DIGITS / str(d) / sorted(os.listdir(DIGITS / str(d)))[-1] for d in range(10)]
    status, by_b64 = _invoke(trained, [{"image": _b64(p)} for p in picks])
    assert status == 200, by_b64
    rel = [p.relative_to(DIGITS).as_posix() for p in picks]
    status, by_url = _invoke(trained, [{"url": f"{http_root}/{r}"} for r in rel])
    assert status == 200, by_url
    assert by_url == by_b64
    status, one = _invoke(trained, {"url": picks[0].as_uri()})
    assert status == 200 and one == by_b64[0]
    status, single = _invoke(trained, {"image": "data:image/png;base64," + _b64(picks[7])})
    assert status == 200 and single == by_b64[7]
    # the sample requests shipped with the endpoint: one base64 PNG (what a user curls and
    # the deploy step's smoke test sends), and the same image in the labels-only `data` form
    sample = json.loads((ONLINE / "sample-request.json").read_text())
    assert set(sample) == {"image"}
    status, answer = _invoke(trained, sample)
    assert status == 200 and answer["label"] == 7, answer
    assert answer["probabilities"]["7"] == max(answer["probabilities"].values())
    status, labels = _invoke(trained, json.loads((ONLINE / "sample-request-data.json").read_text()))
    assert status == 200 and labels == [7]
    assert sum(a["label"] == d for d, a in enumerate(by_b64)) >= 9


def test_bad_input_gets_a_400_naming_the_problem(trained: dict[str, Any], http_root: str) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    good = _b64(DIGITS / "1" / "0001.png")
    cases = {
        "cannot decode image": {"image": base64.b64encode(b"definitely not a png").decode()},
        "not valid base64": {"image": "***"},
        "larger than": {"image": "A" * (3 * 1024 * 1024)},
        "cannot fetch the URL": {"url": f"http://127.0.0.1:{closed}/x.png"},
        "cannot fetch the URL (": {"url": f"{http_root}/no/such.png"},
        "scheme 'ftp'": {"url": "ftp://example.com/x.png"},
        "exactly one of 'image' or 'url'": {"picture": good},
        "request[1]": [{"image": good}, {"image": "bm9wZQ=="}],
        "not valid JSON": b"{not json",
    }
    for expected, body in cases.items():
        status, answer = _invoke(trained, body)
        # the scoring script answers 400; the endpoint passes its body on with 424, as a
        # managed endpoint does for any non-200 from the model server. Never a 500.
        assert status in (400, 424), (expected, status, answer)
        assert expected in answer["message"], (expected, answer)
