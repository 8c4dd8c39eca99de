"""Canary evidence from Prometheus' HTTP API: the cluster's Prometheus, or locally the serving runtime's own
(inference/local_prometheus.py), with the same queries.

They read the serving contract the PrometheusRule records from Triton's own metrics in every predictor pod
(group `mlops-inference`; docs/signals.md): `mlops:inference_requests_total`,
`mlops:inference_server_errors_total` and `mlops:inference_request_duration_seconds:p95`, per pod and
registry `version`. Requests and server errors are summed over the pods of each version after `increase`;
the p95 is the slowest pod's average over the window. The roles come from the versions the caller names
(the canary is not a property of its pods: promotion moves traffic, not pods). Prediction scores come from
the drift service's score histogram `mlops_prediction_score{model,version}` (fed by the payload logger's
response events); locally the caller adds the answers it collected instead (`CanaryEvidence.with_scores`).
A canary experiment's outcomes per version come from the drift service's `mlops_model_outcomes_total`
(rows joined to the outcomes the application posts), by outcome class.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from typing import Any

import httpx

from inference.canary.analysis import CanaryEvidence, RoleEvidence
from inference.deploy.annotations import NAMESPACE

REQUESTS_METRIC = "mlops:inference_requests_total"
ERRORS_METRIC = "mlops:inference_server_errors_total"
P95_METRIC = "mlops:inference_request_duration_seconds:p95"
SCORE_METRIC = "mlops_prediction_score"
OUTCOMES_METRIC = "mlops_model_outcomes_total"
# Triton's own counters (docs/user_guide/metrics.md): when a pod was last scraped and what it had counted.
SCRAPED_METRIC = "nv_inference_request_success"
FAILED_METRIC = "nv_inference_request_failure"
ROLES = ("stable", "canary")


class EvidenceError(RuntimeError):
    """Metrics could not be fetched or read (the message names the source)."""


# ------------------------------------------------------------------------------------------ Prometheus
def prometheus_queries(model: str, window_s: float) -> dict[str, str]:
    """The PromQL for requests, server errors and p95 latency per version of `model` over `window_s`."""
    selector = _selector(model)
    window = _range(window_s)
    return {
        "requests": f"sum by (version) (increase({REQUESTS_METRIC}{{{selector}}}{window}))",
        "errors": f"sum by (version) (increase({ERRORS_METRIC}{{{selector}}}{window}))",
        "p95_latency_s": f"max by (version) (avg_over_time({P95_METRIC}{{{selector}}}{window}))",
    }


def parse_prometheus_vector(body: dict[str, Any], query: str = "query") -> dict[str, float]:
    """version -> value from an instant-query answer (`resultType: vector`); NaN (no traffic) dropped."""
    if body.get("status") != "success":
        raise EvidenceError(f"prometheus: {query}: {body.get('errorType', 'error')}: {body.get('error')}")
    data = body.get("data") or {}
    if data.get("resultType") != "vector":
        raise EvidenceError(f"prometheus: {query}: expected a vector result, got {data.get('resultType')!r}")
    values = {}
    for sample in data.get("result") or []:
        value = float(sample["value"][1])
        if not math.isnan(value):
            values[sample["metric"].get("version", "")] = value
    return values


def evidence_from_prometheus_results(
    results: dict[str, dict[str, float]], versions: Mapping[str, str]
) -> CanaryEvidence:
    """Evidence from the parsed answers of `prometheus_queries` (by query key, then by version) for the
    `versions` (role -> registry version) under analysis."""
    roles = {
        role: RoleEvidence(
            requests=results["requests"].get(versions[role], 0.0),
            errors=results["errors"].get(versions[role], 0.0),
            p95_latency_s=results["p95_latency_s"].get(versions[role]),
        )
        for role in ROLES
    }
    return CanaryEvidence(roles["stable"], roles["canary"], source="prometheus")


def score_query(model: str, window_s: float) -> str:
    """Per version and bucket: how many scores fell at or below each bound over the last `window_s`."""
    return f"sum by (version, le) (increase({SCORE_METRIC}_bucket{{{_selector(model)}}}{_range(window_s)}))"


def outcome_query(model: str, window_s: float) -> str:
    """Per version and outcome class: predictions joined to an outcome over the last `window_s` (the
    drift service's `mlops_model_outcomes_total`, fed by the application's `POST /outcomes`)."""
    return f"sum by (version, outcome) (increase({OUTCOMES_METRIC}{{{_selector(model)}}}{_range(window_s)}))"


def parse_outcome_counts(body: dict[str, Any], version: str, success_class: str) -> tuple[float, float]:
    """(outcomes, successes) of `version` from the `outcome_query` answer: all its joined outcomes, and
    those of `success_class`; (0, 0) when it has none in the window."""
    if body.get("status") != "success":
        raise EvidenceError(f"prometheus: outcomes: {body.get('errorType', 'error')}: {body.get('error')}")
    counts = {
        sample["metric"].get("outcome", ""): float(sample["value"][1])
        for sample in (body.get("data") or {}).get("result") or []
        if sample["metric"].get("version") == version and not math.isnan(float(sample["value"][1]))
    }
    return sum(counts.values()), counts.get(success_class, 0.0)


def _range(window_s: float) -> str:
    """A range selector: whole seconds as `[600s]`, else milliseconds (the local window ends on samples)."""
    if float(window_s).is_integer():
        return f"[{int(window_s)}s]"
    return f"[{max(1, round(window_s * 1000))}ms]"


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
    window_s: float,
    versions: Mapping[str, str],
    scores: bool = True,
    at: float | None = None,
    timeout_s: float = 10.0,
    success_class: str | None = None,
) -> CanaryEvidence:
    """Query Prometheus (`prom_url`, e.g. http://prometheus:9090) for the `versions` (role -> registry
    version) of `model` over the `window_s` before `at` (Unix seconds; default now); with `scores` also
    the score histograms behind the prediction shift, with a `success_class` the joined outcomes a
    canary experiment tests."""
    results = {}
    with httpx.Client(base_url=prom_url.rstrip("/"), timeout=timeout_s) as client:
        for key, query in prometheus_queries(model, window_s).items():
            results[key] = parse_prometheus_vector(_query(client, prom_url, key, query, at), key)
        answer = _query(client, prom_url, "scores", score_query(model, window_s), at) if scores else None
        outcomes = None
        if success_class is not None:
            outcomes = _query(client, prom_url, "outcomes", outcome_query(model, window_s), at)
    evidence = evidence_from_prometheus_results(results, versions)
    roles = {role: getattr(evidence, role) for role in ROLES}
    for role in ROLES:
        if answer is not None:
            roles[role] = replace(roles[role], score_counts=parse_score_buckets(answer, versions[role]))
        if outcomes is not None:
            total, successes = parse_outcome_counts(outcomes, versions[role], success_class)
            roles[role] = replace(roles[role], outcomes=total, successes=successes)
    return replace(evidence, **roles)


def wait_for_recorded(
    prom_url: str,
    model: str,
    versions: Collection[str],
    after: float,
    timeout_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Until every one of `versions` of `model` was scraped after `after` (Unix seconds) and the recorded
    requests equal what that scrape counted; returns the recording's time, a sample every queried range
    ending there counts everything served before `after` in. `EvidenceError` naming the versions when
    that takes longer than `timeout_s`."""
    selector = _selector(model)
    raw = f"{{{selector}}}"
    queries = {
        "scraped": f"max by (model_version) (timestamp({SCRAPED_METRIC}{raw}))",
        "counted": f"sum by (model_version) ({SCRAPED_METRIC}{raw})"
        f" + sum by (model_version) ({FAILED_METRIC}{raw})",
        "recorded": f"sum by (version) ({REQUESTS_METRIC}{raw})",
        "recorded_at": f"max by (version) (timestamp({REQUESTS_METRIC}{raw}))",
    }
    labels = {"scraped": "model_version", "counted": "model_version"}
    deadline, wanted = time.monotonic() + timeout_s, list(versions)
    with httpx.Client(base_url=prom_url.rstrip("/"), timeout=10.0) as client:
        while True:
            found = {
                key: _by_label(_query(client, prom_url, key, query), labels.get(key, "version"))
                for key, query in queries.items()
            }
            if all(
                found["scraped"].get(v, 0.0) >= after
                and v in found["recorded"]
                and found["recorded"][v] == found["counted"].get(v)
                for v in wanted
            ):
                return min(found["recorded_at"][v] for v in wanted)  # one evaluation records them all
            if time.monotonic() > deadline:
                raise EvidenceError(
                    f"prometheus {prom_url}: {model} v{', v'.join(wanted)} not scraped and recorded "
                    f"within {timeout_s:g} s ({found}; is Triton scraped?)"
                )
            sleep(0.2)


def _by_label(body: dict[str, Any], label: str) -> dict[str, float]:
    samples = (body.get("data") or {}).get("result") or [] if body.get("status") == "success" else []
    return {sample["metric"].get(label, ""): float(sample["value"][1]) for sample in samples}


def _query(
    client: httpx.Client, prom_url: str, key: str, query: str, at: float | None = None
) -> dict[str, Any]:
    params: dict[str, Any] = {"query": query} if at is None else {"query": query, "time": f"{at:.3f}"}
    try:
        return client.get("/api/v1/query", params=params).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise EvidenceError(f"prometheus {prom_url}: {key} query failed: {exc}") from exc


def _selector(model: str) -> str:
    return f'namespace="{NAMESPACE}",model="{_escape(model)}"'


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
