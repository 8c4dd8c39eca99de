"""Canary evidence from metrics: Prometheus' HTTP API (the cluster) or the router's /metrics text (local).

Both read the router's metric contract, which the cluster's KServe/Knative metrics are exposed under too:
`mlops_inference_requests_total{model,version,role,code}` and the histogram
`mlops_inference_request_duration_seconds{model,version,role}`. Errors are the 5xx answers (a 4xx is the
client's fault, not the version's). Prediction scores are not metrics: the caller adds them
(`CanaryEvidence.with_scores`) from the answers it collected.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from inference.canary.analysis import CanaryEvidence, RoleEvidence, histogram_quantile

REQUESTS_METRIC = "mlops_inference_requests_total"
DURATION_METRIC = "mlops_inference_request_duration_seconds"
ERROR_CODES = '"5.."'
P95 = 0.95
ROLES = ("stable", "canary")


class EvidenceError(RuntimeError):
    """Metrics could not be fetched or read (the message names the source)."""


# ------------------------------------------------------------------------------------------ Prometheus
def prometheus_queries(model: str, window_s: int) -> dict[str, str]:
    """The PromQL for requests, errors and p95 latency per role of `model` over the last `window_s`."""
    selector = f'model="{_escape(model)}"'
    window = f"[{int(window_s)}s]"
    return {
        "requests": f"sum by (role) (increase({REQUESTS_METRIC}{{{selector}}}{window}))",
        "errors": f"sum by (role) (increase({REQUESTS_METRIC}{{{selector},code=~{ERROR_CODES}}}{window}))",
        "p95_latency_s": f"histogram_quantile({P95}, sum by (le, role) "
        f"(rate({DURATION_METRIC}_bucket{{{selector}}}{window})))",
    }


def parse_prometheus_vector(body: dict[str, Any], query: str = "query") -> dict[str, float]:
    """role -> value from an instant-query answer (`resultType: vector`); NaN values (no traffic) dropped."""
    if body.get("status") != "success":
        raise EvidenceError(f"prometheus: {query}: {body.get('errorType', 'error')}: {body.get('error')}")
    data = body.get("data") or {}
    if data.get("resultType") != "vector":
        raise EvidenceError(f"prometheus: {query}: expected a vector result, got {data.get('resultType')!r}")
    values = {}
    for sample in data.get("result") or []:
        value = float(sample["value"][1])
        if not math.isnan(value):
            values[sample["metric"].get("role", "")] = value
    return values


def evidence_from_prometheus_results(results: dict[str, dict[str, float]]) -> CanaryEvidence:
    """Evidence from the parsed answers of `prometheus_queries` (by query key, then by role)."""
    roles = {
        role: RoleEvidence(
            requests=results["requests"].get(role, 0.0),
            errors=results["errors"].get(role, 0.0),
            p95_latency_s=results["p95_latency_s"].get(role),
        )
        for role in ROLES
    }
    return CanaryEvidence(roles["stable"], roles["canary"], source="prometheus")


def evidence_from_prometheus(
    prom_url: str, model: str, window_s: int, timeout_s: float = 10.0
) -> CanaryEvidence:
    """Query Prometheus (`prom_url`, e.g. http://prometheus:9090) for `model` over the last `window_s`."""
    results = {}
    with httpx.Client(base_url=prom_url.rstrip("/"), timeout=timeout_s) as client:
        for key, query in prometheus_queries(model, window_s).items():
            try:
                answer = client.get("/api/v1/query", params={"query": query})
                body = answer.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise EvidenceError(f"prometheus {prom_url}: {key} query failed: {exc}") from exc
            results[key] = parse_prometheus_vector(body, key)
    return evidence_from_prometheus_results(results)


# -------------------------------------------------------------------------------------- router /metrics
def evidence_from_metrics_text(text: str, model: str) -> CanaryEvidence:
    """Evidence for `model` from a Prometheus text exposition (the router's /metrics), counted since the
    router started: the local run starts a fresh router, so that is its analysis window."""
    requests: dict[str, float] = defaultdict(float)
    errors: dict[str, float] = defaultdict(float)
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    try:
        samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    except ValueError as exc:
        raise EvidenceError(f"metrics text: cannot parse: {exc}") from exc
    for sample in samples:
        labels = sample.labels
        if labels.get("model") != model:
            continue
        role = labels.get("role", "")
        if sample.name == REQUESTS_METRIC:
            requests[role] += sample.value
            if labels.get("code", "").startswith("5"):
                errors[role] += sample.value
        elif sample.name == f"{DURATION_METRIC}_bucket":
            buckets[role][float(labels["le"])] += sample.value  # summed over versions, as `sum by (le)`
    roles = {
        role: RoleEvidence(
            requests=requests[role],
            errors=errors[role],
            p95_latency_s=histogram_quantile(P95, list(buckets[role].items())),
        )
        for role in ROLES
    }
    return CanaryEvidence(roles["stable"], roles["canary"], source="router-metrics")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
