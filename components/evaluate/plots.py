"""Evaluation plots as PNG files: ROC, precision-recall, reliability diagram, confusion matrix.

Figures are drawn with `matplotlib.figure.Figure` and the Agg canvas directly, not `pyplot`: no global
backend switch, no figure registry to leak, safe in threads and without a display. `y` are class
indices (see `metrics.encode_labels`); binary plots show the positive class `classes[1]`, multiclass
plots one curve per class (one-vs-rest).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from core.metrics import ECE_BINS

_SIZE = (5.0, 4.5)
_DPI = 100


def _new_axes(title: str, xlabel: str, ylabel: str):
    figure = Figure(figsize=_SIZE, dpi=_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return figure, axes


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def _curves(y: np.ndarray, proba: np.ndarray, classes: Sequence[str]):
    """(name, is_class, score) per curve to draw: the positive class, or each class with both outcomes."""
    columns = [1] if len(classes) == 2 else range(len(classes))
    for k in columns:
        is_class = np.asarray(y) == k
        if 0 < is_class.sum() < len(is_class):
            yield classes[k], is_class, proba[:, k]


def plot_roc(y: np.ndarray, proba: np.ndarray, classes: Sequence[str], path: str | Path) -> Path:
    figure, axes = _new_axes("ROC curve", "false positive rate", "true positive rate")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    for name, is_class, score in _curves(y, proba, classes):
        fpr, tpr, _ = roc_curve(is_class, score)
        axes.plot(fpr, tpr, label=f"class {name}")
    axes.legend(loc="lower right", fontsize="small")
    return _save(figure, path)


def plot_precision_recall(y: np.ndarray, proba: np.ndarray, classes: Sequence[str], path: str | Path) -> Path:
    figure, axes = _new_axes("Precision-recall curve", "recall", "precision")
    for name, is_class, score in _curves(y, proba, classes):
        precision, recall, _ = precision_recall_curve(is_class, score)
        line = axes.plot(recall, precision, label=f"class {name}")[0]
        axes.axhline(is_class.mean(), linestyle=":", color=line.get_color())  # a random model's level
    axes.set(xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="lower left", fontsize="small")
    return _save(figure, path)


def plot_reliability(y: np.ndarray, proba: np.ndarray, path: str | Path, bins: int = ECE_BINS) -> Path:
    """Accuracy against mean top-class confidence per bin (the bins ECE uses); the diagonal is calibrated."""
    figure, axes = _new_axes("Reliability diagram", "mean top-class confidence", "accuracy")
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == np.asarray(y)
    which = np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], confidence, side="left")
    used = np.unique(which)
    mean_conf = [confidence[which == b].mean() for b in used]
    accuracy = [correct[which == b].mean() for b in used]
    sizes = [int((which == b).sum()) for b in used]
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    axes.scatter(mean_conf, accuracy, s=[20 + 180 * n / max(sizes, default=1) for n in sizes], zorder=3)
    axes.plot(mean_conf, accuracy, label="model (marker size = rows)")
    axes.set(xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="upper left", fontsize="small")
    return _save(figure, path)


def plot_confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path) -> Path:
    """Counts per (true, predicted) class, darker = more rows."""
    counts = np.asarray(matrix)
    figure, axes = _new_axes("Confusion matrix", "predicted class", "true class")
    image = axes.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axes)
    ticks = range(len(classes))
    axes.set_xticks(ticks, labels=list(classes), rotation=45, ha="right")
    axes.set_yticks(ticks, labels=list(classes))
    threshold = counts.max() / 2 if counts.size else 0
    for (i, j), n in np.ndenumerate(counts):
        axes.text(j, i, str(n), ha="center", va="center", color="white" if n > threshold else "black")
    return _save(figure, path)
