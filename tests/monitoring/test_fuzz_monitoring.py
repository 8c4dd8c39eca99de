"""Fuzzing the monitoring services' doors in process (#18): KServe-logger CloudEvents in binary and
structured mode and delayed outcomes into the drift service, the live and the shadow service's events into
the shadow comparator, Alertmanager webhooks into the retrain trigger. Thousands of derandomized cases each;
none may get a 5xx or an error without a one-line body, and each service still accepts a good request
afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from inference.router.logger import REQUEST_TYPE, RESPONSE_TYPE
from inference.router.shadow_compare import ShadowComparator
from monitoring.drift_service.app import create_app as drift_app
from monitoring.payloads.cloudevents import STRUCTURED_CONTENT_TYPE
from monitoring.retrain_trigger.app import TriggerService
from monitoring.retrain_trigger.app import create_app as trigger_app
from monitoring.retrain_trigger.state import StateStore
from monitoring.shadow_join.app import create_app as shadow_app
from monitoring.shadow_join.join import ShadowJoin
from tests.helpers.drift_doubles import MODEL
from tests.helpers.drift_events import binary_headers, columns_body, quality_service
from tests.helpers.fuzz import (
    FUZZ_CASES,
    assert_client_error_or_success,
    encoded,
    fuzz_settings,
    json_values,
    oip_bodies,
    texts,
)
from tests.helpers.trigger_doubles import AUTH, TOKEN, Clock, FakeSubmitter, payload

pytestmark = [pytest.mark.fuzz]
COLUMNS = ["plan_tier", "company_size", "lifetime_value", "session_id", "customer_id"]

# ce-* header values are latin-1 text on the wire; HTTP clients refuse control characters in them.
header_texts = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)
ce_headers = st.fixed_dictionaries(
    {
        "ce-specversion": st.sampled_from(["1.0", "0.3", ""]),
        "ce-type": st.sampled_from([REQUEST_TYPE, RESPONSE_TYPE, "x"]),
    },
    optional={
        "ce-id": header_texts,
        "ce-source": header_texts,
        "ce-inferenceservicename": st.sampled_from([MODEL, "other", ""]) | header_texts,
        "ce-annotations": header_texts | json_values.map(lambda v: json.dumps(v)[:200]).filter(str.isascii),
        "ce-endpoint": st.sampled_from(["default", "canary"]) | header_texts,
        "content-type": st.sampled_from(["application/json", "text/plain", STRUCTURED_CONTENT_TYPE, ""]),
    },
)
structured_events = st.fixed_dictionaries(
    {},
    optional={
        "specversion": st.sampled_from(["1.0"]) | json_values,
        "id": texts | json_values,
        "source": texts,
        "type": st.sampled_from([REQUEST_TYPE, RESPONSE_TYPE]) | texts,
        "inferenceservicename": st.sampled_from([MODEL]) | json_values,
        "data": oip_bodies(COLUMNS) | json_values,
        "data_base64": texts | json_values,
    },
)
outcome_bodies = st.one_of(
    st.fixed_dictionaries(
        {
            "outcomes": st.lists(
                st.dictionaries(
                    st.sampled_from(["request_id", "label", "observed_at", "row"]) | texts,
                    json_values,
                    max_size=4,
                ),
                max_size=4,
            )
            | json_values
        }
    ),
    json_values,
)


@pytest.fixture(scope="module")
def drift(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    service = quality_service(tmp_path_factory.mktemp("drift-state"))
    with TestClient(drift_app(service, tick_s=0.05), raise_server_exceptions=False) as client:
        yield client
    service.quality.store.close()


def _still_serves(client: TestClient) -> None:
    good = client.post("/", headers=binary_headers(event_id="good"), content=json.dumps(columns_body([1, 2])))
    assert good.status_code == 200, good.text


@fuzz_settings(FUZZ_CASES)
@given(headers=ce_headers, body=encoded(oip_bodies(COLUMNS)))
def test_binary_mode_events(drift: TestClient, headers: dict, body: bytes) -> None:
    raw = {name: value.encode("latin-1") for name, value in headers.items()}  # as bytes on the wire
    response = drift.post("/", headers=raw, content=body)
    assert_client_error_or_success(response.status_code, response.content, f"POST / {headers} {body[:200]!r}")


@fuzz_settings(FUZZ_CASES)
@given(body=encoded(structured_events))
def test_structured_mode_events(drift: TestClient, body: bytes) -> None:
    response = drift.post("/", headers={"content-type": STRUCTURED_CONTENT_TYPE}, content=body)
    assert_client_error_or_success(response.status_code, response.content, f"structured {body[:200]!r}")


@fuzz_settings(FUZZ_CASES)
@given(body=encoded(outcome_bodies))
def test_outcomes(drift: TestClient, body: bytes) -> None:
    response = drift.post("/v1/outcomes", content=body)
    assert_client_error_or_success(response.status_code, response.content, f"outcomes {body[:200]!r}")


def test_the_drift_service_serves_after_the_fuzzing(drift: TestClient) -> None:
    _still_serves(drift)


# what a shadow rollout's events add: the request id in ce-metadata, ce-time, the shadow's service name
mirrored_headers = st.fixed_dictionaries(
    {
        "ce-specversion": st.sampled_from(["1.0"]),
        "ce-id": st.sampled_from(["e1", "e2"]),
        "ce-source": st.sampled_from(["pod"]),
        "ce-type": st.sampled_from([REQUEST_TYPE, RESPONSE_TYPE]),
    },
    optional={
        "ce-inferenceservicename": st.sampled_from([MODEL, f"{MODEL}-shadow", "-shadow"]) | header_texts,
        "ce-metadata": st.sampled_from(['{"X-Request-Id":["r1"]}', '{"X-Request-Id":[]}', "{}"])
        | json_values.map(lambda v: json.dumps({"X-Request-Id": v})[:200]).filter(str.isascii)
        | header_texts,
        "ce-time": st.sampled_from(["2026-12-06T12:00:00.123456789Z", "2026-12-06T12:00:01+01:00"])
        | header_texts,
        "ce-annotations": st.sampled_from(['{"serving.mlops-loop.io/model-version":"2"}'])
        | json_values.map(lambda v: json.dumps(v)[:200]).filter(str.isascii),
        "content-type": st.sampled_from(["application/json", STRUCTURED_CONTENT_TYPE]),
    },
)


@pytest.fixture(scope="module")
def shadow() -> Iterator[TestClient]:
    registry = CollectorRegistry()
    join = ShadowJoin(ShadowComparator(registry), registry, max_pending=50)
    with TestClient(shadow_app(join, registry), raise_server_exceptions=False) as client:
        yield client


@fuzz_settings(FUZZ_CASES)
@given(headers=mirrored_headers, body=encoded(oip_bodies(["output__0"]) | json_values))
def test_shadow_comparator_events(shadow: TestClient, headers: dict, body: bytes) -> None:
    raw = {name: value.encode("latin-1") for name, value in headers.items()}
    response = shadow.post("/", headers=raw, content=body)
    assert_client_error_or_success(response.status_code, response.content, f"shadow {headers} {body[:200]!r}")


def test_the_shadow_comparator_serves_after_the_fuzzing(shadow: TestClient) -> None:
    assert shadow.get("/metrics").status_code == 200
    headers = {**dict(binary_headers(event_id="good")), "ce-time": "2026-12-06T12:00:00Z"}
    headers["ce-metadata"] = '{"X-Request-Id":["after-fuzz"]}'
    response = shadow.post("/", headers=headers, content=b"{}")
    assert response.status_code == 202 and response.json()["result"] in ("waiting", "duplicate"), (
        response.text
    )


@pytest.fixture(scope="module")
def trigger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, FakeSubmitter]]:
    fake = FakeSubmitter()
    db = Path(tmp_path_factory.mktemp("trigger")) / "t.db"
    service = TriggerService(StateStore(db), fake, [MODEL], clock=Clock())
    with TestClient(trigger_app(service, TOKEN), raise_server_exceptions=False) as client:
        yield client, fake
    fake.release_all()


def _alert_variants() -> st.SearchStrategy:
    alert = st.fixed_dictionaries(
        {},
        optional={
            "status": st.sampled_from(["firing", "resolved"]) | json_values,
            "labels": st.dictionaries(
                st.sampled_from(["alertname", "model", "action", "severity"]) | texts,
                texts | json_values,
                max_size=4,
            )
            | json_values,
            "annotations": st.dictionaries(texts, json_values, max_size=2) | json_values,
            "startsAt": st.sampled_from(["2026-11-22T10:15:30Z", "not a time", ""]) | texts | json_values,
            "fingerprint": texts | json_values,
        },
    )
    document = st.builds(
        lambda alerts, extra: {**payload(), "alerts": alerts, **extra},
        st.lists(alert, max_size=3) | json_values,
        st.dictionaries(
            st.sampled_from(["version", "status", "receiver", "groupKey"]), json_values, max_size=2
        ),
    )
    return st.one_of(document, json_values)


@fuzz_settings(FUZZ_CASES)
@given(body=encoded(_alert_variants()))
def test_alertmanager_webhooks(trigger: tuple[TestClient, FakeSubmitter], body: bytes) -> None:
    client, _ = trigger
    response = client.post("/v1/alerts", content=body, headers={**AUTH, "content-type": "application/json"})
    assert_client_error_or_success(response.status_code, response.content, f"alerts {body[:200]!r}")


def test_the_trigger_serves_after_the_fuzzing(trigger: tuple[TestClient, FakeSubmitter]) -> None:
    client, _ = trigger
    response = client.post("/v1/alerts", json=payload("after-fuzz", model=MODEL), headers=AUTH)
    assert response.status_code == 200, response.text
