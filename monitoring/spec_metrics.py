"""The model specs' alert settings as per-model series, so the alert rules in
`manifests/monitoring/prometheus-rule.yaml` join them (`> on (namespace, model) group_left ...`) instead
of copying spec values into PromQL: a new or edited spec needs no rule change. The drift service exports
them at start, beside the evaluation floors (`mlops_model_quality_floor`, monitoring/quality/metrics.py).

Base units, label `model`:

    mlops_canary_max_error_rate                    canary.success.max_error_rate (a ratio)
    mlops_canary_max_p95_latency_ratio             canary.success.max_p95_latency_ratio
    mlops_canary_min_p95_latency_increase_seconds  canary.success.min_p95_latency_increase_ms / 1000
    mlops_drift_window_max_age_seconds             monitoring.window.max_age_s
    mlops_model_alert_severity{severity}           1, an info series: monitoring.alert_severity

Every spec of the spec folder that loads is exported (a model may be served before it has a detector); a
spec that does not load is logged and left out, so one broken file costs only its own model's series.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge

from core.errors import SpecError
from core.spec.model import SPEC_SUFFIX, ModelSpec, load_spec, spec_directory

log = logging.getLogger(__name__)

MS_PER_S = 1000.0


class SpecMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, documentation: str, *extra: str) -> Gauge:
            return Gauge(name, documentation, ["model", *extra], registry=registry)

        self.max_error_rate = gauge(
            "mlops_canary_max_error_rate",
            "The model spec's canary.success.max_error_rate: the share of canary requests that may fail.",
        )
        self.max_p95_latency_ratio = gauge(
            "mlops_canary_max_p95_latency_ratio",
            "The model spec's canary.success.max_p95_latency_ratio: canary p95 over stable p95.",
        )
        self.min_p95_latency_increase = gauge(
            "mlops_canary_min_p95_latency_increase_seconds",
            "The model spec's canary.success.min_p95_latency_increase_ms, in seconds.",
        )
        self.window_max_age = gauge(
            "mlops_drift_window_max_age_seconds",
            "The model spec's monitoring.window.max_age_s: the drift detection window.",
        )
        self.alert_severity = gauge(
            "mlops_model_alert_severity",
            "1 for the model spec's monitoring.alert_severity: the severity label of its drift alert.",
            "severity",
        )

    def export(self, spec: ModelSpec) -> None:
        success = spec.canary.success
        self.max_error_rate.labels(model=spec.name).set(success.max_error_rate)
        self.max_p95_latency_ratio.labels(model=spec.name).set(success.max_p95_latency_ratio)
        self.min_p95_latency_increase.labels(model=spec.name).set(
            success.min_p95_latency_increase_ms / MS_PER_S
        )
        self.window_max_age.labels(model=spec.name).set(spec.monitoring.window.max_age_s)
        self.alert_severity.labels(model=spec.name, severity=spec.monitoring.alert_severity).set(1)


def loadable_specs(spec_dir: str | Path | None = None) -> list[ModelSpec]:
    """Every spec in `spec_dir` (default: `spec_directory()`) that loads, by file name; the others are
    logged with their one-line SpecError."""
    directory = Path(spec_dir) if spec_dir is not None else spec_directory()
    specs: list[ModelSpec] = []
    for path in sorted(directory.glob(f"*{SPEC_SUFFIX}")):
        try:
            specs.append(load_spec(path))
        except SpecError as exc:
            log.warning("spec metrics: %s; its model's alerts lack their spec thresholds", exc)
    if not specs:
        log.warning("spec metrics: no loadable model spec in %s; no alert thresholds exported", directory)
    return specs


def export_spec_metrics(registry: CollectorRegistry, specs: Iterable[ModelSpec]) -> SpecMetrics:
    metrics = SpecMetrics(registry)
    for spec in specs:
        metrics.export(spec)
    return metrics
