"""The local router's own Prometheus metrics: its health as a stand-in (requests it could not route,
payload events it could not deliver), read by tests, the bench and whoever runs it, never by the canary
analysis, the alerts or the dashboard. Requests, errors and latency per version come from Triton, as on a
cluster (docs/signals.md), so the router records none.

The shadow comparator's `mlops_shadow_*` series are served by the mirror's own process (shadow.py,
shadow_worker.py); the router counts only the copies its queue could not take.

Each `RouterMetrics` owns its registry, so several routers (tests) live in one process without clashes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # Requests that never reached a route (unknown model or version): their names are not labels,
        # since clients choose them and would blow up the series count.
        self.unroutable = Counter(
            "mlops_router_unroutable_requests",
            "Requests for a model or version the route table does not hold",
            ["reason"],
            registry=self.registry,
        )
        self.logger_dropped = Counter(
            "mlops_router_logger_dropped",
            "CloudEvents not delivered to the logger URL (queue full or the post failed)",
            ["reason"],
            registry=self.registry,
        )
        self.logger_sent = Counter(
            "mlops_router_logger_sent",
            "CloudEvents delivered to the logger URL",
            registry=self.registry,
        )

        # the route's model and shadow version, never a client's words: one series per shadow route
        self.shadow_dropped = Counter(
            "mlops_router_shadow_dropped",
            "Live requests not copied to the shadow version, by reason (queue_full, too_large, stopped)",
            ["model", "version", "reason"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
