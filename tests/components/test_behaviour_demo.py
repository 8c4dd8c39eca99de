"""The demo specs' behavioural checks on really trained demo models.

Each demo model, trained by the train step on the conftest demo data, passes every check its spec
declares; the evaluate step records the results (metrics.json, KFP/MLflow metrics) and the gate passes
them. Models broken on purpose fail exactly the check aimed at their fault, and the gate refuses them with
that check's reason: trained on data where one region never converts (region matters), trained on an
inverted feature (the relation runs backwards), or serving its classes in the wrong order.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from components.evaluate.step import evaluate
from components.evaluate.tracking import open_attempt
from components.gate.step import decide
from components.train.step import train
from core.behaviour import run_checks
from core.bundle import Predictor, load_predictor
from core.registry import configure_tracking
from core.spec.model import DEFAULT_SPEC_DIR, ModelSpec, load_specs
from tests.helpers.specs import DEMO_CLASSIFIERS

# The intent model as the pipeline tests train it: 3,000 messages, 32 tokens, 5 epochs (~30 s).
INTENT_BUDGET = {"max_train_rows": 3000, "max_length": 32}
INTENT_EPOCHS = 5


def _demo(name: str, search: bool = True) -> ModelSpec:
    (spec,) = load_specs(DEFAULT_SPEC_DIR, names=[name])
    training = spec.training
    if training.search is not None:  # two trials keep the search real and the test short
        training = training.model_copy(update={"search": training.search.model_copy(update={"n_trials": 2})})
    if not search:
        training = training.model_copy(update={"search": None})
    if name == "intent-transformer":
        hyperparameters = {**training.hyperparameters, **INTENT_BUDGET}
        training = training.model_copy(
            update={"hyperparameters": hyperparameters, "max_epochs": INTENT_EPOCHS}
        )
    return spec.model_copy(update={"training": training})


def _train(spec: ModelSpec, frame: pd.DataFrame, folder: Path) -> tuple[ModelSpec, Predictor, pd.DataFrame]:
    result = train(spec, frame, folder, progress=lambda _: None)
    return spec, load_predictor(result.bundle_dir), result.test


@pytest.fixture(scope="module")
def demo_models(tmp_path_factory, conversion_training_set, intent_training_set):
    """Every demo spec trained once: name -> (spec, reloaded predictor, test rows)."""
    models = {}
    for spec in load_specs(DEFAULT_SPEC_DIR, names=DEMO_CLASSIFIERS):
        frame = intent_training_set if spec.label.task == "multiclass" else conversion_training_set
        models[spec.name] = _train(_demo(spec.name), frame, tmp_path_factory.mktemp(spec.name))
    return models


def _reasons(results) -> list[str]:
    return [r.reason for r in results]


@pytest.mark.parametrize(
    "name", ["conversion-mlp", "conversion-sklearn", "conversion-xgboost", "intent-transformer"]
)
def test_the_declared_checks_hold_for_the_trained_demo_model(demo_models, name):
    spec, predictor, test = demo_models[name]
    results = run_checks(spec, predictor, test)
    assert [r.name for r in results] == [c.name for c in spec.evaluation.behaviour] and results
    assert all(r.passed for r in results), _reasons(results)
    assert all(0 < r.rows <= 500 for r in results)


def test_evaluate_records_the_checks_and_the_gate_passes_them(demo_models, tmp_path, monkeypatch):
    spec, predictor, test = demo_models["conversion-xgboost"]
    result = evaluate(predictor, test, None, spec, tmp_path / "evaluation", with_report=False)
    saved = json.loads(result.metrics_path.read_text())
    assert [r["name"] for r in saved["behaviour"]] == [c.name for c in spec.evaluation.behaviour]
    assert all(r["passed"] and r["op"] == "<=" and r["value"] <= r["bound"] for r in saved["behaviour"])
    metrics = result.behaviour_metrics()
    assert metrics["behaviour.region_does_not_matter.passed"] == 1.0
    assert metrics["behaviour.region_does_not_matter"] == saved["behaviour"][0]["value"]
    decision = decide(spec, saved, None)
    behaviour = [c for c in decision.checks if c["kind"] == "behaviour"]
    assert len(behaviour) == 4 and all(c["passed"] for c in behaviour), decision.failures

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        configure_tracking()
        run_id = open_attempt(spec, "run-1", {}, predictor.info, result, tmp_path / "evaluation")
        logged = mlflow.MlflowClient().get_run(run_id).data.metrics
    finally:
        mlflow.set_tracking_uri(None)
    assert {k: v for k, v in logged.items() if k.startswith("behaviour.")} == metrics


# ------------------------------------------------------------------------------------ broken on purpose
def _gate_failures(spec: ModelSpec, predictor: Predictor, test: pd.DataFrame, folder: Path) -> list[str]:
    result = evaluate(predictor, test, None, spec, folder, with_report=False)
    decision = decide(spec, json.loads(result.metrics_path.read_text()), None)
    return [c["reason"] for c in decision.checks if c["kind"] == "behaviour" and not c["passed"]]


def test_a_model_that_leans_on_region_fails_invariance_and_the_gate(conversion_training_set, tmp_path):
    # A join bug dropped every APAC purchase: the model learns that APAC sessions never convert.
    frame = conversion_training_set
    broken = frame.assign(converted=np.where(frame["region"] == "apac", 0, frame["converted"]))
    spec, predictor, test = _train(_demo("conversion-xgboost", search=False), broken, tmp_path / "train")
    failed = [r for r in run_checks(spec, predictor, test) if not r.passed]
    assert [r.name for r in failed] == ["region_does_not_matter"]
    assert failed[0].value > 2 * failed[0].bound
    assert _gate_failures(spec, predictor, test, tmp_path / "eval") == [failed[0].reason]


@pytest.mark.parametrize(
    ("column", "check"),
    [
        ("pricing_messages", "pricing_talk_never_lowers_odds"),
        ("support_tickets_30d", "support_tickets_never_raise_odds"),
    ],
)
def test_a_model_trained_on_an_inverted_feature_fails_direction(
    conversion_training_set, tmp_path, column, check
):
    # An ETL bug wrote max - value: the model learns the relation backwards.
    frame = conversion_training_set
    broken = frame.assign(**{column: frame[column].max() - frame[column]})
    spec, predictor, test = _train(_demo("conversion-sklearn"), broken, tmp_path / "train")
    failed = [r for r in run_checks(spec, predictor, test) if not r.passed]
    assert [r.name for r in failed] == [check]
    assert failed[0].reason.startswith(f"{check}: {column} +")


class ClassesShifted:
    """A real predictor whose output columns are off by one class (an export that lost the order)."""

    def __init__(self, predictor: Predictor):
        self.info, self._predictor = predictor.info, predictor

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.roll(self._predictor.predict_proba(frame), 1, axis=1)

    def encode(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return self._predictor.encode(frame)


def test_a_model_with_its_classes_out_of_order_fails_minimum_and_the_gate(demo_models, tmp_path):
    spec, predictor, test = demo_models["intent-transformer"]
    (result,) = run_checks(spec, ClassesShifted(predictor), test)
    assert not result.passed and result.value < 0.5
    assert (
        result.reason.startswith("obvious_intents: ")
        and "wrong: 'How much does the Pro plan" in result.reason
    )
    assert _gate_failures(spec, ClassesShifted(predictor), test, tmp_path) == [result.reason]
