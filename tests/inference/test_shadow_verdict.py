"""The decision to start a canary from a shadow run: the spec's `canary.shadow` criteria against the metrics a
real shadow comparator exports (inference/canary/shadow_verdict.py), and its command over HTTP."""

from __future__ import annotations

import json

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest, make_asgi_app

from core.spec.release import ShadowCriteria
from inference.canary.shadow_verdict import (
    NOT_READY,
    READY,
    TOO_EARLY,
    USAGE,
    judge_shadow,
    main,
    shadow_evidence,
)
from inference.router.shadow_compare import Answer, ShadowComparator
from tests.helpers.fast_specs import write_spec
from tests.helpers.servers import serving_in_thread
from tests.helpers.specs import fixture_spec_data

MODEL, SHADOW = "conversion-xgboost", "4"
CRITERIA = ShadowCriteria(min_compared=50, min_agreement=0.9, min_rank_correlation=0.8, max_latency_ratio=2.0)


def _answer(p1: np.ndarray) -> bytes:
    data = np.column_stack([1 - p1, p1]).ravel().tolist()
    output = {"name": "output__0", "datatype": "FP32", "shape": [len(p1), 2], "data": data}
    return json.dumps({"outputs": [output]}).encode()


def _shadowed(requests: int, flip: bool = False, slow: float = 1.0) -> CollectorRegistry:
    """A comparator after `requests` comparisons of a live model with a close (or flipped) shadow."""
    registry = CollectorRegistry()
    comparator = ShadowComparator(registry)
    rng = np.random.default_rng(1)
    for _ in range(requests):
        live = rng.uniform(0.05, 0.95, 4)
        shadow = 1 - live if flip else np.clip(live + rng.normal(0, 0.01, 4), 0, 1)
        comparator.compare(MODEL, SHADOW, Answer(_answer(live), 0.002), Answer(_answer(shadow), 0.002 * slow))
    return registry


def _evidence(registry: CollectorRegistry):
    return shadow_evidence(generate_latest(registry).decode(), MODEL, SHADOW)


def test_a_close_shadow_is_ready_for_its_canary() -> None:
    evidence = _evidence(_shadowed(60))
    assert evidence.compared == 60 and evidence.rows == 240
    verdict = judge_shadow(CRITERIA, evidence)
    assert verdict.ready is True and verdict.exit_code == READY, verdict.reasons
    assert verdict.reasons[0].startswith("agreement 0.99") and verdict.reasons[0].endswith(">= 0.9")


def test_a_shadow_that_ranks_in_reverse_or_runs_slow_is_not() -> None:
    flipped = judge_shadow(CRITERIA, _evidence(_shadowed(60, flip=True)))
    assert flipped.ready is False and flipped.exit_code == NOT_READY
    assert "rank correlation -1.000 fails >= 0.8" in flipped.reasons[1]
    slow = judge_shadow(CRITERIA, _evidence(_shadowed(60, slow=3.0)))
    assert slow.ready is False and slow.reasons[2] == "latency ratio 3.000 fails <= 2"


def test_too_few_comparisons_is_not_enough_traffic_never_a_go() -> None:
    verdict = judge_shadow(CRITERIA, _evidence(_shadowed(20)))
    assert verdict.ready is None and verdict.exit_code == TOO_EARLY
    assert verdict.reasons == ["not enough traffic yet: 20 of 50 requests compared"]


def test_the_command_reads_the_comparators_endpoint_and_the_specs_criteria(tmp_path, capsys) -> None:
    data = fixture_spec_data(MODEL)
    data["canary"]["shadow"] = CRITERIA.model_dump(exclude_none=True)
    write_spec(tmp_path, MODEL, data)
    with serving_in_thread(make_asgi_app(_shadowed(60))) as base:
        args = ["--model", MODEL, "--version", SHADOW, "--metrics-url", base, "--spec-dir", str(tmp_path)]
        assert main(args) == READY
        assert capsys.readouterr().out.startswith(
            f"{MODEL} shadow v{SHADOW}: start the canary: agreement 0.99"
        )
    write_spec(tmp_path, MODEL, fixture_spec_data(MODEL))  # no criteria
    assert main(args) == USAGE
    assert "canary.shadow" in capsys.readouterr().err
