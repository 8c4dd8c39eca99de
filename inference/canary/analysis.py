"""Decide a canary from its evidence: promote, or not (and why).

    evidence = evidence_from_prometheus(prom_url, "conversion-xgboost", 600, {"stable": "3", "canary": "4"})
    decision = decide(spec, evidence)      # CanaryDecision(promote, inconclusive, reasons, evidence)

The checks, in the spec's terms (`canary.min_requests`, `canary.success.*`):
- the canary served at least `min_requests`, else the decision is *inconclusive* (not promoted; the local
  rollout rolls an inconclusive canary back, since nothing proved it is safe);
- its error rate (the share of its requests Triton failed: server errors) is at most `max_error_rate`;
- its p95 latency over the stable version's p95 is at most `max_p95_latency_ratio`, or the canary's p95
  is less than `min_p95_latency_increase_ms` above the stable one's (a ratio of small numbers is noise);
- for a classifier, the PSI between its prediction scores and the stable version's is at most
  `max_prediction_shift` (a ranker sets none: core/spec/release.py says why, and its evidence shows none):
  from the scores themselves (local traffic), or from the per-bin counts of the score histogram the drift
  service exports (`mlops_prediction_score`, on a cluster through Prometheus). Without either the shift is
  not checked and the evidence says so (`prediction_shift: null`);
- with `canary.experiment`, the A/B test on the business outcome (inference/canary/experiment.py): a
  canary that passes the checks above is promoted only when the test finds it better; before the test's
  horizon the decision is *inconclusive* ("not enough traffic yet"), never a promotion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from core.spec.model import ModelSpec
from core.spec.release import CanarySuccess
from inference.canary.experiment import Arm, judge

PSI_BINS = 10
PSI_EPSILON = 1e-4  # share given to an empty bin, so one empty bin does not make the PSI infinite


@dataclass(frozen=True)
class RoleEvidence:
    """What one role (stable or canary) showed over the analysis window."""

    requests: float = 0.0
    errors: float = 0.0
    p95_latency_s: float | None = None
    scores: tuple[float, ...] = ()
    score_counts: tuple[float, ...] = ()
    """Observations per bin of a fixed score histogram (same bins for both roles)."""
    outcomes: float = 0.0
    """Predictions joined to an outcome the application reported (`canary.experiment`'s trials)."""
    successes: float = 0.0
    """Of those, the outcomes that were the experiment's `success_class`."""

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "p95_latency_s": self.p95_latency_s,
            "scores": len(self.scores) or sum(self.score_counts),
            "outcomes": self.outcomes,
            "successes": self.successes,
        }


@dataclass(frozen=True)
class CanaryEvidence:
    stable: RoleEvidence
    canary: RoleEvidence
    source: str = "unknown"
    """Where the numbers came from: `prometheus`, or `isvc-status` for a canary never judged."""

    def with_scores(self, stable: Sequence[float], canary: Sequence[float]) -> CanaryEvidence:
        return replace(
            self,
            stable=replace(self.stable, scores=tuple(map(float, stable))),
            canary=replace(self.canary, scores=tuple(map(float, canary))),
        )


@dataclass(frozen=True)
class CanaryDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    """Why it is not promoted (empty when it is)."""
    evidence: dict[str, Any] = field(default_factory=dict)
    inconclusive: bool = False

    @property
    def verdict(self) -> str:
        return "promote" if self.promote else "inconclusive" if self.inconclusive else "rollback"


def decide(spec: ModelSpec, evidence: CanaryEvidence) -> CanaryDecision:
    """Apply `spec.canary` to `evidence`; every failed criterion adds one reason."""
    canary, success = spec.canary, spec.canary.success
    summary = evidence_summary(evidence)
    if evidence.canary.requests < canary.min_requests:
        reason = f"not enough canary traffic: {evidence.canary.requests:g} < {canary.min_requests}"
        return CanaryDecision(False, [reason], summary, inconclusive=True)
    reasons = []
    if evidence.canary.error_rate > success.max_error_rate:
        reasons.append(
            f"canary error rate {evidence.canary.error_rate:.3f} > {success.max_error_rate:g} "
            f"({evidence.canary.errors:.0f} of {evidence.canary.requests:.0f})"
        )
    latency = _latency_reason(summary, success)
    if latency:
        reasons.append(latency)
    if success.max_prediction_shift is None:  # a ranker's: not judged, so not shown as if it were
        summary["prediction_shift"] = None
    shift = summary["prediction_shift"]
    bound = success.max_prediction_shift
    if shift is not None and bound is not None and shift > bound:
        reasons.append(f"prediction shift PSI {shift:.3f} > {bound:g}")
    if canary.experiment is None:
        return CanaryDecision(not reasons, reasons, summary)
    result = judge(
        canary.experiment,
        canary.traffic_percent / 100,
        stable=Arm(evidence.stable.successes, evidence.stable.outcomes),
        canary=Arm(evidence.canary.successes, evidence.canary.outcomes),
    )
    summary["experiment"] = result.to_dict()
    if reasons:  # a canary that fails its safety checks is rolled back without waiting for the test
        return CanaryDecision(False, [*reasons, result.reason()], summary)
    if result.status == "not_enough_traffic":  # a result, never a promotion
        return CanaryDecision(False, [result.reason()], summary, inconclusive=True)
    return CanaryDecision(result.promote, [] if result.promote else [result.reason()], summary)


def _latency_reason(summary: dict[str, Any], success: CanarySuccess) -> str | None:
    ratio, increase_ms = summary["p95_latency_ratio"], summary["p95_latency_increase_ms"]
    if ratio is None or ratio <= success.max_p95_latency_ratio:
        return None
    if increase_ms < success.min_p95_latency_increase_ms:
        return None  # a large ratio of small latencies: within the spec's noise allowance
    return (
        f"canary p95 latency {ratio:.2f}x stable > {success.max_p95_latency_ratio:g}x (+{increase_ms:.1f} ms)"
    )


def evidence_summary(evidence: CanaryEvidence) -> dict[str, Any]:
    """The numbers a decision rests on, as JSON-ready data (recorded with the decision)."""
    return {
        "source": evidence.source,
        "stable": evidence.stable.to_dict(),
        "canary": evidence.canary.to_dict(),
        "p95_latency_ratio": latency_ratio(evidence.canary.p95_latency_s, evidence.stable.p95_latency_s),
        "p95_latency_increase_ms": latency_increase_ms(
            evidence.canary.p95_latency_s, evidence.stable.p95_latency_s
        ),
        "prediction_shift": prediction_shift(evidence.stable, evidence.canary),
    }


def prediction_shift(stable: RoleEvidence, canary: RoleEvidence) -> float | None:
    """PSI of the canary's scores against the stable version's, from scores or histogram counts."""
    if stable.scores and canary.scores:
        return psi(stable.scores, canary.scores)
    if sum(stable.score_counts) > 0 and sum(canary.score_counts) > 0:
        return psi_from_counts(stable.score_counts, canary.score_counts)
    return None


def _unknown(*values: float | None) -> bool:
    return any(value is None or math.isnan(value) for value in values)


def latency_ratio(canary_s: float | None, stable_s: float | None) -> float | None:
    """canary / stable p95; None when either is unknown (no traffic), inf when the stable one is 0."""
    if _unknown(canary_s, stable_s):
        return None
    if stable_s <= 0:
        return math.inf if canary_s > 0 else 1.0
    return canary_s / stable_s


def latency_increase_ms(canary_s: float | None, stable_s: float | None) -> float | None:
    """How much higher the canary's p95 is, in ms (negative when lower); None when either is unknown."""
    if _unknown(canary_s, stable_s):
        return None
    return (canary_s - stable_s) * 1000


def psi(expected: Sequence[float], actual: Sequence[float], bins: int = PSI_BINS) -> float:
    """Population stability index of `actual` against `expected`, over `bins` quantile bins of `expected`.

    Equal bin edges (a score that repeats) are merged, so a constant stable score gives one bin.
    """
    reference, current = np.asarray(expected, dtype=float), np.asarray(actual, dtype=float)
    if reference.size == 0 or current.size == 0:
        raise ValueError("psi: both samples need at least one score")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1))[1:-1])
    ref_share = _bin_shares(reference, edges)
    cur_share = _bin_shares(current, edges)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def psi_from_counts(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI over fixed bins given as observation counts per bin (both in the same bins)."""
    reference, current = np.asarray(expected, dtype=float), np.asarray(actual, dtype=float)
    if reference.shape != current.shape or reference.sum() <= 0 or current.sum() <= 0:
        raise ValueError("psi_from_counts: both need the same bins and at least one observation")
    ref_share = np.maximum(reference / reference.sum(), PSI_EPSILON)
    cur_share = np.maximum(current / current.sum(), PSI_EPSILON)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def _bin_shares(values: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(inner_edges, values, side="right"), minlength=inner_edges.size + 1)
    return np.maximum(counts / values.size, PSI_EPSILON)


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' `histogram_quantile` over cumulative (upper bound, count) buckets, `+Inf` included.

    Linear interpolation inside the bucket that holds the rank; a rank in the `+Inf` bucket gives the
    highest finite bound. None when there are no observations.
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in ordered:
        if count >= rank:
            if math.isinf(upper):
                return lower
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower
