"""scikit-learn trainer: standardised encoder matrix -> logistic regression or histogram gradient boosting.

The hyperparameter `estimator` picks the model (`logistic_regression` | `hist_gradient_boosting`); every
other hyperparameter is passed to that estimator's constructor. Gradient boosting stops early on the
validation split (`training.early_stopping_rounds` -> `n_iter_no_change`). The bundle holds
`encoder.json` and `model.joblib`; the Triton artifact is the estimator as ONNX (skl2onnx) on the scaled
matrix `input__0`, returning `output__0` probabilities; the export (inference/triton_repository.py) puts
the encoder's fitted preprocessing in front of it, so the served graph takes the raw features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.bundle import BundleInfo
from core.encoding import FeatureEncoder
from core.frameworks.base import (
    OUTPUT,
    TABULAR_INPUT,
    TabularPredictor,
    describe_bundle,
    input_columns,
    label_codes,
    training_threads,
    validation_score,
)
from core.spec.label import require_classifier
from core.spec.model import ModelSpec

NAME = "sklearn"
BACKENDS = frozenset({"onnxruntime", "python"})
PIP_MODULES = ("sklearn", "joblib")
GPU = False
EPOCHS = False

MODEL_FILE = "model.joblib"
ONNX_FILE = "model.onnx"
ESTIMATORS = ("logistic_regression", "hist_gradient_boosting")
# Opsets that Triton 2.51's ONNX Runtime (1.19) and newer all run.
ONNX_OPSETS = {"": 17, "ai.onnx.ml": 3}


class SklearnPredictor(TabularPredictor):
    def __init__(self, info: BundleInfo, encoder: FeatureEncoder, estimator: Any) -> None:
        super().__init__(info, encoder)
        self.estimator = estimator

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=training_threads()):
            return self.estimator.predict_proba(self.encoder.scale(matrix))


def check_spec(spec: ModelSpec) -> None:
    """Classifiers only; any tabular feature service or request fields."""
    require_classifier(spec.label, NAME)


def fit(
    spec: ModelSpec, train: pd.DataFrame, valid: pd.DataFrame, params: dict[str, Any], out_dir: Path
) -> tuple[SklearnPredictor, float]:
    """Fit the chosen estimator on `train` (early stopping on `valid`); write the bundle into `out_dir`."""
    import joblib
    from threadpoolctl import threadpool_limits

    inputs = input_columns(spec, train)
    encoder = FeatureEncoder.fit(train, inputs, standardize=True, scale_in_model=True)
    estimator = _estimator(spec, params)
    x_train, y_train = encoder.scale(encoder.transform(train)), label_codes(spec, train)
    with threadpool_limits(limits=training_threads()):
        if getattr(estimator, "early_stopping", False):
            x_valid = encoder.scale(encoder.transform(valid))
            estimator.fit(x_train, y_train, X_val=x_valid, y_val=label_codes(spec, valid))
        else:
            estimator.fit(x_train, y_train)
    out_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, out_dir / MODEL_FILE)
    record = {"iterations": int(np.max(estimator.n_iter_))}
    info = describe_bundle(
        spec, inputs, [encoder.save(out_dir), MODEL_FILE], encoder.raw_inputs, params, record
    )
    info.save(out_dir)
    predictor = load(out_dir, info)  # predict from the saved files, as every later step will
    return predictor, validation_score(spec, valid, predictor.predict_proba(valid))


def load(folder: Path, info: BundleInfo) -> SklearnPredictor:
    import joblib

    path = Path(folder) / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"{folder}: sklearn bundle has no {MODEL_FILE}")
    return SklearnPredictor(info, FeatureEncoder.load(folder), joblib.load(path))


def export_triton_artifact(folder: Path, info: BundleInfo, dest_dir: Path) -> str:
    """Write the estimator as `model.onnx` (skl2onnx) into `dest_dir`: the scaled matrix `input__0` FP32
    -> `output__0` FP32 probabilities; the export puts the version's preprocessing in front of it."""
    import onnx

    predictor = load(folder, info)
    model = matrix_onnx(predictor.estimator, len(predictor.encoder.output_names))
    dest_dir.mkdir(parents=True, exist_ok=True)
    onnx.save(model, dest_dir / ONNX_FILE)
    return ONNX_FILE


def matrix_onnx(estimator: Any, width: int) -> Any:
    """The fitted estimator as an ONNX model on the FP32 matrix `input__0` [batch, width], answering
    `output__0` probabilities exactly as `predict_proba` does on the same float32 matrix."""
    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    estimator = _float32_splits(estimator)
    model = convert_sklearn(
        estimator,
        initial_types=[(TABULAR_INPUT, FloatTensorType([None, width]))],
        options={id(estimator): {"zipmap": False}},
        target_opset=ONNX_OPSETS,
    )
    _keep_only_probabilities(model.graph)
    onnx.checker.check_model(model)
    return model


def _float32_splits(estimator: Any) -> Any:
    """For histogram gradient boosting, a copy whose split thresholds are float32 values that send every
    float32 input the way the float64 thresholds do; other estimators unchanged.

    scikit-learn compares a float32 feature, widened, with a float64 threshold (often the midpoint of two
    float32 values); ONNX's TreeEnsemble holds float32 thresholds, and skl2onnx's converter for this model
    rounds them to nearest. A threshold that rounds up onto a value the data holds sends that value left
    in ONNX and right in scikit-learn: at 100x the demo data, 2 of 311,800 test rows differed by up to
    0.0055. The largest float32 not above the threshold splits float32 inputs identically. (skl2onnx 1.20
    has this rule as `sklearn_threshold`, unused by its HistGradientBoosting converter, and under NumPy 2
    it returns the rounded-up value for a Python float threshold: its `float32 == threshold` check
    compares in float32.) `_predictors` is the fitted model's tree list, the private attribute skl2onnx
    reads too."""
    import copy

    if not hasattr(estimator, "_predictors"):
        return estimator
    exact = copy.deepcopy(estimator)
    for per_class in exact._predictors:
        for predictor in per_class:
            nodes = predictor.nodes
            splits = ~nodes["is_leaf"].astype(bool) & ~nodes["is_categorical"].astype(bool)
            wide = nodes["num_threshold"][splits]
            narrow = wide.astype(np.float32)
            above = narrow.astype(np.float64) > wide
            narrow[above] = np.nextafter(narrow[above], np.float32(-np.inf))
            nodes["num_threshold"][splits] = narrow.astype(np.float64)
    return exact


def _keep_only_probabilities(graph: Any) -> None:
    """Rename skl2onnx's `probabilities` output to `output__0` and drop the `label` output."""
    (probabilities,) = [o for o in graph.output if o.name == "probabilities"]
    for node in graph.node:
        node.output[:] = [OUTPUT if name == probabilities.name else name for name in node.output]
    probabilities.name = OUTPUT
    for extra in [o for o in graph.output if o.name != OUTPUT]:
        graph.output.remove(extra)


def _estimator(spec: ModelSpec, params: dict[str, Any]) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    kind = params.get("estimator")
    if kind not in ESTIMATORS:
        raise ValueError(
            f"{spec.name}: training.hyperparameters.estimator must be one of {', '.join(ESTIMATORS)} "
            f"(got {kind!r})"
        )
    settings = {k: v for k, v in params.items() if k != "estimator"}
    if kind == "logistic_regression":
        cls, defaults = LogisticRegression, {"random_state": spec.training.seed}
    else:
        rounds = spec.training.early_stopping_rounds
        cls = HistGradientBoostingClassifier
        defaults = {
            "random_state": spec.training.seed,
            "early_stopping": rounds is not None,
            "n_iter_no_change": rounds or 10,
            "scoring": "loss",
        }
    unknown = sorted(set(settings) - set(cls().get_params()))
    if unknown:
        raise ValueError(
            f"{spec.name}: {kind} takes no hyperparameter(s) {', '.join(unknown)} "
            "(training.hyperparameters / training.search.space)"
        )
    return cls(**{**defaults, **settings})
