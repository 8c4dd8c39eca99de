"""The shadow comparator: one live answer and the shadow version's answer to the same request in, Prometheus
metrics out. It reads only OIP JSON answer bodies and two latencies, so it does not care who mirrored the
request or how the answers reached it.

Why the comparator owns its metrics (and the router does not): the router's own metrics are its health as a
stand-in (metrics.py), and nothing in KServe, Triton or the Gateway produces a comparison of two versions'
answers. So these series are the comparator's, under the `mlops_shadow_` prefix, served by the process it
runs in: locally the shadow mirror's own process (shadow_worker.py; the router plays the Gateway's
`RequestMirror` filter, which copies the request and throws the shadow's answer away); on a cluster the
shadow comparator (monitoring/shadow_join), which joins the live and the shadow InferenceService's KServe
payload events by the request id the mirror copies. The metric names and their meaning are the contract
both keep (inference/canary/shadow_verdict.py reads them).

Series, each labelled `model` and `version` (the shadow version under evaluation):
- `mlops_shadow_requests_total{result}`: compared | error (the shadow failed, timed out or answered something
  that cannot be compared with the live answer); copies the router's queue dropped are the router's
  `mlops_router_shadow_dropped_total`;
- `mlops_shadow_rows_total`, `mlops_shadow_agreement_total`: rows compared, rows whose top class agrees (a
  ranker's: rows the two versions put at the same rank within the request's candidates);
- `mlops_shadow_score_abs_difference`: histogram of each row's mean |live - shadow| over the classes;
- `mlops_shadow_rank_correlation`: Spearman's rho of the positive-class score (the last class) over the last
  `window` rows (scipy.stats.spearmanr), recomputed every RECOMPUTE_EVERY rows; NaN while the window has
  fewer than MIN_ROWS rows or one side's scores are all equal;
- `mlops_shadow_latency_seconds{role=live|shadow}`: the time each version's Triton call took for the same
  requests (only compared requests, so the two histograms describe the same population).

The probability output is the first FP16/FP32/FP64 output shaped [rows, classes >= 2] (the exported models'
class probabilities), else a ranker's scores shaped [rows, 1]; an answer without one is an error, not a
comparison.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 500
MIN_ROWS = 10
RECOMPUTE_EVERY = 20  # rows between two Spearman computations: it sorts the whole window
_FLOATS = ("FP16", "FP32", "FP64")
_DIFFERENCE_BUCKETS = (0.0001, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Incomparable(ValueError):
    """An answer the comparator cannot read as class probabilities (the message says why)."""


@dataclass(frozen=True)
class Answer:
    """One version's answer to the request: its OIP JSON body and how long its Triton call took."""

    body: bytes
    latency_s: float


class ShadowMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["model", "version"]
        self.requests = Counter(
            "mlops_shadow_requests",
            "Live request copies sent to the shadow version, by result (compared, error)",
            [*labels, "result"],
            registry=registry,
        )
        self.rows = Counter("mlops_shadow_rows", "Rows compared", labels, registry=registry)
        agreeing = "Rows whose top class the shadow and live agree on"
        self.agreement = Counter("mlops_shadow_agreement", agreeing, labels, registry=registry)
        self.score_difference = Histogram(
            "mlops_shadow_score_abs_difference",
            "Per row, the mean absolute difference of the class probabilities (shadow vs live)",
            labels,
            buckets=_DIFFERENCE_BUCKETS,
            registry=registry,
        )
        self.rank_correlation = Gauge(
            "mlops_shadow_rank_correlation",
            "Spearman rank correlation of the positive-class score, shadow vs live, over the last window",
            labels,
            registry=registry,
        )
        self.latency = Histogram(
            "mlops_shadow_latency_seconds",
            "Triton call time of the live and the shadow version for the same compared requests",
            [*labels, "role"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )


class ShadowComparator:
    """Thread-safe: the mirror's workers call `compare` and `failed` concurrently."""

    def __init__(self, registry: CollectorRegistry, window: int = DEFAULT_WINDOW) -> None:
        self.metrics = ShadowMetrics(registry)
        self.window = window
        self._scores: dict[tuple[str, str], deque[tuple[float, float]]] = {}
        self._since_computed: dict[tuple[str, str], int] = {}
        self._last_failure: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def failed(self, model: str, version: str, reason: str) -> None:
        self.metrics.requests.labels(model, version, "error").inc()
        # one line per new reason, not per copy: a shadow Triton does not serve fails every copy
        if self._last_failure.get((model, version)) != reason:
            self._last_failure[(model, version)] = reason
            log.warning(
                "shadow %s version %s: %s (counted, not logged again until it changes)",
                model,
                version,
                reason,
            )

    def compare(self, model: str, version: str, live: Answer, shadow: Answer) -> None:
        """Record one comparison; an answer that cannot be compared is counted as an error."""
        try:
            live_p, shadow_p = probabilities(live.body, "live"), probabilities(shadow.body, "shadow")
            if live_p.shape != shadow_p.shape:
                raise Incomparable(f"live answer has shape {live_p.shape}, shadow {shadow_p.shape}")
        except Incomparable as exc:
            self.failed(model, version, str(exc))
            return
        m = self.metrics
        m.requests.labels(model, version, "compared").inc()
        m.rows.labels(model, version).inc(len(live_p))
        # incremented by 0 too: a series that exists at 0 says "compared, none agreed"
        m.agreement.labels(model, version).inc(agreeing_rows(live_p, shadow_p))
        for difference in np.abs(live_p - shadow_p).mean(axis=1):
            m.score_difference.labels(model, version).observe(float(difference))
        m.latency.labels(model, version, "live").observe(live.latency_s)
        m.latency.labels(model, version, "shadow").observe(shadow.latency_s)
        self._add_scores(model, version, live_p[:, -1], shadow_p[:, -1])

    def _add_scores(self, model: str, version: str, live: np.ndarray, shadow: np.ndarray) -> None:
        key = (model, version)
        with self._lock:
            window = self._scores.setdefault(key, deque(maxlen=self.window))
            window.extend(zip(live.tolist(), shadow.tolist(), strict=True))
            pending = self._since_computed.get(key, RECOMPUTE_EVERY) + len(live)
            if pending < RECOMPUTE_EVERY or len(window) < MIN_ROWS:
                self._since_computed[key] = pending
                return
            self._since_computed[key] = 0
            pairs = np.asarray(window)
        self.metrics.rank_correlation.labels(model, version).set(rank_correlation(pairs[:, 0], pairs[:, 1]))


def agreeing_rows(live: np.ndarray, shadow: np.ndarray) -> int:
    """Rows whose top class agrees; for a ranker's scores [rows, 1], rows at the same rank in both orders."""
    if live.shape[1] == 1:
        return int((_ranks(live[:, 0]) == _ranks(shadow[:, 0])).sum())
    return int((live.argmax(axis=1) == shadow.argmax(axis=1)).sum())


def _ranks(scores: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(-scores, kind="stable"), kind="stable")


def rank_correlation(live: np.ndarray, shadow: np.ndarray) -> float:
    """Spearman's rho (scipy), NaN when either side has one value only (no ranking to compare)."""
    if len(live) < 2 or np.ptp(live) == 0 or np.ptp(shadow) == 0:
        return math.nan
    from scipy.stats import spearmanr  # a second to import: only once a window is full enough

    return float(spearmanr(live, shadow).statistic)


def probabilities(body: bytes, role: str) -> np.ndarray:
    """The [rows, classes] probability output of an OIP JSON answer, else a ranker's [rows, 1] scores
    (raises `Incomparable`)."""
    try:
        answer = json.loads(body)
    except ValueError:
        raise Incomparable(f"{role} answer is not JSON") from None
    outputs = answer.get("outputs") if isinstance(answer, dict) else None
    tensors = [_probability_tensor(output) for output in (outputs if isinstance(outputs, list) else [])]
    found = [t for t in tensors if t is not None]
    for tensor in sorted(found, key=lambda t: t.shape[1] < 2):  # class probabilities first, then scores
        return tensor
    raise Incomparable(f"{role} answer has no FP output shaped [rows, classes >= 2] or [rows, 1]")


def _probability_tensor(output: Any) -> np.ndarray | None:
    if not isinstance(output, dict) or output.get("datatype") not in _FLOATS:
        return None
    shape = output.get("shape")
    if not isinstance(shape, list) or len(shape) != 2 or not all(isinstance(d, int) for d in shape):
        return None
    if shape[1] < 1:
        return None
    try:
        return np.asarray(output.get("data"), dtype=np.float64).reshape(shape)
    except (TypeError, ValueError):
        return None
