"""What framework plug-ins share: how a training set becomes inputs and labels, how a bundle is described,
the score `fit` reports, and the tabular predictor every tabular framework builds on.

Every framework reads the training set through these helpers, so input columns, label codes and the
validation metric mean the same thing whichever library trained the model. Plug-ins import this module
at discovery, so it imports no training library (scikit-learn's metrics load inside the functions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.bundle import BundleInfo
from core.encoding import FeatureEncoder
from core.raw_features import raw_arrays
from core.settings import settings
from core.spec.base import METRIC_NAMES
from core.spec.model import ModelSpec
from core.training_set import TIME_COLUMN

TABULAR_INPUT = "input__0"
"""The encoded matrix an estimator graph takes: inside the served model, and the FIL step's input."""
OUTPUT = "output__0"


# ------------------------------------------------------------------------------------ training set shape
def input_columns(spec: ModelSpec, frame: pd.DataFrame) -> list[str]:
    """The model's raw input columns in `frame`, in frame order.

    Feature-service models take every column except the entity keys, `event_timestamp` and the label;
    request-field models take the request fields.
    """
    if spec.inputs.request_fields is not None:
        names = [f.name for f in spec.inputs.request_fields]
        _require_columns(frame, names, "request field")
        return names
    excluded = {*spec.inputs.entity_keys, TIME_COLUMN, spec.label.column, *spec.label.passenger_columns}
    columns = [str(c) for c in frame.columns if c not in excluded]
    if not columns:
        raise ValueError(f"{spec.name}: training set has no feature columns besides keys, time and label")
    stamps = [c for c in columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    if stamps:
        raise ValueError(
            f"{spec.name}: training set column {stamps[0]!r} is a timestamp, not a feature "
            f"(only {TIME_COLUMN!r} may hold time)"
        )
    return columns


def _require_columns(frame: pd.DataFrame, names: list[str], what: str) -> None:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"training set lacks {what} column(s): {', '.join(missing)}")


def class_names(spec: ModelSpec) -> list[str]:
    """Output columns of `predict_proba`, in order: ["0", "1"] for binary, the spec's classes otherwise."""
    return list(spec.label.class_names)


def label_codes(spec: ModelSpec, frame: pd.DataFrame) -> np.ndarray:
    """The label column as int64 indices into `class_names(spec)` (1, 1.0, True and "1" all name "1");
    a ranker's label is its graded relevance as int64 (0 = not relevant)."""
    from core.metrics import encode_labels  # scikit-learn is slow to import: specs load without it

    column = spec.label.column
    _require_columns(frame, [column], "label")
    missing = int(frame[column].isna().sum())
    if missing:
        raise ValueError(f"label column {column!r} has {missing} missing values")
    if spec.label.task == "ranking":
        return _relevance(frame[column])
    try:
        return encode_labels(frame[column], class_names(spec))
    except ValueError as error:
        raise ValueError(f"label column {column!r}: {error}") from None


def _relevance(values: pd.Series) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = values[numbers.isna() | (numbers < 0) | (numbers % 1 != 0)]
    if len(bad):
        raise ValueError(
            f"label column {values.name!r}: relevance must be a whole number >= 0, got {str(bad.iloc[0])!r} "
            f"({len(bad)} rows)"
        )
    return numbers.to_numpy(dtype=np.int64)


def query_ids(spec: ModelSpec, frame: pd.DataFrame) -> np.ndarray:
    """A ranker's query of each row (`label.group_column`) as int64 codes, in order of first appearance."""
    column = spec.label.group_column
    if column is None:
        raise ValueError(f"{spec.name}: only a ranking model has queries")
    _require_columns(frame, [column], "group")
    if frame[column].isna().any():
        raise ValueError(f"group column {column!r} has {int(frame[column].isna().sum())} missing values")
    return pd.factorize(frame[column])[0].astype(np.int64)


# ------------------------------------------------------------------------------------------- the score
def score_metric(spec: ModelSpec) -> str:
    """The metric `fit` reports on the validation split: the search metric, else the primary metric."""
    search = spec.training.search
    return search.metric if search is not None else spec.evaluation.primary_metric


def validation_metric(name: str, y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> float:
    """Metric `name` of `proba` (rows x classes) against class indices `y_true`.

    Computed by the evaluate step's `classification_metrics`, so a validation score means exactly what
    the same metric on the test split means (binary AUCs on classes[1], multiclass one-vs-rest macro).
    """
    from core.metrics import classification_metrics

    if name not in METRIC_NAMES:
        raise ValueError(f"unknown validation metric {name!r}; known: {', '.join(METRIC_NAMES)}")
    labels = np.asarray(classes, dtype=object)[np.asarray(y_true, dtype=np.int64)]
    return float(classification_metrics(labels, proba, classes)[name])


def validation_score(spec: ModelSpec, frame: pd.DataFrame, proba: np.ndarray) -> float:
    """The score a framework's `fit` returns: the search metric (else the primary metric) on `frame`."""
    if spec.label.task == "ranking":
        return float(ranker_metrics(spec, frame, proba)[score_metric(spec)])
    return validation_metric(score_metric(spec), label_codes(spec, frame), proba, class_names(spec))


def ranker_metrics(spec: ModelSpec, frame: pd.DataFrame, scores: np.ndarray) -> dict[str, float]:
    """A ranker's metrics at the spec's cut-offs (core/ranking_metrics.py) of `scores` (one per row, or
    the predictor's one-column output) on `frame`'s queries and relevance, plus `rows`."""
    from core.ranking_metrics import ranking_metrics

    values = np.asarray(scores, dtype=np.float64).reshape(len(frame), -1)[:, 0]
    metrics = ranking_metrics(query_ids(spec, frame), label_codes(spec, frame), values, ks=spec.label.k)
    return {**metrics, "rows": float(len(frame))}


# ------------------------------------------------------------------------------------------ resources
def training_threads() -> int:
    """Threads a trainer may use: `MLOPS_TRAIN_THREADS` (see core/settings.py for why the default is 1)."""
    return settings().train_threads


# ---------------------------------------------------------------------------------------------- bundles
def describe_bundle(
    spec: ModelSpec,
    inputs: list[str],
    native_files: list[str],
    triton_inputs: list[dict[str, Any]],
    params: dict[str, Any],
    training: dict[str, Any] | None = None,
) -> BundleInfo:
    """The `BundleInfo` of a freshly fitted model; the train step adds the split and search record later."""
    classes = class_names(spec)
    return BundleInfo(
        model_name=spec.name,
        framework=spec.framework,
        task=spec.label.task,
        label=spec.label.column,
        classes=classes,
        inputs=list(inputs),
        native_files=list(native_files),
        triton_inputs=triton_inputs,
        triton_outputs=[{"name": OUTPUT, "datatype": "FP32", "dims": [len(classes)]}],
        hyperparameters=dict(params),
        training=dict(training or {}),
    )


class TabularPredictor:
    """Base of the tabular predictors: raw rows -> encoder matrix -> the model's probabilities.

    `encode` gives what the served model takes: the raw features as named tensors (core/raw_features.py);
    the version's preprocessing runs inside the model, as in `predict_proba` here."""

    def __init__(self, info: BundleInfo, encoder: FeatureEncoder) -> None:
        self.info = info
        self.encoder = encoder

    def _check_columns(self, frame: pd.DataFrame) -> None:
        missing = [c for c in self.info.inputs if c not in frame.columns]
        if missing:
            raise ValueError(f"{self.info.model_name}: input rows lack column(s): {', '.join(missing)}")

    def encode(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        self._check_columns(frame)
        return raw_arrays(frame, self.encoder.raw_inputs)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        self._check_columns(frame)
        return self.predict_encoded(self.encoder.transform(frame))

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        raise NotImplementedError
