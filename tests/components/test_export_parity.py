"""Every tabular framework's served model takes the raw features and answers like the trained model: the
export's parity check runs the cluster artifact (the ONNX graph with the preprocessing merged in, or the
ensemble's preprocessing graph then the trees) on raw-feature tensors holding missing numerics, missing
categories and a category no version saw, and finds them within 1e-5 of `predict_proba`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest

from components.train.splits import time_split
from core.frameworks.registry import get_framework
from core.spec.model import ModelSpec
from inference.triton_repository import DEFAULT_TOLERANCE, export_repository
from tests.helpers.specs import fixture_spec

CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "sklearn-logistic": ("sklearn", "conversion-sklearn", {"estimator": "logistic_regression"}),
    "sklearn-boosting": ("sklearn", "conversion-sklearn", {"estimator": "hist_gradient_boosting"}),
    "xgboost": ("xgboost", "conversion-xgboost", {"n_estimators": 30, "max_depth": 3}),
    "pytorch": ("pytorch", "conversion-mlp", {"max_epochs": 3}),
}


def _rows(n: int, classes: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    x1, x2 = rng.normal(size=(2, n))
    colour = rng.choice(["red", "green", "blue"], n).astype(object)
    logits = np.stack([2.0 * x1, 2.0 * x2, 2.5 * (colour == "blue")], axis=1)[:, :classes]
    frame = pd.DataFrame(
        {
            "row_id": np.arange(n),
            "event_timestamp": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
            "x1": x1,
            "x2": x2,
            "colour": colour,
            "kind": np.array(["a", "b", "c"])[(logits + rng.gumbel(size=logits.shape)).argmax(axis=1)],
        }
    )
    frame.loc[frame.index % 7 == 0, "x1"] = np.nan
    frame.loc[frame.index % 11 == 0, "colour"] = None
    return frame


def _spec(name: str, classes: int) -> ModelSpec:
    task = {"task": "binary"} if classes == 2 else {"task": "multiclass", "classes": ["a", "b", "c"]}
    label = {"dataset": "toy", "column": "kind", **task}
    return fixture_spec(
        name,
        inputs={"feature_service": "toy_v1", "entity_keys": ["row_id"]},
        label=label,
        training={"search": None},
        evaluation={"slices": [], "behaviour": []},
    )


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_served_model_takes_raw_features_and_answers_like_the_trained_one(
    case: str, classes: int, tmp_path: Path
) -> None:
    framework, spec_name, params = CASES[case]
    spec = _spec(spec_name, classes)
    data = _rows(600, classes)
    if classes == 2:
        data["kind"] = np.where(data["kind"] == "b", 1, 0)
    splits = time_split(data, spec.training.split)
    test = splits.test.assign(colour=splits.test["colour"].where(splits.test.index % 5 != 0, "purple"))
    get_framework(framework).fit(spec, splits.train, splits.valid, params, tmp_path / "bundle")

    result = export_repository(tmp_path / "bundle", spec, tmp_path / "repo", test)

    assert result.parity_rows == len(test)
    assert result.parity_max_abs_diff is not None and result.parity_max_abs_diff <= DEFAULT_TOLERANCE
    first = (
        tmp_path / "repo" / "cluster" / (spec.name if framework != "xgboost" else f"{spec.name}_preprocess")
    )
    graph = onnx.load(first / "1" / "model.onnx").graph
    assert {i.name for i in graph.input} == {"x1", "x2", "colour"}  # one input per raw feature


def test_a_boosting_split_between_two_neighbouring_float32_values_is_served_as_trained() -> None:
    """The midpoint of two neighbouring float32 values rounds (ties to even) onto the upper one, a value the
    data holds: with skl2onnx's nearest float32 threshold that value goes left in ONNX and right in
    scikit-learn (the 100x `make bench-scale` failure); the export keeps every float32 input's side."""
    import onnxruntime as ort
    from sklearn.ensemble import HistGradientBoostingClassifier

    from core.frameworks.sklearn_model import matrix_onnx

    low = np.nextafter(np.float32(1.0), np.float32(2.0))  # odd last bit: the tie rounds up to `high`
    high = np.nextafter(low, np.float32(2.0))
    assert np.float32((np.float64(low) + np.float64(high)) / 2) == high
    matrix = np.repeat(np.array([[low], [high]], dtype=np.float32), 200, axis=0)
    labels = (matrix[:, 0] == high).astype(int)
    model = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(matrix, labels)
    expected = model.predict_proba(matrix)
    assert expected[-1, 1] > 0.5 > expected[0, 1]  # the trained model does split the two

    session = ort.InferenceSession(matrix_onnx(model, 1).SerializeToString())
    (served,) = session.run(["output__0"], {"input__0": matrix})

    assert np.abs(served - expected).max() < DEFAULT_TOLERANCE
