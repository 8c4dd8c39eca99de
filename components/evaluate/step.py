"""Evaluate a trained model on its held-out test rows: metrics, slices, behavioural checks, plots, the
Evidently report.

    evaluation = evaluate(load_predictor(bundle_dir), test_rows, train_rows, spec, out_dir)
    evaluation.metrics["roc_auc"], evaluation.metrics_path  # out_dir/metrics.json

`metrics.json` is what the gate and the registry read; it is plain JSON (NaN is written as null) and
names its files relative to `out_dir`, so the folder can move (KFP artifacts, MLflow uploads).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.evaluate.plots import plot_confusion, plot_precision_recall, plot_reliability, plot_roc
from components.evaluate.report import cap_rows, write_report
from components.evaluate.tracking import open_attempt
from core.behaviour import CheckResult, run_checks
from core.bundle import Predictor, load_predictor
from core.metrics import (
    classification_metrics,
    confusion,
    encode_labels,
    roc_points,
    slice_metrics,
)
from core.spec.model import ModelSpec, load_specs
from core.timing import timed_step

METRICS_FILE = "metrics.json"
REPORT_FILE = "evidently_report.html"
PLOTS_DIR = "plots"


@dataclass(frozen=True)
class Evaluation:
    """Everything `evaluate` measured; the files it wrote live under `out_dir`."""

    model: str
    classes: list[str]
    primary_metric: str
    metrics: dict[str, Any]
    """Overall test metrics (see `metrics.classification_metrics`); the gate reads these."""
    slices: dict[str, dict[str, dict[str, Any]]]
    confusion_matrix: dict[str, Any]
    """{"categories": classes, "matrix": rows = true class, columns = predicted}."""
    roc: dict[str, list[float]]
    """{"fpr", "tpr", "thresholds"}, at most 200 points (multiclass: micro-averaged one-vs-rest)."""
    behaviour: list[CheckResult]
    """The spec's behavioural checks on the test rows, in spec order; the gate fails on any failed one."""
    plots: dict[str, Path]
    report_path: Path | None
    metrics_path: Path

    def scalar_metrics(self) -> dict[str, float]:
        """The finite overall metrics as floats (what KFP's `Metrics.log_metric` and MLflow accept)."""
        return {
            name: float(value)
            for name, value in self.metrics.items()
            if isinstance(value, int | float) and math.isfinite(value)
        }

    def behaviour_metrics(self) -> dict[str, float]:
        """`behaviour.<check>` = what it measured, `behaviour.<check>.passed` = 1 or 0 (KFP and MLflow)."""
        metrics = {}
        for result in self.behaviour:
            if result.value is not None and math.isfinite(result.value):
                metrics[f"behaviour.{result.name}"] = float(result.value)
            metrics[f"behaviour.{result.name}.passed"] = float(result.passed)
        return metrics

    def to_json(self) -> dict[str, Any]:
        """The content of metrics.json: JSON-safe, NaN -> None, file paths relative to its folder."""
        folder = self.metrics_path.parent
        return json_safe(
            {
                "model": self.model,
                "classes": self.classes,
                "primary_metric": self.primary_metric,
                "metrics": self.metrics,
                "slices": self.slices,
                "confusion_matrix": self.confusion_matrix,
                "roc": self.roc,
                "behaviour": [result.to_json() for result in self.behaviour],
                "plots": {name: path.relative_to(folder).as_posix() for name, path in self.plots.items()},
                "report": self.report_path.relative_to(folder).as_posix() if self.report_path else None,
            }
        )


def evaluate(
    predictor: Predictor,
    test_frame: pd.DataFrame,
    train_frame: pd.DataFrame | None,
    spec: ModelSpec,
    out_dir: str | Path,
    *,
    with_report: bool = True,
) -> Evaluation:
    """Measure `predictor` on `test_frame` (metrics, slices and the spec's behavioural checks) and write
    metrics.json, plots/*.png and the Evidently report.

    `train_frame` (a sample of at most 5,000 rows is scored) is the report's reference; None, or
    `with_report=False`, leaves the drift section out or skips the report entirely.
    """
    info = predictor.info
    _check_rows(test_frame, info.inputs, info.label, spec, "test")
    if spec.label.task == "ranking":
        from components.evaluate.ranking import evaluate_ranking  # it builds on this module's Evaluation

        if train_frame is not None and not train_frame.empty:
            _check_rows(train_frame, info.inputs, info.label, spec, "training")
        return evaluate_ranking(predictor, test_frame, train_frame, spec, out_dir, with_report=with_report)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = list(info.classes)
    proba = np.asarray(predictor.predict_proba(test_frame), dtype=np.float64)
    labels = test_frame[info.label].to_numpy()
    y = encode_labels(labels, classes)
    predicted = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    matrix = confusion(labels, predicted, classes)["matrix"]
    evaluation = Evaluation(
        model=spec.name,
        classes=classes,
        primary_metric=spec.evaluation.primary_metric,
        metrics=classification_metrics(labels, proba, classes),
        slices=slice_metrics(test_frame, labels, proba, classes, spec.evaluation.slices),
        confusion_matrix={"categories": classes, "matrix": matrix},
        roc=roc_points(y, proba),
        behaviour=run_checks(spec, predictor, test_frame),
        plots=_write_plots(y, proba, classes, matrix, out_dir / PLOTS_DIR),
        report_path=(
            _write_report(predictor, test_frame, proba, train_frame, spec, out_dir / REPORT_FILE)
            if with_report
            else None
        ),
        metrics_path=out_dir / METRICS_FILE,
    )
    evaluation.metrics_path.write_text(json.dumps(evaluation.to_json(), indent=2, allow_nan=False))
    return evaluation


def _check_rows(frame: pd.DataFrame, inputs: list[str], label: str, spec: ModelSpec, which: str) -> None:
    if label != spec.label.column:
        raise ValueError(
            f"{spec.name}: the bundle predicts {label!r} but the spec's label is {spec.label.column!r}"
        )
    missing = [c for c in [*inputs, label] if c not in frame.columns]
    if missing:
        raise ValueError(f"{spec.name}: the {which} rows lack columns {missing}")
    if frame.empty:
        raise ValueError(f"{spec.name}: no {which} rows to evaluate")


def _write_plots(
    y: np.ndarray, proba: np.ndarray, classes: list[str], matrix: list[list[int]], folder: Path
) -> dict[str, Path]:
    return {
        "roc": plot_roc(y, proba, classes, folder / "roc.png"),
        "precision_recall": plot_precision_recall(y, proba, classes, folder / "precision_recall.png"),
        "reliability": plot_reliability(y, proba, folder / "reliability.png"),
        "confusion_matrix": plot_confusion(matrix, classes, folder / "confusion_matrix.png"),
    }


def _write_report(
    predictor: Predictor,
    test_frame: pd.DataFrame,
    test_proba: np.ndarray,
    train_frame: pd.DataFrame | None,
    spec: ModelSpec,
    path: Path,
) -> Path:
    info = predictor.info
    reference = reference_proba = None
    if train_frame is not None and not train_frame.empty:
        _check_rows(train_frame, info.inputs, info.label, spec, "training")
        reference = cap_rows(train_frame)  # scored here: predicting every training row may be slow
        reference_proba = predictor.predict_proba(reference)
    return write_report(
        test_frame,
        test_proba,
        reference,
        reference_proba,
        label=info.label,
        classes=info.classes,
        inputs=info.inputs,
        text_columns=text_columns(spec),
        path=path,
    )


def text_columns(spec: ModelSpec) -> list[str]:
    """Raw text inputs: string request fields (a feature service's string features are categories)."""
    return [f.name for f in spec.inputs.request_fields or () if f.dtype == "string"]


def json_safe(value: Any) -> Any:
    """`value` with NaN/inf -> None, numpy scalars/arrays -> Python, paths -> str, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------------------- the step
def run(
    model: str,
    lineage_json: str,
    pipeline_run: str,
    bundle_dir: str,
    test_path: str,
    training_path: str,
    evaluation_dir: str,
    report_path: str,
    kfp_metrics,
    kfp_classification,
) -> str:
    """Evaluate on the test rows, log to KFP, open the MLflow run of this attempt; returns its run id."""
    with timed_step("evaluate", model):
        (spec,) = load_specs(names=[model])
        predictor = load_predictor(bundle_dir)
        test = pd.read_parquet(test_path)
        training = pd.read_parquet(training_path)
        # Reference for the report: the rows before the test split (train and validation).
        reference = training[training["event_timestamp"] < test["event_timestamp"].min()]
        result = evaluate(predictor, test, reference, spec, Path(evaluation_dir))
        if result.report_path is not None:
            shutil.copyfile(result.report_path, report_path)
        _log_to_kfp(result, kfp_metrics, kfp_classification)
        return open_attempt(
            spec, pipeline_run, json.loads(lineage_json), predictor.info, result, evaluation_dir
        )


def _log_to_kfp(result, kfp_metrics, kfp_classification) -> None:
    for name, value in {**result.scalar_metrics(), **result.behaviour_metrics()}.items():
        kfp_metrics.log_metric(name, value)
    matrix = result.confusion_matrix
    if matrix["categories"]:  # a ranker has none
        kfp_classification.log_confusion_matrix(matrix["categories"], matrix["matrix"])
    roc = result.roc
    if roc["fpr"]:
        kfp_classification.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
