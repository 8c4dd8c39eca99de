"""The training pipeline end to end with kfp.local on small demo data: all four models registered with
their aliases and lineage, and each exported model served by the real Triton binary answering exactly
what the registered MLflow model answers. Then the gate's other side: a worse challenger is not aliased.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from core.paths import feature_data_dir
from feature_repo.demo_data.writer import data_window as demo_data_window
from pipelines.local_run import run_training
from pipelines.training import DEFAULT_MODELS
from tests.helpers.fast_specs import write_spec

pytestmark = pytest.mark.slow
FEATURE_SERVICES = {
    "conversion-mlp": "conversion_mlp_v1",
    "conversion-sklearn": "conversion_sklearn_v1",
    "conversion-xgboost": "conversion_xgboost_v1",
    "intent-transformer": "none",
}


def _client():
    from mlflow import MlflowClient

    return MlflowClient()


def test_every_model_is_registered_as_its_first_champion(first_run):
    assert [o.model for o in first_run.outcomes] == DEFAULT_MODELS
    for outcome in first_run.outcomes:
        assert (outcome.stage, outcome.version, outcome.alias) == ("registered", "1", "champion"), outcome
        assert outcome.gate_passed is True
    assert {entry["step"] for entry in first_run.timings} >= {"load_features", "train", "register"}


def test_the_gate_passed_every_declared_behavioural_check(first_run):
    from core.spec.model import load_specs

    specs = {spec.name: spec for spec in load_specs()}
    for outcome in first_run.outcomes:
        decision = json.loads(_decision(outcome.mlflow_run_id))
        behaviour = [c for c in decision["checks"] if c["kind"] == "behaviour"]
        declared = [check.name for check in specs[outcome.model].evaluation.behaviour]
        assert declared and [c["metric"] for c in behaviour] == declared, outcome.model
        assert all(c["passed"] for c in behaviour), behaviour


def test_versions_carry_lineage_tags(first_run):
    start, end = demo_data_window(feature_data_dir())
    for model in DEFAULT_MODELS:
        version = _client().get_model_version(model, "1")  # a later release may promote another
        tags = version.tags
        assert tags["pipeline_run_id"] == first_run.name
        assert tags["pipeline_run_reason"] == "test: first run"
        assert pd.Timestamp(tags["data_start"]) == pd.Timestamp(start)
        assert pd.Timestamp(tags["data_end"]) == pd.Timestamp(end)
        assert len(tags["training_set_sha256"]) == 64
        assert tags["code_version"]
        assert tags["feature_service"] == FEATURE_SERVICES[model]


def test_each_version_carries_its_drift_detector(first_run):
    import mlflow

    from core.spec.model import load_specs

    for spec in load_specs():
        version = _client().get_model_version(spec.name, "1")
        detector = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/detector/detector.json")
        assert (detector["model"], detector["version"]) == (spec.name, "1")
        assert detector["kind"] == spec.monitoring.detector


def _local_repository(models, target) -> None:
    import mlflow

    for model in models:
        version = _client().get_model_version_by_alias(model, "champion")
        folder = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path=f"triton/local/{model}"
        )
        shutil.copytree(folder, target / model)


def _scoring_rows(model: str, rows: int = 40) -> pd.DataFrame:
    import mlflow

    version = _client().get_model_version_by_alias(model, "champion")
    folder = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path="data")
    (path,) = list(Path(folder).iterdir())
    return pd.read_parquet(path).tail(rows).reset_index(drop=True)


@pytest.mark.serving
def test_triton_serves_what_mlflow_registered(first_run, tmp_path):
    import mlflow
    import tritonclient.http as triton_http

    from core.registry import champion_predictor
    from inference.triton_local import TritonLocal

    repository = tmp_path / "repository"
    _local_repository(DEFAULT_MODELS, repository)
    with TritonLocal(log_path=tmp_path / "triton.log").start(repository) as server:
        client = triton_http.InferenceServerClient(server.http_address)
        try:
            for model in DEFAULT_MODELS:
                rows = _scoring_rows(model)
                expected = mlflow.pyfunc.load_model(f"models:/{model}@champion").predict(rows).to_numpy()
                inputs = []
                for name, tensor in champion_predictor(model, dest=tmp_path / model).encode(rows).items():
                    kind = {np.dtype(np.int64): "INT64", np.dtype(object): "BYTES"}.get(tensor.dtype, "FP32")
                    infer_input = triton_http.InferInput(name, list(tensor.shape), kind)
                    infer_input.set_data_from_numpy(tensor)
                    inputs.append(infer_input)
                served = client.infer(model, inputs).as_numpy("output__0")
                np.testing.assert_allclose(served, expected, atol=1e-5, err_msg=model)
        finally:
            client.close()


def test_a_challenger_worse_than_the_champion_is_not_aliased(first_run, local_platform):
    spec_dir = local_platform / "specs"
    data = yaml.safe_load((spec_dir / "conversion-sklearn.yaml").read_text())
    original = dict(data)
    # A single shallow stump: clears a lowered floor, but trails the champion's ROC AUC by far more
    # than the 0.01 tolerance.
    data["training"]["hyperparameters"] = {
        "estimator": "hist_gradient_boosting",
        "max_iter": 1,
        "max_leaf_nodes": 2,
        "learning_rate": 0.05,
    }
    data["evaluation"]["floors"] = {"roc_auc": 0.5}
    write_spec(spec_dir, "conversion-sklearn", data)
    try:
        start, end = demo_data_window(feature_data_dir())
        run = run_training(["conversion-sklearn"], start, end, reason="test: worse challenger")
    finally:
        write_spec(spec_dir, "conversion-sklearn", original)
    (outcome,) = run.outcomes
    assert outcome.stage == "gate failed", outcome
    assert len(outcome.reasons) == 1 and "trails champion" in outcome.reasons[0], outcome.reasons
    assert _client().get_model_version_by_alias("conversion-sklearn", "champion").version in (1, "1")
    assert len(_client().search_model_versions("name = 'conversion-sklearn'")) == 1
    with pytest.raises(Exception, match="challenger"):
        _client().get_model_version_by_alias("conversion-sklearn", "challenger")
    decision = json.loads((outcome.mlflow_run_id and _decision(outcome.mlflow_run_id)) or "{}")
    assert decision["passed"] is False


def _decision(run_id: str) -> str:
    import mlflow

    return json.dumps(mlflow.artifacts.load_dict(f"runs:/{run_id}/gate_decision.json"))
