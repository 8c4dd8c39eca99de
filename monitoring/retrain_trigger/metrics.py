"""The trigger's Prometheus metrics (names fixed by the platform's metric contract; base units).

Each `TriggerMetrics` owns a registry, so several apps (tests) can live in one process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

WEBHOOK_OUTCOMES = (
    "triggered",
    "deduplicated",
    "cooldown",
    "in_flight",
    "ignored_resolved",
    "ignored_not_retrain",
    "rejected",
    "unauthorized",
)
RUN_STATUSES = ("submitted", "failed")


class TriggerMetrics:
    """`webhooks_total` counts alerts by outcome (and whole requests for rejected/unauthorized);
    `runs_total{status="failed"}` counts runs that failed to start or ended failed."""

    def __init__(self, models: Iterable[str], registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.webhooks = Counter(
            "mlops_retrain_trigger_webhooks",
            "Alerts (or, for rejected/unauthorized, requests) received by the retrain trigger, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.runs = Counter(
            "mlops_retrain_trigger_runs",
            "Retraining runs submitted, and runs that failed to start or ended failed.",
            ["model", "status"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "mlops_retrain_trigger_runs_in_flight",
            "Retraining runs pending, submitted or running, per model (at most one).",
            ["model"],
            registry=self.registry,
        )
        self._initialize_series(list(models))

    def _initialize_series(self, models: list[str]) -> None:
        # Series exist from the start at 0, so rate() and absent() work before the first alert.
        for outcome in WEBHOOK_OUTCOMES:
            self.webhooks.labels(outcome=outcome)
        for model in models:
            self.in_flight.labels(model=model).set(0)
            for status in RUN_STATUSES:
                self.runs.labels(model=model, status=status)

    def count_webhook(self, outcome: str, amount: int = 1) -> None:
        self.webhooks.labels(outcome=outcome).inc(amount)

    def count_run(self, model: str, status: str) -> None:
        self.runs.labels(model=model, status=status).inc()

    def set_in_flight(self, counts: Mapping[str, int], models: Iterable[str]) -> None:
        for model in {*models, *counts}:
            self.in_flight.labels(model=model).set(counts.get(model, 0))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
