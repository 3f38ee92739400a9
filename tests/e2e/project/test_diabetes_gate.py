"""The promotion gate: evaluate decides, register obeys, against a real SQLite MLflow registry.

Cases: no champion, better, worse, equal, evaluation off, a decision that says no, and a
registry without the alias API (Azure ML, see docs/notes-registry.md).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

ROOT = Path(__file__).resolve().parents[3]
for step in ("prep", "train", "evaluate", "register"):
    sys.path.insert(0, str(ROOT / "src" / step))

import evaluate_lib  # noqa: E402
import prep_lib  # noqa: E402
import register_lib  # noqa: E402
import train_lib  # noqa: E402

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class World:
    client: MlflowClient
    experiment_id: str
    prepared: Path
    metadata: dict[str, Any]
    good: Path  # alpha small: the better model on the test split
    bad: Path  # alpha huge: clearly worse
    fair: Path  # in between: better than bad, worse than good


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("gate")
    uri = f"sqlite:///{root}/mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        # What the platform exports; mlflow.register_model() reads it like the scripts do.
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        client = MlflowClient(uri)
        experiment_id = client.create_experiment("gate", artifact_location=str(root / "art"))
        prepared = root / "prepared"
        metadata = prep_lib.prepare(ROOT / "data" / "diabetes.csv", prepared, 0.2, 42)
        x, y = train_lib.load_split(prepared, "train.csv")
        models = {}
        for label, alpha in (("good", 0.1), ("bad", 1e4), ("fair", 3.0)):
            models[label] = root / label
            models[label].mkdir()
            train_lib.save_model(train_lib.fit(x, y, alpha), x, models[label])
        yield World(
            client, experiment_id, prepared, metadata, *(models[k] for k in ("good", "bad", "fair"))
        )


def gate(
    world: World, name: str, challenger: Path, enable: bool = True, commit: str | None = COMMIT
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One evaluate + register, each in its own run, as the pipeline does."""
    decision = evaluate_lib.evaluate(challenger, world.prepared, name, enable, world.client)
    # decision.json is the only thing that travels between the two steps: round-trip it.
    folder = Path(world.prepared.parent / f"decision-{name}-{len(versions(world, name))}")
    decision_dict = json.loads(evaluate_lib.write_decision(decision.decision, folder).read_text())
    tags = {register_lib.GIT_COMMIT_TAG: commit} if commit else {}
    run = world.client.create_run(world.experiment_id, tags=tags)
    info = register_lib.register(
        world.client, run.info.run_id, challenger, decision_dict, world.metadata, name
    )
    return decision_dict, info


def versions(world: World, name: str) -> list[str]:
    return sorted(str(v.version) for v in world.client.search_model_versions(f"name='{name}'"))


def champion_version(world: World, name: str) -> str:
    return str(world.client.get_model_version_by_alias(name, "champion").version)


def champion_tagged(world: World, name: str) -> list[str]:
    found = world.client.search_model_versions(f"name='{name}'")
    return sorted(str(v.version) for v in found if v.tags.get("champion") == "true")


def test_fixture_models_really_differ(world: World) -> None:
    x, y = evaluate_lib.load_test(world.prepared)
    good = evaluate_lib.regression_metrics(y, evaluate_lib.predict(str(world.good), x))
    bad = evaluate_lib.regression_metrics(y, evaluate_lib.predict(str(world.bad), x))
    assert good["rmse"] < bad["rmse"]


def test_no_champion_registers_first_version_with_alias_and_tags(world: World) -> None:
    decision, info = gate(world, "m-first", world.good)
    assert decision["promote"] is True and decision["champion"] is None
    assert "no champion" in decision["reasons"][0]
    assert info == {
        "registered": True,
        "name": "m-first",
        "version": "1",
        "champion_alias": True,
        "reasons": decision["reasons"],
    }
    assert champion_version(world, "m-first") == "1"
    tags = world.client.get_model_version("m-first", "1").tags
    assert tags["champion"] == "true"
    assert tags["data_sha256"] == world.metadata["data_sha256"]
    assert tags["git_commit"] == COMMIT
    assert float(tags["test_rmse"]) == pytest.approx(decision["challenger"]["rmse"], rel=1e-5)
    assert {"test_mae", "test_r2"} <= set(tags)
    # The registered artifact is a loadable MLflow model, logged under the register run.
    loaded = evaluate_lib.predict("models:/m-first/1", evaluate_lib.load_test(world.prepared)[0])
    assert len(loaded) == world.metadata["test_rows"]


def test_git_commit_falls_back_to_unknown(world: World) -> None:
    gate(world, "m-nogit", world.good, commit=None)
    assert world.client.get_model_version("m-nogit", "1").tags["git_commit"] == "unknown"


def test_better_challenger_is_registered_and_takes_the_alias(world: World) -> None:
    gate(world, "m-better", world.bad)
    decision, info = gate(world, "m-better", world.good)
    assert decision["promote"] is True
    assert decision["champion"]["version"] == "1"
    assert decision["challenger"]["rmse"] < decision["champion"]["rmse"]
    assert "better" in decision["reasons"][0]
    assert info["registered"] is True and info["version"] == "2"
    assert champion_version(world, "m-better") == "2"
    assert champion_tagged(world, "m-better") == ["2"]  # the tag moved too
    assert world.client.get_model_version("m-better", "2").tags["previous_champion_version"] == "1"


def test_worse_challenger_is_not_registered(world: World) -> None:
    gate(world, "m-worse", world.good)
    decision, info = gate(world, "m-worse", world.bad)
    assert decision["promote"] is False
    assert "worse" in decision["reasons"][0]
    assert info["registered"] is False and "worse" in info["reason"]
    assert versions(world, "m-worse") == ["1"]
    assert champion_version(world, "m-worse") == "1"


def test_equal_challenger_is_not_registered(world: World) -> None:
    gate(world, "m-equal", world.good)
    decision, info = gate(world, "m-equal", world.good)
    assert decision["challenger"]["rmse"] == decision["champion"]["rmse"]
    assert decision["promote"] is False and "equal" in decision["reasons"][0]
    assert info["registered"] is False
    assert versions(world, "m-equal") == ["1"]


def test_evaluation_off_promotes_without_comparing(world: World) -> None:
    gate(world, "m-off", world.good)
    decision, info = gate(world, "m-off", world.bad, enable=False)
    assert decision["promote"] is True and decision["evaluation_enabled"] is False
    assert decision["champion"] is None and decision["challenger"]["rmse"] > 0
    assert "evaluation disabled" in decision["reasons"][0]
    assert info["registered"] is True and versions(world, "m-off") == ["1", "2"]
    assert champion_version(world, "m-off") == "2"
    tags = world.client.get_model_version("m-off", "2").tags
    assert tags["evaluation_enabled"] == "false"
    # Registered without the gate, it still says how good it is, like any other version.
    assert float(tags["test_rmse"]) == pytest.approx(decision["challenger"]["rmse"], rel=1e-5)
    assert {"test_mae", "test_r2", "data_sha256", "test_size", "split_seed"} <= set(tags)


def _evaluated(world: World, name: str, challenger: Path) -> dict[str, Any]:
    decision = evaluate_lib.evaluate(challenger, world.prepared, name, True, world.client)
    return json.loads(json.dumps(decision.decision))


def _register(world: World, name: str, challenger: Path, decision: dict[str, Any]) -> dict:
    run = world.client.create_run(world.experiment_id)
    return register_lib.register(
        world.client, run.info.run_id, challenger, decision, world.metadata, name
    )


@pytest.mark.parametrize("better_first", [True, False])
def test_two_pipelines_at_once_crown_the_better_model(world: World, better_first: bool) -> None:
    """Both evaluate against the same champion, then register one after the other: promotion
    is a compare-and-set, so the second is judged against the champion the first crowned."""
    name = f"m-race-{better_first}"
    gate(world, name, world.bad)  # v1: the champion both pipelines compare with
    good, fair = _evaluated(world, name, world.good), _evaluated(world, name, world.fair)
    assert good["promote"] and fair["promote"]  # each beats v1
    order = [(world.good, good), (world.fair, fair)]
    if not better_first:
        order.reverse()
    first, second = (_register(world, name, model, d) for model, d in order)
    assert first["registered"] is True
    champion = str(world.client.get_model_version_by_alias(name, "champion").version)
    winner = first if better_first else second
    assert winner["registered"] is True and champion == winner["version"]
    assert champion_tagged(world, name) == [champion]
    if better_first:  # the fair model is declined against the new champion, not v1
        assert second["registered"] is False
        assert "champion moved from v1 to v2" in second["reason"], second
        assert versions(world, name) == ["1", "2"]


def test_a_champion_from_another_test_split_is_not_compared(world: World) -> None:
    name = "m-split"
    gate(world, name, world.bad)
    decision = _evaluated(world, name, world.good)
    _register(world, name, world.fair, _evaluated(world, name, world.fair))  # v2 crowned
    world.client.set_model_version_tag(name, "2", "split_seed", "7")  # as if another seed
    info = _register(world, name, world.good, decision)
    assert info["registered"] is False and "not comparable" in info["reason"]
    assert champion_tagged(world, name) == ["2"]


@pytest.mark.parametrize("promote", [False, None, "true", 1])
def test_register_obeys_a_decision_that_is_not_literally_true(world: World, promote: Any) -> None:
    name = f"m-refuse-{promote}"
    decision = {"promote": promote, "reasons": ["challenger is worse"], "challenger": {}}
    run = world.client.create_run(world.experiment_id)
    info = register_lib.register(world.client, run.info.run_id, world.good, decision, {}, name)
    assert info["registered"] is False
    assert world.client.search_registered_models(f"name='{name}'") == []
    assert world.client.list_artifacts(run.info.run_id) == []  # nothing uploaded either


def test_without_alias_api_the_champion_tag_carries_the_gate(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registry that rejects alias calls (as Azure ML's may) still gates correctly."""

    def unsupported(*args: Any, **kwargs: Any) -> None:
        raise MlflowException("alias API not supported", error_code="ENDPOINT_NOT_FOUND")

    monkeypatch.setattr(world.client, "set_registered_model_alias", unsupported)
    monkeypatch.setattr(world.client, "get_model_version_by_alias", unsupported)
    name = "m-noalias"
    _, first = gate(world, name, world.bad)
    assert first["registered"] is True and first["champion_alias"] is False
    assert champion_tagged(world, name) == ["1"]

    decision, info = gate(world, name, world.bad)  # equal: champion found through the tag
    assert decision["champion"]["version"] == "1" and info["registered"] is False

    decision, info = gate(world, name, world.good)  # better: tag moves to v2
    assert decision["promote"] is True and info["version"] == "2"
    assert champion_tagged(world, name) == ["2"]
    assert str(evaluate_lib.find_champion(world.client, name).version) == "2"


def test_find_champion_is_none_for_unknown_model(world: World) -> None:
    assert evaluate_lib.find_champion(world.client, "never-registered") is None


@pytest.mark.parametrize(
    ("challenger", "champion", "enable", "promote", "phrase"),
    [
        ({"rmse": 1.0}, None, True, True, "no champion"),
        ({"rmse": 1.0}, {"version": "3", "rmse": 2.0}, True, True, "better"),
        ({"rmse": 2.0}, {"version": "3", "rmse": 1.0}, True, False, "worse"),
        ({"rmse": 1.5}, {"version": "3", "rmse": 1.5}, True, False, "equal"),
        (None, None, False, True, "evaluation disabled"),
        ({"rmse": 9.0}, {"version": "3", "rmse": 1.0}, False, True, "evaluation disabled"),
    ],
)
def test_decide_rules(
    challenger: dict | None, champion: dict | None, enable: bool, promote: bool, phrase: str
) -> None:
    decision = evaluate_lib.decide(challenger, champion, enable)
    assert decision["promote"] is promote
    assert phrase in decision["reasons"][0]
    assert decision["primary_metric"] == "rmse"


def test_decide_reports_secondary_metrics_but_gates_on_rmse_only() -> None:
    decision = evaluate_lib.decide(
        {"rmse": 2.0, "r2": 0.9}, {"version": "1", "rmse": 1.0, "r2": 0.1}, True
    )
    assert decision["promote"] is False
    assert any(r.startswith("(info) r2") for r in decision["reasons"])


def test_decide_needs_metrics_when_evaluation_is_on() -> None:
    with pytest.raises(ValueError):
        evaluate_lib.decide(None, None, True)


def test_plots_show_the_test_points(world: World) -> None:
    result = evaluate_lib.evaluate(world.good, world.prepared, "m-plots", True, world.client)
    assert set(result.figures) == {"predicted_vs_actual.png", "residuals.png"}
    scatter = result.figures["predicted_vs_actual.png"].axes[0].collections[0]
    assert len(scatter.get_offsets()) == world.metadata["test_rows"]
    residual_ax = result.figures["residuals.png"].axes[0]
    assert "residual" in residual_ax.get_ylabel()


@pytest.mark.parametrize(("text", "expected"), [("True", True), ("false", False), ("0", False)])
def test_evaluate_parse_bool(text: str, expected: bool) -> None:
    assert evaluate_lib.parse_bool(text) is expected


# -- a crash in register (issue 32, item 6) ------------------------------------------------
class Killed(BaseException):
    """What kill -9 leaves: the step stops between two registry writes."""


def test_a_rerun_after_a_completed_but_failed_register_adds_no_version(world: World) -> None:
    """kill -9 after the registration completed (the job record says Failed), then the rerun
    with evaluate reused (the same decision.json): the same model, no second version."""
    name = "m-crash-after"
    decision = _evaluated(world, name, world.good)
    first = _register(world, name, world.good, decision)
    assert first["registered"] is True and first["version"] == "1"
    again = _register(world, name, world.good, decision)
    assert again["registered"] is True and again["version"] == "1", again
    assert versions(world, name) == ["1"]
    assert champion_version(world, name) == "1"


def test_a_rerun_after_a_kill_mid_register_finishes_the_same_version(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the version was created, before its tags and the champion alias: the
    rerun completes that version (tags, champion) instead of registering another."""
    name = "m-crash-mid"
    decision = _evaluated(world, name, world.good)

    def killed(*_: Any) -> None:
        raise Killed

    with monkeypatch.context() as mp:
        mp.setattr(world.client, "set_model_version_tag", killed)
        with pytest.raises(Killed):
            _register(world, name, world.good, decision)
    assert versions(world, name) == ["1"]
    info = _register(world, name, world.good, decision)
    assert info["registered"] is True and info["version"] == "1", info
    assert versions(world, name) == ["1"]
    assert champion_version(world, name) == "1"
    tags = world.client.get_model_version(name, "1").tags
    assert float(tags["test_rmse"]) == decision["challenger"]["rmse"]
    assert tags["data_sha256"] == world.metadata["data_sha256"]


def test_a_tie_with_a_champion_crowned_meanwhile_is_exact(world: World, tmp_path: Path) -> None:
    """Another pipeline crowned a model with exactly the challenger's test metrics since
    evaluate ran: a tie keeps the champion; the version tags hold the exact floats, so no
    rounding makes the challenger look better."""
    name = "m-exact"
    decision = _evaluated(world, name, world.good)
    twin = tmp_path / "twin"  # the same predictions, another model folder (another digest)
    import shutil

    shutil.copytree(world.good, twin)
    (twin / "note.txt").write_text("a different folder with the same model\n")
    assert _register(world, name, twin, decision)["version"] == "1"
    info = _register(world, name, world.good, decision)
    assert info["registered"] is False and "not better" in info["reason"], info
    assert versions(world, name) == ["1"]
