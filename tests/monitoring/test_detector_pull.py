"""`monitoring.detectors.pull` against a real sqlite MLflow store: aliased versions' `detector/` artifacts
land in `<out>/<model>/<version>/`, the layout the drift service scans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from monitoring.detectors.pull import PullError, main, pull

MODEL = "conversion-sklearn"


def _version(client: MlflowClient, experiment_id: str, tmp: Path, detector: dict | None) -> str:
    """A registered version whose run logged `detector/detector.json` (unless detector is None)."""
    run = client.create_run(experiment_id)
    if detector is not None:
        folder = tmp / run.info.run_id
        folder.mkdir()
        (folder / "detector.json").write_text(json.dumps(detector))
        (folder / "reference.npy").write_bytes(b"\x00" * 8)
        client.log_artifacts(run.info.run_id, str(folder), artifact_path="detector")
    client.set_terminated(run.info.run_id)
    source = f"runs:/{run.info.run_id}/model"
    return str(client.create_model_version(MODEL, source, run_id=run.info.run_id).version)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """Versions 1 (champion), 2 (challenger) and 3 (no detector, alias `broken`) of one model."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("pull", artifact_location=(root / "artifacts").as_uri())
    client.create_registered_model(MODEL)
    staging = root / "staging"
    staging.mkdir()
    versions = {
        "champion": _version(client, experiment_id, staging, {"model": MODEL, "kind": "champion"}),
        "challenger": _version(client, experiment_id, staging, {"model": MODEL, "kind": "challenger"}),
        "broken": _version(client, experiment_id, staging, None),
    }
    for alias, version in versions.items():
        client.set_registered_model_alias(MODEL, alias, version)
    return uri, versions


def test_each_alias_lands_in_model_and_version_folders(registry, tmp_path):
    uri, versions = registry
    pulled = pull([MODEL], ["champion", "challenger"], tmp_path, tracking_uri=uri)
    assert [(p.model, p.version, p.aliases) for p in pulled] == [
        (MODEL, versions["champion"], ("champion",)),
        (MODEL, versions["challenger"], ("challenger",)),
    ]
    for alias in ("champion", "challenger"):
        folder = tmp_path / MODEL / versions[alias]
        assert json.loads((folder / "detector.json").read_text())["kind"] == alias
        assert (folder / "reference.npy").stat().st_size == 8
    # Only the version folders: no scratch folders left beside them for the drift service to trip on.
    assert sorted(p.name for p in (tmp_path / MODEL).iterdir()) == sorted(
        [versions["champion"], versions["challenger"]]
    )


def test_a_version_with_two_aliases_is_pulled_once(registry, tmp_path):
    uri, versions = registry
    pulled = pull([MODEL], ["champion", "champion"], tmp_path, tracking_uri=uri)
    assert [(p.version, p.aliases) for p in pulled] == [(versions["champion"], ("champion", "champion"))]


def test_a_repull_replaces_the_old_contents(registry, tmp_path):
    uri, versions = registry
    stale = tmp_path / MODEL / versions["champion"]
    stale.mkdir(parents=True)
    (stale / "detector.json").write_text('{"kind": "stale"}')
    (stale / "leftover.txt").write_text("from an older pull")
    pull([MODEL], ["champion"], tmp_path, tracking_uri=uri)
    assert json.loads((stale / "detector.json").read_text())["kind"] == "champion"
    assert not (stale / "leftover.txt").exists()


def test_unset_aliases_and_unknown_models_are_skipped(registry, tmp_path):
    uri, versions = registry
    pulled = pull([MODEL, "never-registered"], ["champion", "canary"], tmp_path, tracking_uri=uri)
    assert [(p.model, p.version) for p in pulled] == [(MODEL, versions["champion"])]


def test_a_version_without_a_detector_is_an_error_naming_it(registry, tmp_path):
    uri, versions = registry
    with pytest.raises(PullError, match=rf"^{MODEL} version {versions['broken']}: "):
        pull([MODEL], ["broken"], tmp_path, tracking_uri=uri)
    assert not (tmp_path / MODEL / versions["broken"]).exists()


def test_entry_point_fails_when_nothing_was_pulled(registry, tmp_path, capsys, monkeypatch):
    uri, _ = registry
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    argv = ["--model", "never-registered", "--alias", "champion", "--out", str(tmp_path)]
    assert main(argv) == 1
    assert "no version of never-registered has alias champion" in capsys.readouterr().err
    argv = ["--model", MODEL, "--alias", "champion", "--alias", "challenger", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert len(list(tmp_path.rglob("detector.json"))) == 2
