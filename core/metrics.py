"""Classification metrics on held-out rows: overall, per slice, confusion matrix and ROC points.

Names and meanings follow `core.spec.base.MetricName`, so the gate can read them directly.
Labels are raw label values (e.g. 0/1, or intent names); `classes` are the model's output columns in
order (`BundleInfo.classes`: binary ["0", "1"], so the positive class is `classes[1]`). A metric that
cannot be computed on these rows (e.g. AUC with one class present) is NaN, never an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score, roc_curve

ECE_BINS = 15
MIN_SLICE_ROWS = 20
MAX_ROC_POINTS = 200
# Probabilities are clipped here before the log, as scikit-learn does, so one confident miss is finite.
_LOG_EPS = 1e-15
MISSING_SLICE_VALUE = "<missing>"


def encode_labels(y_true: Any, classes: Sequence[str]) -> np.ndarray:
    """Class indices (positions in `classes`) for raw label values; unknown labels are a ValueError."""
    names = _label_names(pd.Series(np.asarray(y_true, dtype=object)))
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise ValueError(f"label values {unknown[:5]} are not among the model's classes {list(classes)}")
    return np.array([index[name] for name in names], dtype=np.int64)


def _label_names(values: pd.Series) -> list[str]:
    """Label values as class-name strings: 1, 1.0, True and "1" all name class "1"."""

    def name(value: Any) -> str:
        if isinstance(value, bool | np.bool_):
            return str(int(value))
        if isinstance(value, float | np.floating) and float(value).is_integer():
            return str(int(value))
        return str(value)

    return [name(v) for v in values]


def classification_metrics(y_true: Any, proba: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """roc_auc, pr_auc, f1, accuracy, log_loss, brier_score, expected_calibration_error, plus counts.

    Binary (two classes): roc_auc and pr_auc (average precision) of P(classes[1]); f1 of the positive
    class at threshold 0.5; brier_score of P(classes[1]); `positive_rate` is the share of positives.
    Multiclass: roc_auc and pr_auc are one-vs-rest macro averages over the classes present with both
    outcomes, f1 is macro F1 of the argmax, brier_score is the mean over classes of the one-vs-rest
    Brier score. Both: accuracy of the argmax; log_loss with probabilities clipped to [1e-15, 1];
    `class_counts` per class; expected_calibration_error as in Guo et al. (2017): the top-class
    confidence max_k p_k is put into 15 equal-width bins on [0, 1], and ECE = sum over bins of
    (rows in bin / rows) * |accuracy in bin - mean confidence in bin|.
    """
    proba = _checked_proba(proba, classes)
    y = encode_labels(y_true, classes)
    if len(y) != len(proba):
        raise ValueError(f"{len(y)} labels but {len(proba)} probability rows")
    predicted = proba.argmax(axis=1)
    counts = np.bincount(y, minlength=len(classes))
    result: dict[str, Any] = {
        "roc_auc": _roc_auc(y, proba),
        "pr_auc": _pr_auc(y, proba),
        "f1": _f1(y, proba, predicted),
        "accuracy": float(np.mean(predicted == y)) if len(y) else float("nan"),
        "log_loss": _log_loss(y, proba),
        "brier_score": _brier(y, proba),
        "expected_calibration_error": expected_calibration_error(y, proba),
        "rows": len(y),
        "class_counts": {name: int(n) for name, n in zip(classes, counts, strict=True)},
    }
    if len(classes) == 2:
        result["positive_rate"] = float(counts[1] / len(y)) if len(y) else float("nan")
    return result


def _checked_proba(proba: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        raise ValueError(f"probabilities must have shape (rows, {len(classes)}), got {proba.shape}")
    return proba


def _one_vs_rest(y: np.ndarray, proba: np.ndarray, score) -> float:
    """`score(is_class_k, p_k)` averaged over classes with both outcomes present (binary: class 1 only)."""
    columns = [1] if proba.shape[1] == 2 else range(proba.shape[1])
    values = [score(y == k, proba[:, k]) for k in columns if 0 < np.sum(y == k) < len(y)]
    return float(np.mean(values)) if values else float("nan")


def _roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    return _one_vs_rest(y, proba, roc_auc_score)


def _pr_auc(y: np.ndarray, proba: np.ndarray) -> float:
    return _one_vs_rest(y, proba, average_precision_score)


def _f1(y: np.ndarray, proba: np.ndarray, predicted: np.ndarray) -> float:
    if not len(y):
        return float("nan")
    if proba.shape[1] == 2:
        return float(f1_score(y, (proba[:, 1] >= 0.5).astype(int), zero_division=0.0))
    labels = list(range(proba.shape[1]))
    return float(f1_score(y, predicted, labels=labels, average="macro", zero_division=0.0))


def _log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    if not len(y):
        return float("nan")
    picked = np.clip(proba[np.arange(len(y)), y], _LOG_EPS, 1.0)
    return float(-np.mean(np.log(picked)))


def _brier(y: np.ndarray, proba: np.ndarray) -> float:
    if not len(y):
        return float("nan")
    onehot = np.eye(proba.shape[1])[y]
    if proba.shape[1] == 2:
        return float(np.mean((proba[:, 1] - onehot[:, 1]) ** 2))
    return float(np.mean((proba - onehot) ** 2))  # = mean over classes of each one-vs-rest Brier score


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over `bins` equal-width bins (right-closed) of the top-class confidence; `y` are indices."""
    if not len(y):
        return float("nan")
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    inner_edges = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    which = np.searchsorted(inner_edges, confidence, side="left")
    total = 0.0
    for b in np.unique(which):
        members = which == b
        total += members.sum() * abs(correct[members].mean() - confidence[members].mean())
    return float(total / len(y))


def slice_metrics(
    frame: pd.DataFrame,
    y_true: Any,
    proba: np.ndarray,
    classes: Sequence[str],
    slice_columns: Sequence[str],
) -> dict[str, dict[str, dict[str, Any]]]:
    """{column: {value: metrics + rows}} for each value of each slice column (missing -> "<missing>").

    Slices with fewer than 20 rows get only `rows` and `skipped` (their metrics would be noise); a slice
    with a single class keeps its other metrics but AUCs are NaN, with `auc_skipped` saying why.
    """
    missing = [c for c in slice_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"slice columns {missing} are not in the evaluated rows (see evaluation.slices)")
    labels = np.asarray(y_true, dtype=object)
    proba = _checked_proba(proba, classes)
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for column in slice_columns:
        keys = frame[column].astype("object").where(frame[column].notna(), MISSING_SLICE_VALUE)
        keys = keys.map(str).to_numpy()
        result[column] = {
            value: _one_slice(labels[keys == value], proba[keys == value], classes)
            for value in sorted(set(keys))
        }
    return result


def _one_slice(labels: np.ndarray, proba: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    rows = len(labels)
    if rows < MIN_SLICE_ROWS:
        return {"rows": rows, "skipped": f"{rows} rows < {MIN_SLICE_ROWS}: too few for stable metrics"}
    metrics = classification_metrics(labels, proba, classes)
    present = [name for name, n in metrics["class_counts"].items() if n]
    if len(present) < 2:
        metrics["auc_skipped"] = f"single class {present[0]!r} in this slice: AUC undefined"
    return metrics


def confusion(y_true: Any, y_pred: Any, classes: Sequence[str]) -> dict[str, Any]:
    """Confusion matrix as KFP's `log_confusion_matrix` takes it: rows = true class, columns = predicted."""
    truth, predicted = encode_labels(y_true, classes), encode_labels(y_pred, classes)
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return {"categories": list(classes), "matrix": matrix.tolist()}


def roc_points(y_true: Any, proba: np.ndarray) -> dict[str, list[float]]:
    """ROC curve (fpr, tpr, thresholds) with at most 200 points, for KFP's `log_roc_curve`.

    `y_true` are class indices (0/1 for binary). `proba` is P(positive) per row, or a (rows, classes)
    matrix: column 1 for two classes, the micro-averaged one-vs-rest curve for more. scikit-learn's
    leading infinite threshold is reported as 1.0 (JSON has no infinity). No curve (empty lists) when
    only one class is present.
    """
    y = np.asarray(y_true, dtype=np.int64)
    scores = np.asarray(proba, dtype=np.float64)
    if scores.ndim == 2 and scores.shape[1] == 2:
        scores = scores[:, 1]
    elif scores.ndim == 2:
        y, scores = (np.eye(scores.shape[1])[y].ravel(), scores.ravel())
    if len(np.unique(y)) < 2:
        return {"fpr": [], "tpr": [], "thresholds": []}
    fpr, tpr, thresholds = roc_curve(y, scores)
    keep = _evenly_spaced(len(fpr), MAX_ROC_POINTS)
    return {
        "fpr": fpr[keep].tolist(),
        "tpr": tpr[keep].tolist(),
        "thresholds": np.minimum(thresholds[keep], 1.0).tolist(),
    }


def _evenly_spaced(length: int, limit: int) -> np.ndarray:
    """Indices of at most `limit` points, always keeping the first and last (the curve's ends)."""
    if length <= limit:
        return np.arange(length)
    return np.unique(np.linspace(0, length - 1, limit).round().astype(int))
