"""Quality metrics from joined outcomes (names fixed by the mlops-quality alert rules), and how the rolling
window is scored (scikit-learn, the same functions the evaluate step uses).

Gauges are NaN while a metric is undefined on the window (ROC AUC with one class only): Prometheus
comparisons with NaN are false, so an undefined metric never fires ModelQualityBelowFloor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from monitoring.quality.outcomes import REJECT_REASONS

QUALITY_METRICS = ("accuracy", "roc_auc", "log_loss")
UNMATCHED_REASONS = (
    "unknown_request",  # no logged prediction has that id (never seen, or older than the store keeps)
    "no_prediction",  # the request was logged but its response (the probabilities) never arrived
    "ambiguous",  # a bare id for a request of several rows: name the row as id#row
    "duplicate",  # every matching row has its outcome already (the first label stands)
    "bad_label",  # the label is not one of the model's classes
)
UNLOGGED_REASONS = ("bad_response", "row_mismatch")


def usable_rows(labels: Sequence[int], proba: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """The rows that can be scored. A store written before responses were checked at the door may hold
    NaN or all-zero rows: one of them would fail the whole window, and the service's start with it."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    if len(y) == 0:
        return y, p
    usable = np.isfinite(p).all(axis=1) & (p >= 0).all(axis=1) & (p.sum(axis=1) > 0)
    return y[usable], p[usable]


def window_metrics(labels: Sequence[int], proba: Sequence[Sequence[float]]) -> dict[str, float]:
    """accuracy, roc_auc (one-vs-rest macro for multiclass) and log_loss of the window's rows."""
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    y, p = usable_rows(labels, proba)
    if len(y) == 0:
        return dict.fromkeys(QUALITY_METRICS, math.nan)
    p = p / p.sum(axis=1, keepdims=True)  # FP32 outputs seldom sum to exactly 1; log loss insists
    classes = list(range(p.shape[1]))
    scores = {
        "accuracy": float(accuracy_score(y, p.argmax(axis=1))),
        "log_loss": float(log_loss(y, p, labels=classes)),
        "roc_auc": math.nan,
    }
    present = np.unique(y)
    if len(present) == len(classes):  # undefined unless every class occurs in the window
        if len(classes) == 2:
            scores["roc_auc"] = float(roc_auc_score(y, p[:, 1]))
        else:
            scores["roc_auc"] = float(roc_auc_score(y, p, multi_class="ovr", labels=classes))
    return scores


class QualityMetrics:
    def __init__(
        self, registry: CollectorRegistry, version_label: Callable[[str, str], str] | None = None
    ) -> None:
        # The drift service's label policy (loaded detectors' versions, the rest under one label), so a
        # client naming versions at random cannot add series; identity when used alone.
        self.version_label = version_label or (lambda model, version: version)
        labels = ["model", "version"]
        self.gauges = {
            name: Gauge(
                f"mlops_model_quality_{name}",
                f"{name} over the rolling window of joined outcomes.",
                labels,
                registry=registry,
            )
            for name in QUALITY_METRICS
        }
        self.ranking = Gauge(
            "mlops_model_ranking_quality",
            "A ranker's NDCG@k, CTR@k and MRR over the rolling window of joined clicks "
            "(monitoring/quality/ranking.py), by metric.",
            [*labels, "metric"],
            registry=registry,
        )
        self.window_rows = Gauge(
            "mlops_model_quality_window_rows",
            "Joined outcomes in the rolling window the quality gauges are computed on.",
            labels,
            registry=registry,
        )
        self.labeled = Counter(
            "mlops_model_quality_labeled",
            "Prediction rows joined to an outcome (on start: the rows the store holds labeled).",
            labels,
            registry=registry,
        )
        self.floor = Gauge(
            "mlops_model_quality_floor",
            "The model spec's evaluation floor (minimum; maximum for lower-is-better metrics).",
            ["model", "metric"],
            registry=registry,
        )
        self.unmatched = Counter(
            "mlops_model_quality_outcomes_unmatched",
            "Outcomes that labeled no logged prediction, by reason.",
            ["reason"],
            registry=registry,
        )
        self.rejected = Counter(
            "mlops_model_quality_outcomes_rejected",
            "Outcome payloads answered 400, by reason.",
            ["reason"],
            registry=registry,
        )
        self.outcomes = Counter(
            "mlops_model_outcomes",
            "Prediction rows joined to an outcome, by the outcome's class: the business outcome a canary "
            "experiment tests (starts at 0 with the process; read it with increase()).",
            [*labels, "outcome"],
            registry=registry,
        )
        self.unlogged = Counter(
            "mlops_model_quality_predictions_unlogged",
            "Inference responses whose probabilities could not be logged, by reason.",
            [*labels, "reason"],
            registry=registry,
        )
        for reason in UNMATCHED_REASONS:
            self.unmatched.labels(reason=reason)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason=reason)

    def register_version(self, model: str, version: str, labeled: int = 0) -> None:
        # Present at 0 from start, and restored from the store so `>= 100 outcomes` survives a restart.
        label = self.version_label(model, version)
        self.labeled.labels(model=model, version=label).inc(labeled)
        for reason in UNLOGGED_REASONS:
            self.unlogged.labels(model=model, version=label, reason=reason)

    def count_labeled(self, model: str, version: str, rows: int) -> None:
        self.labeled.labels(model=model, version=self.version_label(model, version)).inc(rows)

    def count_outcome(self, model: str, version: str, outcome: str, rows: int) -> None:
        version = self.version_label(model, version)
        self.outcomes.labels(model=model, version=version, outcome=outcome).inc(rows)

    def count_unlogged(self, model: str, version: str, reason: str) -> None:
        self.unlogged.labels(model=model, version=self.version_label(model, version), reason=reason).inc()

    def set_floors(self, model: str, floors: Mapping[str, float]) -> None:
        for metric, value in floors.items():
            self.floor.labels(model=model, metric=metric).set(value)

    def set_window(self, model: str, version: str, rows: int, scores: Mapping[str, float]) -> None:
        if self.version_label(model, version) != version:
            return  # one window per version: versions under a shared label would overwrite each other
        self.window_rows.labels(model=model, version=version).set(rows)
        for name, value in scores.items():
            if name in self.gauges:
                self.gauges[name].labels(model=model, version=version).set(value)
            else:  # a ranker's metrics: one family, the metric as a label (joins the spec's floors)
                self.ranking.labels(model=model, version=version, metric=name).set(value)
