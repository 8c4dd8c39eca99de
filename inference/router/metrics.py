"""The router's Prometheus metrics (names fixed by the metric contract; base units).

Each `RouterMetrics` owns its registry, so several routers (tests) live in one process without clashes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

# Local Python-backend Triton answers in milliseconds; the top buckets catch a stalled upstream. Fine steps
# below 50 ms: the canary's p95 ratio is interpolated inside a bucket, and 5 -> 10 -> 25 ms steps alone
# turned equal versions into "1.5x slower" (seen in make run).
DURATION_BUCKETS = (
    *(0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04),
    *(0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "mlops_inference_requests",
            "Inference requests by model, registry version, role (stable|canary) and HTTP status",
            ["model", "version", "role", "code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "mlops_inference_request_duration_seconds",
            "Inference request duration through the router, upstream included",
            ["model", "version", "role"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
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

    def observe(self, model: str, version: str, role: str, code: int, seconds: float) -> None:
        self.requests.labels(model, version, role, str(code)).inc()
        self.duration.labels(model, version, role).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
