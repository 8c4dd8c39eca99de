"""The train step for tabular models (scikit-learn, XGBoost) on small real demo data.

Real trainers, real Optuna, real ONNX Runtime and XGBoost boosters: nothing here is mocked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import xgboost

from components.train.splits import time_split
from components.train.step import train
from core.bundle import BundleInfo, load_predictor
from core.encoding import FeatureEncoder
from core.frameworks import sklearn_model, xgboost_model
from core.frameworks.base import class_names, input_columns, label_codes, validation_metric
from core.spec.model import ModelSpec
from core.spec.training import Split
from tests.helpers.specs import fixture_spec, fixture_spec_data

FEATURES = 17  # the conversion_xgboost_v1 feature columns in the conftest training set


def _search(n_trials: int, timeout_s: float = 120.0) -> dict[str, Any]:
    space = fixture_spec_data("conversion-xgboost")["training"]["search"]
    return {**space, "n_trials": n_trials, "timeout_s": timeout_s}


def _roc_auc(spec: ModelSpec, frame: pd.DataFrame, proba: np.ndarray) -> float:
    return validation_metric("roc_auc", label_codes(spec, frame), proba, class_names(spec))


def _onnx_proba(path: Path, matrix: np.ndarray, n_classes: int) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input__0"]
    (output,) = session.get_outputs()
    assert (output.name, output.type, output.shape[1]) == ("output__0", "tensor(float)", n_classes)
    (proba,) = session.run(None, {"input__0": matrix})
    assert proba.dtype == np.float32
    return proba


def _one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def xgb_search(tmp_path_factory, conversion_training_set):
    """The demo XGBoost spec with a 4-trial search, trained once for the module."""
    spec = fixture_spec("conversion-xgboost", training={"search": _search(4)})
    messages: list[str] = []
    result = train(spec, conversion_training_set, tmp_path_factory.mktemp("xgb"), progress=messages.append)
    return spec, result, messages


@pytest.fixture(scope="module")
def sklearn_hgb(tmp_path_factory, conversion_training_set):
    """The demo scikit-learn spec (histogram gradient boosting, no search), written where KFP would ask."""
    spec = fixture_spec("conversion-sklearn")
    root = tmp_path_factory.mktemp("skl")
    result = train(
        spec,
        conversion_training_set,
        root / "work",
        progress=lambda _: None,
        bundle_dir=root / "outputs" / "model",
        test_path=root / "outputs" / "test_set",
    )
    return spec, result


@pytest.fixture(scope="module")
def toy_multiclass() -> pd.DataFrame:
    """400 hourly rows whose 3-class label depends on two numbers and a colour."""
    rng = np.random.default_rng(3)
    rows = 400
    x1, x2 = rng.normal(size=(2, rows))
    colour = rng.choice(["red", "green", "blue"], rows)
    logits = np.stack([2.0 * x1, 2.0 * x2, 2.5 * (colour == "blue")], axis=1) + rng.gumbel(size=(rows, 3))
    return pd.DataFrame(
        {
            "row_id": np.arange(rows),
            "event_timestamp": pd.date_range("2026-01-01", periods=rows, freq="h", tz="UTC"),
            "x1": x1,
            "x2": x2,
            "colour": colour,
            "kind": np.array(["a", "b", "c"])[logits.argmax(axis=1)],
        }
    )


def _multiclass_spec(name: str) -> ModelSpec:
    return fixture_spec(
        name,
        inputs={"feature_service": "toy_v1", "entity_keys": ["row_id"]},
        label={"dataset": "toy", "column": "kind", "task": "multiclass", "classes": ["a", "b", "c"]},
        training={"search": None},
        evaluation={"slices": [], "behaviour": []},  # the demo's are binary-model checks
    )


# ------------------------------------------------------------------------------------------------ split
def test_time_split_puts_the_newest_rows_last_with_the_contracted_sizes(conversion_training_set):
    shuffled = conversion_training_set.sample(frac=1.0, random_state=0)
    splits = time_split(shuffled, Split(validation_fraction=0.15, test_fraction=0.15))
    rows = len(conversion_training_set)
    assert (len(splits.test), len(splits.valid)) == (round(rows * 0.15), round(rows * 0.15))
    assert len(splits.train) + len(splits.valid) + len(splits.test) == rows
    assert splits.train.event_timestamp.max() < splits.valid.event_timestamp.min()
    assert splits.valid.event_timestamp.max() < splits.test.event_timestamp.min()
    assert splits.test.event_timestamp.is_monotonic_increasing
    ids = pd.concat([splits.train, splits.valid, splits.test]).session_id
    assert sorted(ids) == sorted(conversion_training_set.session_id)
    assert splits.summary()["test"]["end"] == conversion_training_set.event_timestamp.max().isoformat()


def test_time_split_never_cuts_through_rows_with_the_same_timestamp():
    times = pd.to_datetime(["2026-01-01"] * 3 + ["2026-01-02"] * 4 + ["2026-01-03"] * 3, utc=True)
    frame = pd.DataFrame({"event_timestamp": times, "x": range(10)})
    splits = time_split(frame, Split(validation_fraction=0.3, test_fraction=0.3))
    # The validation cut (row 4) falls inside the 01-02 group: the whole group moves to validation.
    assert [len(splits.train), len(splits.valid), len(splits.test)] == [3, 4, 3]
    assert splits.train.event_timestamp.nunique() == splits.valid.event_timestamp.nunique() == 1


def test_time_split_refuses_to_leave_a_split_empty():
    frame = pd.DataFrame({"event_timestamp": pd.to_datetime(["2026-01-01"] * 5, utc=True), "x": range(5)})
    with pytest.raises(ValueError, match=r"empty") as excinfo:
        time_split(frame, Split(validation_fraction=0.2, test_fraction=0.2))
    _one_line_error(excinfo)


# ----------------------------------------------------------------------------------------------- xgboost
def test_xgboost_learns_and_stops_early(xgb_search):
    spec, result, _ = xgb_search
    predictor = load_predictor(result.bundle_dir)
    assert _roc_auc(spec, result.test, predictor.predict_proba(result.test)) > 0.7
    rounds = predictor.info.training["boosting_rounds"]
    assert rounds < spec.training.hyperparameters["n_estimators"]
    # The saved model holds only the rounds up to the best iteration, as FIL will serve it.
    saved = xgboost.Booster(model_file=str(result.bundle_dir / xgboost_model.MODEL_FILE))
    assert saved.num_boosted_rounds() == rounds < predictor.info.training["max_rounds"]


def test_xgboost_triton_json_gives_the_bundle_probabilities(xgb_search, tmp_path):
    _, result, _ = xgb_search
    predictor = load_predictor(result.bundle_dir)
    name = xgboost_model.export_triton_artifact(result.bundle_dir, predictor.info, tmp_path)
    assert name == "xgboost.json"
    booster = xgboost.Booster(model_file=str(tmp_path / name))
    served = booster.inplace_predict(_matrix(predictor, result.test))
    np.testing.assert_allclose(predictor.predict_proba(result.test)[:, 1], served, atol=1e-6)


def test_search_runs_the_baseline_first_and_keeps_the_best_trial(xgb_search):
    spec, result, messages = xgb_search
    baseline = {k: spec.training.hyperparameters[k] for k in spec.training.search.space}
    assert len(result.trials) == 4 and len(messages) == 1 + 4  # split summary + one line per trial
    assert result.trials[0]["params"] == baseline
    best = max(result.trials, key=lambda t: t["score"])
    assert result.validation_score == best["score"]
    assert result.best_params == {**spec.training.hyperparameters, **best["params"]}
    recorded = BundleInfo.load(result.bundle_dir)
    assert recorded.hyperparameters == result.best_params
    assert recorded.training["search"]["best_trial"] == best["number"]
    assert recorded.training["splits"] == result.splits
    assert not (result.bundle_dir.parent / ".search").exists()  # the losing trials are gone


def test_search_stops_at_its_timeout(conversion_training_set, tmp_path):
    spec = fixture_spec("conversion-xgboost", training={"search": _search(n_trials=500, timeout_s=1.0)})
    result = train(spec, conversion_training_set, tmp_path, progress=lambda _: None)
    assert 1 <= len(result.trials) < 500
    # Trials run one after another and none starts after the timeout, so all but the last ran within it
    # (their durations are rounded to the millisecond).
    assert sum(trial["duration_s"] for trial in result.trials[:-1]) <= 1.0 + 0.0005 * len(result.trials)


def test_same_seed_gives_identical_probabilities(conversion_training_set, tmp_path):
    spec = fixture_spec("conversion-xgboost", training={"search": _search(2)})
    first = train(spec, conversion_training_set, tmp_path / "a", progress=lambda _: None)
    second = train(spec, conversion_training_set, tmp_path / "b", progress=lambda _: None)
    assert first.best_params == second.best_params
    a = load_predictor(first.bundle_dir).predict_proba(first.test)
    b = load_predictor(second.bundle_dir).predict_proba(second.test)
    assert np.array_equal(a, b)


def test_xgboost_multiclass_matches_the_booster(toy_multiclass, tmp_path):
    spec = _multiclass_spec("conversion-xgboost")
    splits = time_split(toy_multiclass, spec.training.split)
    predictor, _ = xgboost_model.fit(
        spec, splits.train, splits.valid, dict(spec.training.hyperparameters), tmp_path
    )
    proba = predictor.predict_proba(splits.test)
    assert proba.shape == (len(splits.test), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    booster = xgboost.Booster(model_file=str(tmp_path / xgboost_model.MODEL_FILE))
    np.testing.assert_allclose(proba, booster.inplace_predict(_matrix(predictor, splits.test)))
    assert validation_metric("accuracy", label_codes(spec, splits.test), proba, class_names(spec)) > 0.6


# ----------------------------------------------------------------------------------------------- sklearn
def test_sklearn_gradient_boosting_learns_and_exports_matching_onnx(sklearn_hgb, tmp_path):
    spec, result = sklearn_hgb
    predictor = load_predictor(result.bundle_dir)
    proba = predictor.predict_proba(result.test)
    assert _roc_auc(spec, result.test, proba) > 0.7
    assert predictor.info.training["iterations"] < spec.training.hyperparameters["max_iter"]  # stopped early
    name = sklearn_model.export_triton_artifact(result.bundle_dir, predictor.info, tmp_path)
    onnx_proba = _onnx_proba(tmp_path / name, _matrix(predictor, result.test), 2)
    np.testing.assert_allclose(onnx_proba, proba, atol=1e-5)


@pytest.mark.parametrize("estimator", ["logistic_regression", "hist_gradient_boosting"])
def test_sklearn_multiclass_exports_matching_onnx(estimator, toy_multiclass, tmp_path):
    spec = _multiclass_spec("conversion-sklearn")
    splits = time_split(toy_multiclass, spec.training.split)
    params = {"estimator": estimator, "max_iter": 200}
    predictor, _ = sklearn_model.fit(spec, splits.train, splits.valid, params, tmp_path / "bundle")
    proba = predictor.predict_proba(splits.test)
    assert validation_metric("accuracy", label_codes(spec, splits.test), proba, class_names(spec)) > 0.6
    name = sklearn_model.export_triton_artifact(tmp_path / "bundle", predictor.info, tmp_path / "triton")
    onnx_proba = _onnx_proba(tmp_path / "triton" / name, _matrix(predictor, splits.test), 3)
    np.testing.assert_allclose(onnx_proba, proba, atol=1e-5)


ROUND_TRIP = {
    "sklearn": (sklearn_model, "conversion-sklearn", {"estimator": "logistic_regression", "max_iter": 500}),
    "xgboost": (xgboost_model, "conversion-xgboost", {"n_estimators": 50, "max_depth": 3}),
}


@pytest.mark.parametrize("framework", sorted(ROUND_TRIP))
def test_bundle_round_trips_to_the_same_predictions(framework, conversion_training_set, tmp_path):
    module, name, params = ROUND_TRIP[framework]
    spec = fixture_spec(name, training={"search": None})
    splits = time_split(conversion_training_set, spec.training.split)
    predictor, _ = module.fit(spec, splits.train, splits.valid, params, tmp_path)
    loaded = load_predictor(tmp_path)
    assert np.array_equal(loaded.predict_proba(splits.test), predictor.predict_proba(splits.test))
    # The encoder read back from encoder.json encodes exactly as the one fitted in memory.
    standardized = framework == "sklearn"
    fresh = FeatureEncoder.fit(
        splits.train, input_columns(spec, splits.train), standardize=standardized, scale_in_model=True
    )
    assert np.array_equal(loaded.encoder.transform(splits.test), fresh.transform(splits.test))
    assert loaded.encoder.scale_in_model is standardized  # the wire tensor carries no fitted scaling
    info = json.loads((tmp_path / "bundle.json").read_text())
    assert info["inputs"] == input_columns(spec, conversion_training_set) and len(info["inputs"]) == FEATURES
    assert info["classes"] == ["0", "1"] and info["triton_outputs"][0]["dims"] == [2]
    assert info["triton_inputs"] == fresh.raw_inputs  # the served model takes the raw features


def test_training_writes_the_test_rows_and_bundle_where_asked(sklearn_hgb):
    _, result = sklearn_hgb
    assert result.bundle_dir.name == "model" and (result.bundle_dir / "bundle.json").exists()
    written = pd.read_parquet(result.test_path)
    pd.testing.assert_frame_equal(written, result.test, check_dtype=False)
    assert result.splits["test"]["rows"] == len(written)
    assert BundleInfo.load(result.bundle_dir).training["splits"]["test"]["rows"] == len(written)


def test_shared_training_set_fixtures_follow_the_contract(conversion_training_set, intent_training_set):
    assert list(conversion_training_set.columns[:3]) == ["session_id", "customer_id", "event_timestamp"]
    assert conversion_training_set.columns[-1] == "converted"
    assert len(conversion_training_set.columns) == 3 + FEATURES + 1
    assert list(intent_training_set.columns) == ["message_id", "event_timestamp", "text", "intent"]
    for frame in (conversion_training_set, intent_training_set):
        assert frame.event_timestamp.is_monotonic_increasing and str(frame.event_timestamp.dt.tz) == "UTC"


# ------------------------------------------------------------------------------------------------ errors
def test_a_label_with_one_class_is_refused(conversion_training_set, tmp_path):
    frame = conversion_training_set.assign(converted=0)
    with pytest.raises(ValueError, match=r"'converted'.*single class") as excinfo:
        train(fixture_spec("conversion-sklearn"), frame, tmp_path, progress=lambda _: None)
    _one_line_error(excinfo)


def test_a_class_absent_from_the_train_split_is_refused(toy_multiclass, tmp_path):
    frame = toy_multiclass.copy()
    frame.loc[frame.index < 300, "kind"] = frame.loc[frame.index < 300, "kind"].replace("c", "a")
    with pytest.raises(ValueError, match=r"'kind': class.*c.*train split") as excinfo:
        train(_multiclass_spec("conversion-sklearn"), frame, tmp_path, progress=lambda _: None)
    _one_line_error(excinfo)


def test_unknown_label_values_are_named(toy_multiclass):
    frame = toy_multiclass.assign(kind=toy_multiclass.kind.replace("c", "z"))
    with pytest.raises(ValueError, match=r"'kind'.*z") as excinfo:
        label_codes(_multiclass_spec("conversion-sklearn"), frame)
    _one_line_error(excinfo)


def test_a_missing_input_column_is_named(sklearn_hgb, xgb_search):
    for result in (sklearn_hgb[1], xgb_search[1]):
        predictor = load_predictor(result.bundle_dir)
        with pytest.raises(ValueError, match=r"tenure_days") as excinfo:
            predictor.predict_proba(result.test.drop(columns="tenure_days"))
        _one_line_error(excinfo)
    with pytest.raises(ValueError, match=r"request field.*text") as excinfo:
        input_columns(fixture_spec("intent-transformer"), pd.DataFrame({"body": ["hi"]}))
    _one_line_error(excinfo)


def test_a_timestamp_feature_column_is_refused(conversion_training_set):
    frame = conversion_training_set.assign(label_timestamp=conversion_training_set.event_timestamp)
    with pytest.raises(ValueError, match=r"label_timestamp") as excinfo:
        input_columns(fixture_spec("conversion-xgboost"), frame)
    _one_line_error(excinfo)


def test_hyperparameters_the_estimator_does_not_take_are_named(conversion_training_set, tmp_path):
    params = dict(fixture_spec("conversion-sklearn").training.hyperparameters)
    spec = fixture_spec(
        "conversion-sklearn", training={"hyperparameters": {**params, "estimator": "logistic_regression"}}
    )
    with pytest.raises(
        ValueError, match=r"logistic_regression takes no hyperparameter.*learning_rate"
    ) as excinfo:
        train(spec, conversion_training_set, tmp_path, progress=lambda _: None)
    _one_line_error(excinfo)


def _matrix(predictor, frame):
    """What the estimator (and its exported artifact) takes: the encoder's scaled matrix."""
    return predictor.encoder.scale(predictor.encoder.transform(frame))
