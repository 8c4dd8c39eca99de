"""The training pipeline's release steps in local mode (deploy_canary -> analyze_canary ->
promote_or_rollback against the local serving runtime that `run_training` starts for the run).

First run: every model is a first champion, served alone (no canary, nothing analysed). Second run, two
models at once: conversion-xgboost's retrain is a good challenger, conversion-mlp's is made bad on purpose
(`MLOPS_BAD_CANARY`): each is canaried, analysed from demo traffic (tritonclient over HTTP and gRPC), and
the decision, its evidence, the aliases, the InferenceService file and Triton's repository agree.
"""

from __future__ import annotations

import json

import pytest
import yaml

from core.paths import feature_data_dir
from core.settings import variable
from feature_repo.demo_data.writer import data_window as demo_data_window
from inference.canary.release import EVIDENCE_ARTIFACT
from inference.deploy.annotations import NAMESPACE
from pipelines.local_run import run_training
from pipelines.run_summary import format_releases
from pipelines.training import DEFAULT_MODELS
from tests.helpers.fast_specs import FAST_CANARY

pytestmark = pytest.mark.slow
GOOD, BAD = "conversion-xgboost", "conversion-mlp"
MIN_REQUESTS = FAST_CANARY["min_requests"]


def _isvc(home, model: str) -> dict:
    path = home / "serving" / "isvc" / NAMESPACE / f"inferenceservice-{model}.yaml"
    return yaml.safe_load(path.read_text())


def _staged(home, model: str) -> list[str]:
    return sorted(p.name for p in (home / "serving" / "repository").glob(f"{model}__v*"))


def _aliases(model: str) -> dict[str, str]:
    from mlflow import MlflowClient

    return {alias: str(v) for alias, v in MlflowClient().get_registered_model(model).aliases.items()}


def _version_tags(model: str, version: str) -> dict:
    from mlflow import MlflowClient

    return MlflowClient().get_model_version(model, version).tags


def _evidence(model: str, version: str) -> dict:
    import mlflow

    run_id = mlflow.MlflowClient().get_model_version(model, version).run_id
    return json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/{EVIDENCE_ARTIFACT}"))


def test_first_run_serves_every_champion_alone(first_run, local_platform):
    for outcome in first_run.outcomes:
        model = outcome.model
        assert (outcome.rollout_state, outcome.canary_decision) == ("serving", ""), outcome
        service = _isvc(local_platform, model)
        annotations = service["metadata"]["annotations"]
        assert annotations["serving.mlops-loop.io/stable-version"] == "1"
        assert "serving.mlops-loop.io/canary-version" not in annotations
        assert "canaryTrafficPercent" not in service["spec"]["predictor"]
        assert _staged(local_platform, model) == [f"{model}__v1"]
    assert {e["step"] for e in first_run.timings} >= {"deploy_canary"}
    assert "analyze_canary" not in {e["step"] for e in first_run.timings}  # "no-canary" did nothing
    assert format_releases(first_run.outcomes).count("serves alone (first champion: no canary)") == 4
    # the run started the runtime for its release steps and stopped it again
    assert not (local_platform / "serving" / "runtime.json").exists()


@pytest.fixture(scope="module")
def second_run(first_run, local_platform):
    """Retrains of two models: both pass the gate against their champion and become challengers."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(variable("bad_canary"), f"{BAD}=error")
        start, end = demo_data_window(feature_data_dir())
        run = run_training([GOOD, BAD], start, end, reason="test: canary release")
    assert run.succeeded, [(o.model, o.stage, o.reasons, o.rollout_state) for o in run.outcomes]
    return {outcome.model: outcome for outcome in run.outcomes}


def test_a_good_challenger_is_decided_on_enough_traffic_and_released_consistently(second_run, local_platform):
    outcome = second_run[GOOD]
    assert (outcome.version, outcome.alias) == ("2", "challenger"), outcome
    assert outcome.canary_decision in ("promote", "rollback"), outcome  # not inconclusive
    evidence = _evidence(GOOD, "2")
    assert evidence["verdict"] == outcome.canary_decision
    assert evidence["source"] == "prometheus"
    assert evidence["canary"]["requests"] >= MIN_REQUESTS and evidence["stable"]["requests"] > 0
    assert evidence["canary"]["error_rate"] == 0.0 and evidence["prediction_shift"] is not None
    assert evidence["traffic"]["grpc"] > 0 and evidence["traffic"]["failed"] == 0
    served = _isvc(local_platform, GOOD)
    annotations = served["metadata"]["annotations"]
    if outcome.canary_decision == "promote":
        assert outcome.rollout_state == "promoted"
        assert _aliases(GOOD) == {"champion": "2"}
        assert annotations["serving.mlops-loop.io/stable-version"] == "2"
        assert "canaryTrafficPercent" not in served["spec"]["predictor"]
        assert _staged(local_platform, GOOD) == [f"{GOOD}__v2"]
    else:  # a latency blip on a busy machine: then the rollback must be just as consistent
        assert outcome.rollout_state == "rolled_back"
        assert _aliases(GOOD) == {"champion": "1"}
        assert served["spec"]["predictor"]["canaryTrafficPercent"] == 0
        assert _staged(local_platform, GOOD) == [f"{GOOD}__v1"]
    assert format_releases([outcome]).splitlines()[1].startswith(f"  {GOOD}: {outcome.canary_decision} v2 ->")


def test_a_bad_challenger_is_rolled_back_by_the_analysis_step(second_run, local_platform):
    outcome = second_run[BAD]
    assert (outcome.version, outcome.alias) == ("2", "challenger"), outcome
    assert (outcome.canary_decision, outcome.rollout_state) == ("rollback", "rolled_back"), outcome
    assert outcome.canary_reasons.startswith("canary error rate"), outcome.canary_reasons
    tags = _version_tags(BAD, "2")
    assert tags["rollback_reason"].startswith("canary error rate")
    assert 0.3 < _evidence(BAD, "2")["canary"]["error_rate"] < 0.7  # bad_canary fails half on purpose
    assert _aliases(BAD) == {"champion": "1"}
    served = _isvc(local_platform, BAD)
    assert served["metadata"]["annotations"]["serving.mlops-loop.io/stable-version"] == "1"
    assert served["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert _staged(local_platform, BAD) == [f"{BAD}__v1"]  # the bad version is unloaded and removed


def test_models_outside_the_second_run_keep_serving_their_first_champion(second_run, local_platform):
    for model in set(DEFAULT_MODELS) - {GOOD, BAD} - {"conversion-sklearn"}:  # sklearn: other tests
        assert _aliases(model) == {"champion": "1"}
        assert _staged(local_platform, model) == [f"{model}__v1"]
