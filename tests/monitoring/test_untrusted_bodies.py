"""Bodies that used to crash the monitoring services into a 500 (deeply nested JSON, a structured CloudEvent
whose `data` is a number, lone surrogates in ids and alert names) get a one-line 400 naming what was wrong,
and the service goes on serving; for the retrain trigger a 5xx would make Alertmanager retry forever. What
FastAPI answers on its own (unknown path or method, a malformed query parameter) has the same one-line
`{"error"}` shape (`core/json_errors.py`)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from inference.router.logger import REQUEST_TYPE
from monitoring.drift_service.app import create_app as drift_app
from monitoring.payloads.cloudevents import STRUCTURED_CONTENT_TYPE
from monitoring.retrain_trigger.app import TriggerService
from monitoring.retrain_trigger.app import create_app as trigger_app
from monitoring.retrain_trigger.state import StateStore
from tests.helpers.drift_doubles import MODEL
from tests.helpers.drift_events import binary_headers, columns_body, make_service, quality_service
from tests.helpers.trigger_doubles import AUTH, TOKEN, Clock, FakeSubmitter, payload

NESTED = b"[" * 100_000 + b"]" * 100_000


def _structured(**event) -> bytes:
    base = {"specversion": "1.0", "id": "s-1", "source": "test", "type": REQUEST_TYPE}
    return json.dumps({**base, "inferenceservicename": MODEL, **event}).encode()


@pytest.mark.parametrize(
    ("headers", "body", "fragment"),
    [
        (binary_headers(), NESTED, "CloudEvent e1 data: JSON nested too deeply"),
        ({"content-type": STRUCTURED_CONTENT_TYPE}, b'{"data": ' + NESTED + b"}", "nested too deeply"),
        (
            {"content-type": STRUCTURED_CONTENT_TYPE},
            _structured(data=5),
            "data: expected a JSON object, got int",
        ),
        (
            {"content-type": STRUCTURED_CONTENT_TYPE},
            _structured(id="\ud800", data={}),
            "lone UTF-16 surrogate",
        ),
        (binary_headers(), b'{"id": "\\udc80", "inputs": []}', "lone UTF-16 surrogate"),
    ],
    ids=["binary-nested", "structured-nested", "data-number", "surrogate-id", "surrogate-in-data"],
)
def test_the_drift_service_answers_400_and_keeps_serving(headers, body: bytes, fragment: str) -> None:
    service = make_service()
    with TestClient(drift_app(service, tick_s=0.05), raise_server_exceptions=False) as client:
        response = client.post("/", headers=headers, content=body)
        assert response.status_code == 400 and fragment in response.json()["error"], response.text
        good = client.post(
            "/", headers=binary_headers(event_id="e2"), content=json.dumps(columns_body([1, 2]))
        )
        assert good.status_code == 200, good.text


def test_the_retrain_trigger_answers_400_and_starts_nothing(tmp_path) -> None:
    fake = FakeSubmitter()
    service = TriggerService(StateStore(tmp_path / "t.db"), fake, [MODEL], clock=Clock())
    surrogate = json.dumps(payload()).replace("ModelInputDriftDetected", "\\ud800").encode()
    with TestClient(trigger_app(service, TOKEN), raise_server_exceptions=False) as client:
        for body, fragment in ((NESTED, "JSON nested too deeply"), (surrogate, "lone UTF-16 surrogate")):
            headers = {**AUTH, "content-type": "application/json"}
            response = client.post("/v1/alerts", content=body, headers=headers)
            assert response.status_code == 400 and fragment in response.text, response.text
        assert fake.submitted == []
        assert client.post("/v1/alerts", json=payload(model=MODEL), headers=AUTH).status_code == 200
    fake.release_all()


@pytest.mark.parametrize(
    ("method", "path", "status", "fragment"),
    [
        ("GET", "/no/such/path", 404, "Not Found"),
        ("PUT", "/", 405, "Method Not Allowed"),
        ("GET", "/v1/recent?model=m&limit=0", 400, "query.limit: Input should be greater than or equal to 1"),
        ("GET", "/v1/recent", 400, "query.model: Field required"),
        ("GET", "/v1/recent?model=m&since=yesterday", 400, "query.since: Input should be a valid number"),
    ],
)
def test_framework_errors_of_the_drift_service_are_one_line_json(method, path, status, fragment) -> None:
    with TestClient(drift_app(quality_service(None), tick_s=0.05)) as client:
        response = client.request(method, path)
    assert response.status_code == status, response.text
    assert list(response.json()) == ["error"] and fragment in response.json()["error"], response.text
    assert "\n" not in response.json()["error"]


def test_framework_errors_of_the_retrain_trigger_are_one_line_json(tmp_path) -> None:
    service = TriggerService(StateStore(tmp_path / "t.db"), FakeSubmitter(), [MODEL], clock=Clock())
    with TestClient(trigger_app(service, TOKEN)) as client:
        for method, path, status in (("GET", "/v1/alerts", 405), ("POST", "/v2/alerts", 404)):
            response = client.request(method, path, headers=AUTH)
            assert response.status_code == status and list(response.json()) == ["error"], response.text
