"""`python -m monitoring.reports` on a real sqlite MLflow store: a registered version whose run holds its
training set under `data/`, recent rows logged by the drift service (its sqlite store, read by path, and
the same rows over `GET /v1/recent`), and Evidently's drift and classification reports logged back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from monitoring.quality.store import PredictionStore
from monitoring.reports.__main__ import main, parse_args, run

MODEL = "conversion-xgboost"  # its spec is binary: prediction = P(converted)
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "sessions_7d": rng.poisson(3 + shift, rows).astype("int64"),
            "duration_s": rng.gamma(2.0, 60.0 * (1 + shift), rows),
            "plan_tier": rng.choice(["free", "pro", "team"], rows),
        }
    )


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> tuple[str, str]:
    """A registered version (alias champion) whose run has the training set as `data/training_set`."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("reports", artifact_location=(root / "artifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    training = _frame(400, seed=1).assign(converted=np.arange(400) % 2)
    training.to_parquet(root / "training_set")
    client.log_artifact(run_id, str(root / "training_set"), "data")
    client.set_terminated(run_id)
    client.create_registered_model(MODEL)
    version = client.create_model_version(MODEL, f"runs:/{run_id}/model", run_id=run_id).version
    client.set_registered_model_alias(MODEL, "champion", version)
    return uri, str(version)


def _log_rows(state: Path, version: str, frame: pd.DataFrame, labels: np.ndarray | None) -> None:
    store = PredictionStore.in_folder(state)
    at = NOW.timestamp() - 600
    rng = np.random.default_rng(3)
    for i, record in enumerate(json.loads(frame.to_json(orient="records"))):
        p1 = float(rng.random())
        store.log_request(f"ce-{i}", f"r-{i}", MODEL, version, [record], at)
        store.log_response(f"ce-{i}", f"r-{i}", MODEL, version, [[1 - p1, p1]], at)
        if labels is not None:
            store.set_labels([(f"ce-{i}", 0, int(labels[i]), at + 60, None)])
    store.close()


def _args(uri: str, source: Path | str, *extra: str):
    return parse_args(["--model", MODEL, "--source", str(source), "--tracking-uri", uri, *extra])


def test_drift_and_quality_reports_are_logged_with_the_version(registry, tmp_path):
    uri, version = registry
    _log_rows(tmp_path, version, _frame(150, seed=2, shift=2.0), labels=np.arange(150) % 2)
    path = run(_args(uri, tmp_path), MODEL, now=NOW)
    assert path == "monitoring/reports/20261122T120000Z"
    client = MlflowClient(tracking_uri=uri)
    run_id = client.get_model_version(MODEL, version).run_id
    logged = {Path(f.path).name for f in client.list_artifacts(run_id, path)}
    assert logged == {"drift.html", "drift.json", "quality.html", "quality.json", "summary.json"}
    tags = client.get_model_version(MODEL, version).tags
    assert float(tags["monitoring_drift_share"]) >= 2 / 3  # shifted numeric inputs drift
    assert tags["monitoring_current_rows"] == "150" and tags["monitoring_labeled_rows"] == "150"
    assert tags["monitoring_report_at"] == NOW.isoformat() and tags["monitoring_report_path"] == path
    summary = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=f"{path}/summary.json",
                dst_path=str(tmp_path / "dl"),
                tracking_uri=uri,
            )
        ).read_text()
    )
    assert 0.0 <= summary["accuracy"] <= 1.0 and "roc_auc" in summary


def test_without_outcomes_only_the_drift_report_and_same_inputs_do_not_drift(registry, tmp_path):
    uri, version = registry
    _log_rows(tmp_path, version, _frame(200, seed=5), labels=None)
    path = run(_args(uri, tmp_path, "--version", version), MODEL, now=NOW.replace(minute=5))
    client = MlflowClient(tracking_uri=uri)
    run_id = client.get_model_version(MODEL, version).run_id
    assert {Path(f.path).name for f in client.list_artifacts(run_id, path)} == {
        "drift.html",
        "drift.json",
        "summary.json",
    }
    tags = client.get_model_version(MODEL, version).tags
    assert float(tags["monitoring_drift_share"]) < 0.5 and tags["monitoring_labeled_rows"] == "0"


def test_no_recent_data_is_one_clear_line(registry, tmp_path, capsys):
    uri, version = registry
    _log_rows(tmp_path, version, _frame(5, seed=6), labels=None)  # logged 10 minutes before NOW ...
    code = main(
        ["--model", MODEL, "--source", str(tmp_path), "--tracking-uri", uri, "--window-hours", "0.01"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err
    assert f"{MODEL} version {version}: no requests logged in the last 0.01 h" in err  # ... now is later
    assert main(["--model", MODEL, "--source", str(tmp_path / "nowhere"), "--tracking-uri", uri]) == 1
    assert "no quality.sqlite" in capsys.readouterr().err
    assert (
        main(["--model", MODEL, "--alias", "challenger", "--source", str(tmp_path), "--tracking-uri", uri])
        == 1
    )
    assert "alias 'challenger' not found" in capsys.readouterr().err


def test_without_a_tracking_uri_the_projects_store_is_used_not_the_current_directory(
    registry, tmp_path, monkeypatch, capsys
):
    home, elsewhere = tmp_path / "home", tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["--model", MODEL, "--source", str(tmp_path)]) == 1  # the local store has no such model
    assert list(elsewhere.iterdir()) == []  # no ./mlflow.db
    assert (home / "mlflow" / "mlflow.db").is_file()
    assert MODEL in capsys.readouterr().err
    uri, version = registry  # MLFLOW_TRACKING_URI reaches the report as it reaches every step
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    _log_rows(tmp_path / "state", version, _frame(50, seed=7), labels=None)
    args = parse_args(["--model", MODEL, "--source", str(tmp_path / "state")])
    folder = run(args, MODEL, now=NOW)
    assert folder.startswith("monitoring/reports/")
    run_id = MlflowClient(tracking_uri=uri).get_model_version(MODEL, version).run_id
    assert MlflowClient(tracking_uri=uri).list_artifacts(run_id, folder)  # logged to that store
    assert list(elsewhere.iterdir()) == []
