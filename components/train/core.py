"""Training: split by time, fit (through the Optuna search when the spec has one), write the bundle.

    result = train(spec, training_set, out_dir)  # out_dir/bundle/ and out_dir/test.parquet

Framework modules (`<framework>_model.py`) implement `fit(spec, train, valid, params, out_dir)`; the
helpers below (input columns, label codes, the bundle description, the tabular encoder files) are shared
by them so every framework reads the training set the same way.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.train.search import SearchOutcome, run_search, score_metric, validation_metric
from components.train.splits import TIME_COLUMN, Splits, time_split
from core.bundle import BundleInfo, framework_module
from core.encoding import FeatureEncoder
from core.spec.model import ModelSpec

BUNDLE_DIR = "bundle"
TEST_FILE = "test.parquet"
SEARCH_DIR = ".search"
ENCODER_FILE = "encoder.json"
TABULAR_INPUT = "input__0"
OUTPUT = "output__0"
THREADS_ENV = "MLOPS_TRAIN_THREADS"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainResult:
    bundle_dir: Path
    test_path: Path
    metric: str
    validation_score: float
    best_params: dict[str, Any]
    trials: list[dict[str, Any]]
    splits: dict[str, dict[str, Any]]
    """Per split (train, valid, test): rows, start and end (ISO 8601 event times, inclusive)."""
    test: pd.DataFrame


# ------------------------------------------------------------------------------------------ orchestration
def train(
    spec: ModelSpec,
    training_set: pd.DataFrame,
    out_dir: Path,
    progress: Progress = print,
    *,
    bundle_dir: Path | None = None,
    test_path: Path | None = None,
) -> TrainResult:
    """Fit `spec` on `training_set`; write the bundle and the test rows.

    They go to `out_dir/bundle/` and `out_dir/test.parquet` unless `bundle_dir` / `test_path` say
    otherwise (a KFP component passes its output artifact paths). `out_dir` also holds the search's
    scratch folder while it runs.
    """
    out_dir = Path(out_dir)
    bundle_dir = Path(bundle_dir) if bundle_dir is not None else out_dir / BUNDLE_DIR
    test_path = Path(test_path) if test_path is not None else out_dir / TEST_FILE
    input_columns(spec, training_set)  # fail before any work on a malformed training set
    _require_two_classes(spec, training_set)
    splits = time_split(training_set, spec.training.split)
    _require_classes_per_split(spec, splits)
    summary = splits.summary()
    progress(f"{spec.name}: " + ", ".join(f"{name} {s['rows']} rows" for name, s in summary.items()))
    _remove(bundle_dir)
    outcome = _fit_or_search(spec, splits, bundle_dir, out_dir / SEARCH_DIR, progress)
    record = _training_record(spec, summary, outcome)
    info = outcome.predictor.info
    replace(info, training={**info.training, **record}).save(bundle_dir)
    test_path.parent.mkdir(parents=True, exist_ok=True)
    splits.test.to_parquet(test_path, index=False)
    return TrainResult(
        bundle_dir=bundle_dir,
        test_path=test_path,
        metric=score_metric(spec),
        validation_score=outcome.best_score,
        best_params=outcome.best_params,
        trials=outcome.trials,
        splits=summary,
        test=splits.test,
    )


def _fit_or_search(
    spec: ModelSpec, splits: Splits, bundle_dir: Path, work_dir: Path, progress: Progress
) -> SearchOutcome:
    """One fit with the spec's hyperparameters, or the search; either way the model ends in `bundle_dir`."""
    fit = framework_module(spec.framework).fit
    if spec.training.search is None:
        params = dict(spec.training.hyperparameters)
        predictor, score = fit(spec, splits.train, splits.valid, params, bundle_dir)
        progress(
            f"{spec.name}: fitted the spec's hyperparameters, validation {score_metric(spec)}={score:.4f}"
        )
        trials = [{"number": 0, "params": {}, "score": float(score)}]
        return SearchOutcome(params, float(score), 0, bundle_dir, predictor, trials)
    _remove(work_dir)  # left over from an interrupted run
    outcome = run_search(spec, splits.train, splits.valid, fit, work_dir, progress)
    shutil.move(outcome.best_dir, bundle_dir)  # move, not rename: the two may be on different volumes
    _remove(work_dir)
    return replace(outcome, best_dir=bundle_dir)


def _training_record(
    spec: ModelSpec, summary: dict[str, dict[str, Any]], outcome: SearchOutcome
) -> dict[str, Any]:
    search = None
    if spec.training.search is not None:
        search = {
            "n_trials": len(outcome.trials),
            "best_trial": outcome.best_number,
            "scores": [t["score"] for t in outcome.trials],
        }
    return {
        "splits": summary,
        "seed": spec.training.seed,
        "feature_service": spec.inputs.feature_service,
        "validation_metric": score_metric(spec),
        "validation_score": outcome.best_score,
        "best_params": outcome.best_params,
        "search": search,
    }


def _remove(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


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
    excluded = {*spec.inputs.entity_keys, TIME_COLUMN, spec.label.column}
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
    return ["0", "1"] if spec.label.task == "binary" else list(spec.label.classes or ())


def label_codes(spec: ModelSpec, frame: pd.DataFrame) -> np.ndarray:
    """The label column as int64 indices into `class_names(spec)` (1, 1.0, True and "1" all name "1")."""
    from core.metrics import encode_labels  # the evaluate step reads labels the same way

    column = spec.label.column
    _require_columns(frame, [column], "label")
    missing = int(frame[column].isna().sum())
    if missing:
        raise ValueError(f"label column {column!r} has {missing} missing values")
    try:
        return encode_labels(frame[column], class_names(spec))
    except ValueError as error:
        raise ValueError(f"label column {column!r}: {error}") from None


def validation_score(spec: ModelSpec, frame: pd.DataFrame, proba: np.ndarray) -> float:
    """The score a framework's `fit` returns: the search metric (else the primary metric) on `frame`."""
    return validation_metric(score_metric(spec), label_codes(spec, frame), proba, class_names(spec))


def _require_two_classes(spec: ModelSpec, frame: pd.DataFrame) -> None:
    present = np.unique(label_codes(spec, frame))
    if len(present) < 2:
        only = class_names(spec)[present[0]] if len(present) else "none"
        raise ValueError(f"label column {spec.label.column!r} has a single class ({only}): nothing to learn")


def _require_classes_per_split(spec: ModelSpec, splits: Splits) -> None:
    """Train must see every class (else the model cannot output it); validation needs two to score."""
    classes = class_names(spec)
    present = set(np.unique(label_codes(spec, splits.train)).tolist())
    absent = [name for index, name in enumerate(classes) if index not in present]
    if absent:
        raise ValueError(
            f"label column {spec.label.column!r}: class(es) {', '.join(absent)} have no rows in the "
            f"train split ({len(splits.train)} oldest rows)"
        )
    if len(np.unique(label_codes(spec, splits.valid))) < 2:
        raise ValueError(
            f"label column {spec.label.column!r} has a single class in the validation split "
            f"({len(splits.valid)} rows): the validation metric needs two"
        )


# ------------------------------------------------------------------------------ shared by the frameworks
def training_threads() -> int:
    """Threads a trainer may use: `MLOPS_TRAIN_THREADS`, default 1.

    OpenMP trainers spin-wait for busy cores: on a shared node (or a pod whose CPU limit is below the
    node's core count) two threads were 10-40x slower than one here. Raise it to the pod's CPU request.
    """
    value = os.environ.get(THREADS_ENV, "1")
    try:
        threads = int(value)
    except ValueError:
        raise ValueError(f"{THREADS_ENV} must be a positive integer, got {value!r}") from None
    if threads < 1:
        raise ValueError(f"{THREADS_ENV} must be a positive integer, got {value!r}")
    return threads


def describe_bundle(
    spec: ModelSpec,
    inputs: list[str],
    native_files: list[str],
    triton_inputs: list[dict[str, Any]],
    params: dict[str, Any],
    training: dict[str, Any] | None = None,
) -> BundleInfo:
    """The `BundleInfo` of a freshly fitted model; `train` adds the split and search record later."""
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


def tabular_inputs(encoder: FeatureEncoder) -> list[dict[str, Any]]:
    """The one FP32 tensor every tabular model takes: the encoder's output row."""
    return [{"name": TABULAR_INPUT, "datatype": "FP32", "dims": [len(encoder.output_names)]}]


def save_encoder(encoder: FeatureEncoder, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    # No sort_keys: FeatureEncoder.transform subtracts `means` as a pandas Series, and a key order
    # other than `numeric`'s reorders the output columns (seen: test ROC AUC 0.82 -> 0.63).
    (folder / ENCODER_FILE).write_text(json.dumps(encoder.to_dict(), indent=2))
    return ENCODER_FILE


def load_encoder(folder: Path) -> FeatureEncoder:
    path = Path(folder) / ENCODER_FILE
    if not path.exists():
        raise FileNotFoundError(f"{folder}: bundle has no {ENCODER_FILE}")
    return FeatureEncoder.from_dict(json.loads(path.read_text()))


class TabularPredictor:
    """Base of the tabular predictors: raw rows -> encoder matrix -> the model's probabilities."""

    def __init__(self, info: BundleInfo, encoder: FeatureEncoder) -> None:
        self.info = info
        self.encoder = encoder

    def encode(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        missing = [c for c in self.info.inputs if c not in frame.columns]
        if missing:
            raise ValueError(f"{self.info.model_name}: input rows lack column(s): {', '.join(missing)}")
        return {TABULAR_INPUT: self.encoder.transform(frame)}

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_encoded(self.encode(frame)[TABULAR_INPUT])

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        raise NotImplementedError
