"""The drift service's door under load (#18 item 4), over a real socket: a body over the limit is refused
with 413 while it is being read (a streamed body without a length is not read whole), and decoding an event
happens off the event loop, so /healthz answers while an event is still being handled; a body that stalls is
answered 408 once the read deadline passes."""

from __future__ import annotations

import json
import threading

import httpx

from monitoring.drift_service.app import create_app
from monitoring.drift_service.event_lane import INLINE_BYTES
from monitoring.drift_service.service import DriftService
from tests.helpers.drift_doubles import MeanBoundDetector
from tests.helpers.drift_events import binary_headers, columns_body, quality_service
from tests.helpers.raw_http import chunked_upload_answer, stalled_upload_answer
from tests.helpers.servers import serving_in_thread

LIMIT = 64 * 1024


def test_a_streamed_body_over_the_limit_is_refused_while_it_is_read() -> None:
    service = DriftService({(d.model, d.version): d for d in [MeanBoundDetector()]})
    with serving_in_thread(create_app(service, max_body_bytes=LIMIT, tick_s=0.05)) as url:
        # Three chunks (192 KiB) of an upload that would go on for ever: answered without its end.
        answer = chunked_upload_answer(url, binary_headers(), chunks=3)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"65536-byte limit" in answer
        declared = httpx.post(url, content=b" " * (LIMIT + 1), headers=binary_headers(), timeout=30)
        assert declared.status_code == 413
        good = httpx.post(url, json=columns_body([1, 2]), headers=binary_headers(event_id="ok"), timeout=30)
        assert good.status_code == 200, good.text
    assert service.metrics.rejected.labels(reason="bad_payload")._value.get() == 2


class HeldService(DriftService):
    """Handles an event only once the test releases it: a stand-in for a large event's decoding time."""

    def __init__(self) -> None:
        super().__init__({(d.model, d.version): d for d in [MeanBoundDetector()]})
        self.started, self.release = threading.Event(), threading.Event()

    def handle_http(self, headers, body):
        self.started.set()
        assert self.release.wait(60), "never released"
        return super().handle_http(headers, body)


def test_health_answers_while_a_large_event_is_being_handled() -> None:
    service = HeldService()
    with serving_in_thread(create_app(service, tick_s=0.05)) as url:
        answers: list[httpx.Response] = []
        body = json.dumps(columns_body(list(range(5_000))))
        assert len(body) > INLINE_BYTES  # small events are handled on the event loop: a hop costs more
        post = threading.Thread(
            target=lambda: answers.append(httpx.post(url, content=body, headers=binary_headers(), timeout=60))
        )
        post.start()
        assert service.started.wait(30)
        # With the handling on the event loop this would wait for the release and time out.
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        assert not answers  # the event is still being handled
        service.release.set()
        post.join(60)
    assert answers and answers[0].status_code == 200, answers


def test_a_stalled_body_is_answered_408_and_health_answers_meanwhile() -> None:
    service = quality_service(None)
    app = create_app(service, read_timeout_s=0.5, tick_s=0.05)
    with serving_in_thread(app) as url:
        stalled: list[bytes] = []
        client = threading.Thread(target=lambda: stalled.append(stalled_upload_answer(url, binary_headers())))
        client.start()
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        client.join(15)
        outcomes = stalled_upload_answer(url, {"content-type": "application/json"}, path="/v1/outcomes")
    assert stalled[0].startswith(b"HTTP/1.1 408"), stalled[0][:200]
    assert b'{"error":"body: not received whole within 0.5 s"}' in stalled[0]
    assert service.metrics.rejected.labels(reason="bad_payload")._value.get() == 1
    assert outcomes.startswith(b"HTTP/1.1 408"), outcomes[:200]
    assert service.quality.metrics.rejected.labels(reason="timeout")._value.get() == 1
