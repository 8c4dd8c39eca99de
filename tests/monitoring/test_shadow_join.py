"""The cluster's shadow comparator (monitoring/shadow_join): KServe logger events of the live and the shadow
InferenceService, joined by the `X-Request-Id` the Gateway's mirror copies, compared, and judged by the same
shadow verdict the local mirror's metrics feed.

Events carry the headers KServe's agent sends (built by the local router's own `event_headers`, checked
against a recorded KServe event in test_canary_attribution.py), with what a shadow rollout adds: the request
id in `ce-metadata` (logger.metadataHeaders, kserve pkg/logger/handler.go) and the version annotation.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from core.spec.release import ShadowCriteria
from inference.canary.shadow_verdict import READY, TOO_EARLY, main
from inference.router.shadow_compare import ShadowComparator
from monitoring.payloads.cloudevents import parse_http_event
from monitoring.shadow_join.app import create_app
from monitoring.shadow_join.join import ShadowJoin
from tests.helpers.fast_specs import write_spec
from tests.helpers.kserve_events import mirrored_headers
from tests.helpers.metrics_text import sample_value
from tests.helpers.servers import serving_in_thread
from tests.helpers.specs import fixture_spec_data

MODEL, LIVE, SHADOW = "conversion-xgboost", "3", "4"
T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _answer(p1: np.ndarray) -> bytes:
    output = {"name": "output__0", "datatype": "FP32", "shape": [len(p1), 2]}
    output["data"] = np.column_stack([1 - p1, p1]).ravel().tolist()
    return json.dumps({"model_name": MODEL, "outputs": [output]}).encode()


def _event(
    role: str, kind: str, request_id: str | None, at: datetime, body: bytes = b"{}"
) -> tuple[dict, bytes]:
    """(headers, body) of one logger event of the live (`role` "live") or the shadow service."""
    service, version = (MODEL, LIVE) if role == "live" else (f"{MODEL}-shadow", SHADOW)
    return mirrored_headers(service, version, kind, request_id, at), body


def _request_events(request_id: str, live: np.ndarray, shadow: np.ndarray, slow: float) -> list[tuple]:
    """The four events one mirrored request makes: each service's request and its 200 response."""
    start = T0 + timedelta(seconds=int(request_id))
    return [
        _event("live", "request", request_id, start),
        _event("live", "response", request_id, start + timedelta(milliseconds=2), _answer(live)),
        _event("shadow", "request", request_id, start),
        _event("shadow", "response", request_id, start + timedelta(milliseconds=2 * slow), _answer(shadow)),
    ]


def _join(**kwargs) -> tuple[ShadowJoin, CollectorRegistry]:
    registry = CollectorRegistry()
    return ShadowJoin(ShadowComparator(registry), registry, **kwargs), registry


def _metric(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return sample_value(generate_latest(registry).decode(), name, **labels)


def test_mirrored_requests_are_joined_by_request_id_and_the_verdict_reads_the_comparison(tmp_path) -> None:
    join, registry = _join()
    rng, order = np.random.default_rng(3), random.Random(3)
    events = []
    for i in range(60):
        live = rng.uniform(0.05, 0.95, 4)
        events += _request_events(str(i), live, np.clip(live + rng.normal(0, 0.01, 4), 0, 1), slow=1.5)
    order.shuffle(events)  # the broker keeps no order, within a request or across requests
    data = fixture_spec_data(MODEL)
    data["canary"]["shadow"] = ShadowCriteria(min_compared=60, max_latency_ratio=2.0).model_dump(
        exclude_none=True
    )
    write_spec(tmp_path, MODEL, data)
    with serving_in_thread(create_app(join, registry)) as base:
        verdict = ["--model", MODEL, "--version", SHADOW, "--metrics-url", f"{base}/metrics"]
        verdict += ["--spec-dir", str(tmp_path)]
        with httpx.Client(base_url=base, timeout=10) as client:
            results = [client.post("/", headers=h, content=b) for h, b in events[:-1]]
            assert {r.status_code for r in results} == {202}
            assert main(verdict) == TOO_EARLY  # 59 compared: "wait", never a go on too little
            last = client.post("/", headers=events[-1][0], content=events[-1][1])
            assert last.json() == {"result": "compared"}
            again = [client.post("/", headers=h, content=b).json()["result"] for h, b in events[:8]]
            assert again == ["duplicate"] * 8  # at-least-once delivery counts once
            text = client.get("/metrics").text
        assert main(verdict) == READY
    assert (
        sample_value(text, "mlops_shadow_requests_total", model=MODEL, version=SHADOW, result="compared")
        == 60
    )
    assert sample_value(text, "mlops_shadow_rows_total", model=MODEL, version=SHADOW) == 240
    live_s = sample_value(text, "mlops_shadow_latency_seconds_sum", model=MODEL, version=SHADOW, role="live")
    shadow_s = sample_value(
        text, "mlops_shadow_latency_seconds_sum", model=MODEL, version=SHADOW, role="shadow"
    )
    assert live_s == pytest.approx(60 * 0.002) and shadow_s == pytest.approx(60 * 0.003)  # from ce-time
    assert sample_value(text, "mlops_shadow_pending") == 0


def test_a_shadow_that_logs_no_answer_is_its_error_and_a_copy_not_made_is_unjoined() -> None:
    now = [0.0]
    join, registry = _join(pending_s=30.0, clock=lambda: now[0])
    live, shadow = np.array([0.2, 0.7]), np.array([0.25, 0.6])
    failed = _request_events("1", live, shadow, 1)  # the shadow's response never logged
    not_mirrored = _request_events("2", live, shadow, 1)[:2]  # the live side only
    live_lost = _request_events("3", live, shadow, 1)  # all but the live response
    for headers, body in [*failed[:3], *not_mirrored, live_lost[0], *live_lost[2:]]:
        assert join.add(parse_http_event(headers, body)) == "waiting"
    now[0] = 29.0
    assert join.expire() == 0
    now[0] = 30.0
    assert join.expire() == 3
    labels = {"model": MODEL}
    assert _metric(registry, "mlops_shadow_requests_total", **labels, version=SHADOW, result="error") == 1
    assert _metric(registry, "mlops_shadow_unjoined_total", **labels, missing="shadow") == 1
    assert _metric(registry, "mlops_shadow_unjoined_total", **labels, missing="live") == 1
    # the late live response of a settled request is not compared twice, nor held again
    assert join.add(parse_http_event(*live_lost[1])) == "duplicate"
    assert _metric(registry, "mlops_shadow_pending") == 0


def test_a_flood_of_one_side_is_bounded() -> None:
    join, registry = _join(max_pending=5)
    for i in range(20):
        join.add(parse_http_event(*_event("live", "request", str(i), T0)))
    assert _metric(registry, "mlops_shadow_pending") == 5
    assert _metric(registry, "mlops_shadow_unjoined_total", model=MODEL, missing="shadow") == 15


def _without(headers: dict, name: str) -> dict:
    return {k: v for k, v in headers.items() if k != name}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        # a logger without metadataHeaders sends an empty map (handler.go): say what to list
        ({**_event("live", "request", "1", T0)[0], "ce-metadata": "{}"}, "list it in the InferenceService's"),
        ({**_event("live", "request", "1", T0)[0], "ce-metadata": "{x"}, "ce-metadata is not JSON"),
        (
            _without(_event("shadow", "request", "1", T0)[0], "ce-annotations"),
            "a shadow event names no version",
        ),
        (
            {**_event("live", "request", "1", T0)[0], "ce-time": "yesterday"},
            "ce-time 'yesterday' is not RFC 3339",
        ),
        (_without(_event("live", "request", "1", T0)[0], "ce-time"), "missing ce-time"),
        (
            _without(_event("live", "request", "1", T0)[0], "ce-inferenceservicename"),
            "ce-inferenceservicename",
        ),
        (
            {**_event("live", "request", "1", T0)[0], "ce-type": "dev.knative.ping"},
            "is not a KServe inference",
        ),
    ],
)
def test_an_event_the_join_cannot_use_gets_a_one_line_400(headers: dict, message: str) -> None:
    join, registry = _join()
    with serving_in_thread(create_app(join, registry)) as base:
        answer = httpx.post(f"{base}/", headers=headers, content=b"{}", timeout=10)
        text = httpx.get(f"{base}/metrics", timeout=10).text
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert message in error and "\n" not in error
    rejected = sum(
        v for r in ("missing_attribute", "bad_attribute", "unknown_type")
        if (v := sample_value(text, "mlops_shadow_events_rejected_total", reason=r)) is not None
    )  # fmt: skip
    assert rejected == 1 and sample_value(text, "mlops_shadow_pending") == 0


def test_an_answer_that_is_not_an_inference_response_is_the_shadows_error_not_a_crash() -> None:
    join, registry = _join()
    events = _request_events("7", np.array([0.5]), np.array([0.5]), 1)
    events[3] = (events[3][0], b"not json")
    outcomes = [join.add(parse_http_event(h, b)) for h, b in events]
    assert outcomes[-1] == "compared"  # joined; the comparator then counts it an error, with the reason
    assert _metric(registry, "mlops_shadow_requests_total", model=MODEL, version=SHADOW, result="error") == 1


def test_structured_mode_events_are_joined_too() -> None:
    join, registry = _join()
    for headers, body in _request_events("9", np.array([0.3]), np.array([0.35]), 1):
        document = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
        document["data"] = json.loads(body)
        structured = {"content-type": "application/cloudevents+json"}
        join.add(parse_http_event(structured, json.dumps(document).encode()))
    assert (
        _metric(registry, "mlops_shadow_requests_total", model=MODEL, version=SHADOW, result="compared") == 1
    )
