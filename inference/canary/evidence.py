"""Canary evidence from metrics: Prometheus' HTTP API (the cluster) or the router's /metrics text (local).

Both read the router's metric contract, which the cluster's KServe/Knative metrics are exposed under too:
`mlops_inference_requests_total{model,version,role,code}` and the histogram
`mlops_inference_request_duration_seconds{model,version,role}`. Errors are the server-side failures: HTTP
5xx, and for the gRPC router the status names that mean the same (INTERNAL, UNAVAILABLE, ...); a 4xx or
INVALID_ARGUMENT is the client's fault, not the version's. Prediction scores: locally the caller adds the
answers it collected (`CanaryEvidence.with_scores`); on a cluster they come from the drift service's score
histogram `mlops_prediction_score{model,version}` (fed by the payload logger's response events), per version.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from inference.canary.analysis import CanaryEvidence, RoleEvidence, histogram_quantile

REQUESTS_METRIC = "mlops_inference_requests_total"
DURATION_METRIC = "mlops_inference_request_duration_seconds"
SCORE_METRIC = "mlops_prediction_score"
# The cluster's metrics carry HTTP codes only; the gRPC status names come from the local gRPC router.
ERROR_CODES = '"5.."'
GRPC_SERVER_ERRORS = ("INTERNAL", "UNAVAILABLE", "UNKNOWN", "DEADLINE_EXCEEDED", "DATA_LOSS", "UNIMPLEMENTED")
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


def score_query(model: str, window_s: int) -> str:
    """Per version and bucket: how many scores fell at or below each bound over the last `window_s`."""
    selector = f'model="{_escape(model)}"'
    return f"sum by (version, le) (increase({SCORE_METRIC}_bucket{{{selector}}}[{int(window_s)}s]))"


def parse_score_buckets(body: dict[str, Any], version: str) -> tuple[float, ...]:
    """Per-bin counts of `version` from the `score_query` answer (cumulative buckets differenced);
    empty when the version has no scores in the window."""
    if body.get("status") != "success":
        raise EvidenceError(f"prometheus: scores: {body.get('errorType', 'error')}: {body.get('error')}")
    cumulative = sorted(
        (float(sample["metric"]["le"]), float(sample["value"][1]))
        for sample in (body.get("data") or {}).get("result") or []
        if sample["metric"].get("version") == version
    )
    if not cumulative or cumulative[-1][1] <= 0:
        return ()
    totals = [n for _, n in cumulative]
    return tuple(max(n - below, 0.0) for n, below in zip(totals, [0.0, *totals[:-1]], strict=True))


def evidence_from_prometheus(
    prom_url: str,
    model: str,
    window_s: int,
    versions: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
) -> CanaryEvidence:
    """Query Prometheus (`prom_url`, e.g. http://prometheus:9090) for `model` over the last `window_s`;
    with `versions` (role -> registry version) also the score histograms behind the prediction shift."""
    results = {}
    with httpx.Client(base_url=prom_url.rstrip("/"), timeout=timeout_s) as client:
        for key, query in prometheus_queries(model, window_s).items():
            results[key] = parse_prometheus_vector(_query(client, prom_url, key, query), key)
        scores = _query(client, prom_url, "scores", score_query(model, window_s)) if versions else None
    evidence = evidence_from_prometheus_results(results)
    if scores is None:
        return evidence
    stable, canary = (parse_score_buckets(scores, versions.get(role, "")) for role in ROLES)
    return replace(
        evidence,
        stable=replace(evidence.stable, score_counts=stable),
        canary=replace(evidence.canary, score_counts=canary),
    )


def _query(client: httpx.Client, prom_url: str, key: str, query: str) -> dict[str, Any]:
    try:
        return client.get("/api/v1/query", params={"query": query}).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise EvidenceError(f"prometheus {prom_url}: {key} query failed: {exc}") from exc


# -------------------------------------------------------------------------------------- router /metrics
def evidence_from_metrics_text(
    text: str,
    model: str,
    since: str | None = None,
    versions: Mapping[str, str] | None = None,
) -> CanaryEvidence:
    """Evidence for `model` from a Prometheus text exposition (the router's /metrics). The window is the
    router's lifetime, or what changed after the exposition `since` (read before the traffic was sent).
    `versions` (role -> version) keeps only those series: a long-lived router also counts earlier
    canaries under the same roles."""
    after = _role_counts(text, model, versions)
    before = _role_counts(since, model, versions) if since is not None else _RoleCounts()
    roles = {
        role: RoleEvidence(
            requests=after.requests[role] - before.requests[role],
            errors=after.errors[role] - before.errors[role],
            p95_latency_s=histogram_quantile(
                P95,
                [(le, n - before.buckets[role].get(le, 0.0)) for le, n in after.buckets[role].items()],
            ),
        )
        for role in ROLES
    }
    return CanaryEvidence(roles["stable"], roles["canary"], source="router-metrics")


class _RoleCounts:
    def __init__(self) -> None:
        self.requests: dict[str, float] = defaultdict(float)
        self.errors: dict[str, float] = defaultdict(float)
        self.buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))


def _role_counts(text: str, model: str, versions: Mapping[str, str] | None) -> _RoleCounts:
    counts = _RoleCounts()
    try:
        samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    except ValueError as exc:
        raise EvidenceError(f"metrics text: cannot parse: {exc}") from exc
    for sample in samples:
        labels = sample.labels
        role = labels.get("role", "")
        if labels.get("model") != model or (versions and versions.get(role) != labels.get("version")):
            continue
        if sample.name == REQUESTS_METRIC:
            counts.requests[role] += sample.value
            if is_server_error(labels.get("code", "")):
                counts.errors[role] += sample.value
        elif sample.name == f"{DURATION_METRIC}_bucket":
            counts.buckets[role][float(labels["le"])] += sample.value  # summed over versions: `sum by (le)`
    return counts


def is_server_error(code: str) -> bool:
    """Whether a `code` label (HTTP status or gRPC status name) is the serving version's failure."""
    return code.startswith("5") or code in GRPC_SERVER_ERRORS


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
