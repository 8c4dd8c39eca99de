"""The drift service's Prometheus metrics (names fixed by the platform's metric contract; base units).

Each `DriftMetrics` owns a registry, so several services (tests) can live in one process.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from monitoring.detectors.base import DriftResult
from monitoring.payloads.errors import REJECT_REASONS
from monitoring.payloads.logged import UNKNOWN_VERSION

EVENT_KINDS = ("request", "response")
DROP_REASONS = ("buffer_full", "detector_error", "no_detector", "unknown_version", "journal_unreadable")
REFUSE_REASONS = ("journal_unavailable",)  # answered 503: not acknowledged, so not a drop
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
OTHER_VERSION = "other"
"""The `version` label of every version without a loaded detector: what an event names is a client's
string, and a label per distinct value would let anyone add series without bound."""
# Twenty equal bins of [0, 1]: the canary analysis computes the PSI between versions from these counts.
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))


def histogram_scores(probabilities: np.ndarray | None) -> list[float]:
    """What `mlops_prediction_score` observes per row of class probabilities [n, k]: P(class 1) of a
    binary model, else the top class's probability; a response without probabilities adds none."""
    if probabilities is None:
        return []
    if probabilities.shape[1] == 2:
        return probabilities[:, 1].tolist()
    return probabilities.max(axis=1).tolist()


class DriftMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._versions: set[tuple[str, str]] = set()
        self._received: dict[tuple[str, str, str], Any] = {}
        labels = ["model", "version"]
        self.received = Counter(
            "mlops_drift_events_received",
            "Inference CloudEvents accepted, by kind.",
            [*labels, "kind"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "mlops_drift_events_rejected",
            "CloudEvents refused: malformed or unroutable (400), too large (413), not storable (503).",
            ["reason"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "mlops_drift_events_dropped",
            "Rows (of accepted events) never scored, by reason.",
            [*labels, "reason"],
            registry=self.registry,
        )
        self.scored = Counter(
            "mlops_drift_rows_scored",
            "Rows of accepted events a detector scored.",
            labels,
            registry=self.registry,
        )
        self.objects = Counter(
            "mlops_drift_store_objects",
            "Payload-log objects read from object storage: ingested, rejected (not a KServe payload log; "
            "not read again) or failed (unreadable or not storable now; read again at the next poll).",
            ["outcome"],
            registry=self.registry,
        )
        self.replayed = Counter(
            "mlops_drift_rows_replayed",
            "Acknowledged rows read back from the journal at start (not scored before a restart).",
            labels,
            registry=self.registry,
        )
        self.statistic = Gauge(
            "mlops_drift_test_statistic",
            "The detector's test statistic in its last run.",
            [*labels, "feature"],
            registry=self.registry,
        )
        self.p_value = Gauge(
            "mlops_drift_p_value",
            "The detector's p-value in its last run.",
            [*labels, "feature"],
            registry=self.registry,
        )
        self.threshold = Gauge(
            "mlops_drift_threshold",
            "The detector's threshold (p-value after correction, or online).",
            labels,
            registry=self.registry,
        )
        self.detected = Gauge(
            "mlops_drift_detected",
            "1 when the last detector run found drift, else 0.",
            labels,
            registry=self.registry,
        )
        self.last_run = Gauge(
            "mlops_drift_last_run_timestamp_seconds",
            "Unix time of the last detector run.",
            labels,
            registry=self.registry,
        )
        self.duration = Histogram(
            "mlops_drift_detector_duration_seconds",
            "Time one detector run took.",
            labels,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.scores = Histogram(
            "mlops_prediction_score",
            "Scores the model answered with (P(positive class), or the top class's probability).",
            labels,
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )
        for reason in (*REJECT_REASONS, *REFUSE_REASONS):
            self.rejected.labels(reason=reason)

    def version_label(self, model: str, version: str) -> str:
        """`version` when a detector of it is loaded (or no source named one: UNKNOWN_VERSION), else
        OTHER_VERSION."""
        known = (model, version) in self._versions or version == UNKNOWN_VERSION
        return version if known else OTHER_VERSION

    def register_detector(self, model: str, version: str) -> None:
        self._versions.add((model, version))
        # Series exist at 0 from load time, so increase() sees the first event and absent() stays quiet.
        for kind in EVENT_KINDS:
            self.received.labels(model=model, version=version, kind=kind)
        for reason in DROP_REASONS:
            self.dropped.labels(model=model, version=version, reason=reason)
        self.detected.labels(model=model, version=version).set(0)
        self.duration.labels(model=model, version=version)
        self.scored.labels(model=model, version=version)
        self.replayed.labels(model=model, version=version)

    def count_received(self, model: str, version: str, kind: str) -> None:
        # Once per event: the labelled child is looked up once per (model, version, kind) and kept (the
        # keys are bounded: only models with a detector get here, unloaded versions share OTHER_VERSION).
        key = (model, self.version_label(model, version), kind)
        child = self._received.get(key)
        if child is None:
            child = self._received[key] = self.received.labels(model=key[0], version=key[1], kind=kind)
        child.inc()

    def observe_scores(self, model: str, version: str, scores: Iterable[float]) -> None:
        histogram = self.scores.labels(model=model, version=self.version_label(model, version))
        for score in scores:
            histogram.observe(score)

    def count_rejected(self, reason: str) -> None:
        self.rejected.labels(reason=reason).inc()

    def count_dropped(self, model: str, version: str, reason: str, rows: int) -> None:
        if rows:
            label = self.version_label(model, version)
            self.dropped.labels(model=model, version=label, reason=reason).inc(rows)

    def count_replayed(self, model: str, version: str, rows: int) -> None:
        if rows:
            self.replayed.labels(model=model, version=self.version_label(model, version)).inc(rows)

    def record_run(
        self,
        model: str,
        version: str,
        result: DriftResult,
        finished_at: float,
        duration_s: float,
    ) -> None:
        """Export one detector run; per-feature series appear with the first run that has them."""
        for feature, value in result.statistics.items():
            self.statistic.labels(model=model, version=version, feature=feature).set(value)
        for feature, value in result.p_values.items():
            self.p_value.labels(model=model, version=version, feature=feature).set(value)
        self.threshold.labels(model=model, version=version).set(result.threshold)
        self.detected.labels(model=model, version=version).set(1 if result.drift else 0)
        self.last_run.labels(model=model, version=version).set(finished_at)
        self.duration.labels(model=model, version=version).observe(duration_s)
        self.scored.labels(model=model, version=version).inc(result.rows)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
