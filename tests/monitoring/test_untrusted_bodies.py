"""Bodies that used to crash the monitoring services into a 500 (deeply nested JSON, a structured CloudEvent
whose `data` is a number, lone surrogates in ids and alert names) get a one-line 400 naming what was wrong,
and the service goes on serving; for the retrain trigger a 5xx would make Alertmanager retry forever."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from monitoring.drift_service.app import create_app as drift_app
from monitoring.payloads.cloudevents import REQUEST_TYPE, STRUCTURED_CONTENT_TYPE
from monitoring.retrain_trigger.app import TriggerService
from monitoring.retrain_trigger.app import create_app as trigger_app
from monitoring.retrain_trigger.state import StateStore
from tests.helpers.drift_doubles import MODEL
from tests.helpers.drift_events import binary_headers, columns_body, make_service
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
