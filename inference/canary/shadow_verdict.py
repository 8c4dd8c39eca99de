"""Is a challenger that ran in shadow ready for its canary? The spec's `canary.shadow` criteria against the
shadow comparator's metrics (inference/router/shadow_compare.py: the router's `/metrics` locally).

    python -m inference.canary.shadow_verdict --model conversion-xgboost --version 4 \
        --metrics-url http://127.0.0.1:8081/metrics

prints one line and exits 0 when the canary may start, 1 when a criterion fails, 3 while fewer than
`min_compared` requests have been compared ("not enough traffic yet", never a go), 2 on bad input (no
criteria in the spec, an unreachable or unreadable metrics endpoint).

The comparator's counters are cumulative since it started, so the verdict covers the whole shadow run:
agreement = agreeing rows / compared rows, the rank correlation is the comparator's window gauge, and the
latency ratio is the shadow's mean Triton time over the live version's on the same requests.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

from core.errors import SpecError
from core.spec.release import ShadowCriteria

READY, NOT_READY, USAGE, TOO_EARLY = 0, 1, 2, 3


@dataclass(frozen=True)
class ShadowEvidence:
    compared: float
    rows: float
    agreeing: float
    rank_correlation: float
    live_seconds: tuple[float, float]  # (sum, count) of the live Triton times on compared requests
    shadow_seconds: tuple[float, float]

    @property
    def agreement(self) -> float:
        return self.agreeing / self.rows if self.rows else math.nan

    @property
    def latency_ratio(self) -> float:
        live, shadow = self.live_seconds, self.shadow_seconds
        if not (live[1] and shadow[1]) or live[0] <= 0:
            return math.nan
        return (shadow[0] / shadow[1]) / (live[0] / live[1])


@dataclass(frozen=True)
class ShadowVerdict:
    ready: bool | None
    """True: start the canary; False: a criterion failed; None: not enough compared requests yet."""
    reasons: list[str]

    @property
    def exit_code(self) -> int:
        return TOO_EARLY if self.ready is None else (READY if self.ready else NOT_READY)


def shadow_evidence(metrics_text: str, model: str, version: str) -> ShadowEvidence:
    """The comparator's series for (model, shadow version) from a Prometheus exposition text."""
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("model") == model and labels.get("version") == version:
                key = (sample.name, labels.get("result") or labels.get("role") or "")
                values[key] = sample.value

    def get(name: str, detail: str = "") -> float:
        return values.get((name, detail), 0.0)

    return ShadowEvidence(
        compared=get("mlops_shadow_requests_total", "compared"),
        rows=get("mlops_shadow_rows_total"),
        agreeing=get("mlops_shadow_agreement_total"),
        rank_correlation=values.get(("mlops_shadow_rank_correlation", ""), math.nan),
        live_seconds=(
            get("mlops_shadow_latency_seconds_sum", "live"),
            get("mlops_shadow_latency_seconds_count", "live"),
        ),
        shadow_seconds=(
            get("mlops_shadow_latency_seconds_sum", "shadow"),
            get("mlops_shadow_latency_seconds_count", "shadow"),
        ),
    )


def judge_shadow(criteria: ShadowCriteria, evidence: ShadowEvidence) -> ShadowVerdict:
    """Each criterion the spec sets, in order; an undefined measure (NaN) fails its criterion."""
    if evidence.compared < criteria.min_compared:
        compared = f"{evidence.compared:.0f} of {criteria.min_compared} requests compared"
        return ShadowVerdict(None, [f"not enough traffic yet: {compared}"])
    checks = [
        ("agreement", evidence.agreement, criteria.min_agreement, ">="),
        ("rank correlation", evidence.rank_correlation, criteria.min_rank_correlation, ">="),
        ("latency ratio", evidence.latency_ratio, criteria.max_latency_ratio, "<="),
    ]
    reasons, ready = [], True
    for name, value, bound, op in checks:
        if bound is None:
            continue
        passed = not math.isnan(value) and (value >= bound if op == ">=" else value <= bound)
        ready &= passed
        shown = "undefined" if math.isnan(value) else f"{value:.3f}"
        reasons.append(f"{name} {shown} {op if passed else 'fails ' + op} {bound:g}")
    return ShadowVerdict(ready, reasons)


def _criteria(model: str, spec_dir: str | None) -> ShadowCriteria:
    from core.spec.model import load_specs

    (spec,) = load_specs(spec_dir, names=[model])
    if spec.canary.shadow is None:
        raise SpecError(model, "the spec sets no canary.shadow criteria", "canary.shadow")
    return spec.canary.shadow


def fetch_verdict(criteria: ShadowCriteria, metrics_url: str, model: str, version: str) -> ShadowVerdict:
    """The verdict on the comparator's metrics at `metrics_url` (raises httpx.HTTPError, ValueError)."""
    import httpx

    response = httpx.get(metrics_url, timeout=10)
    response.raise_for_status()
    return judge_shadow(criteria, shadow_evidence(response.text, model, version))


def describe(verdict: ShadowVerdict) -> str:
    word = {READY: "start the canary", NOT_READY: "keep the champion", TOO_EARLY: "wait"}[verdict.exit_code]
    return f"{word}: {'; '.join(verdict.reasons)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.canary.shadow_verdict", description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--version", required=True, help="the shadow version")
    parser.add_argument("--metrics-url", required=True, help="where the comparator's metrics are exposed")
    parser.add_argument("--spec-dir", help="model specs (default: the process's spec directory)")
    args = parser.parse_args(argv)
    import httpx

    try:
        verdict = fetch_verdict(
            _criteria(args.model, args.spec_dir), args.metrics_url, args.model, args.version
        )
    except (SpecError, httpx.HTTPError, ValueError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return USAGE
    print(f"{args.model} shadow v{args.version}: {describe(verdict)}")
    return verdict.exit_code


if __name__ == "__main__":
    sys.exit(main())
