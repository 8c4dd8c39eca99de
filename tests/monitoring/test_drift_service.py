"""The drift service end to end in the platform env: the framework-free core, the FastAPI app through
TestClient, and one real uvicorn socket. Detectors are a small deterministic double that implements the
platform's DriftDetector protocol (our own interface), so no alibi-detect is needed here."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from inference.router.logger import REQUEST_TYPE, RESPONSE_TYPE
from monitoring.drift_service.__main__ import main as drift_main
from monitoring.drift_service.app import create_app
from monitoring.drift_service.buffers import WindowBuffer
from monitoring.drift_service.checkpoint import CheckpointStore
from monitoring.drift_service.detectors import load_detectors
from monitoring.drift_service.errors import ConfigError
from monitoring.drift_service.service import DriftService
from monitoring.payloads.rows import RowBlock
from tests.helpers.drift_doubles import MODEL, MeanBoundDetector
from tests.helpers.drift_events import binary_headers, columns_body, make_service, version_annotation
from tests.helpers.metrics_text import sample_value
from tests.helpers.servers import serving_in_thread
from tests.helpers.waiting import wait_for

# Servers in threads and waits on them: a hang fails here in minutes, not at the suite-wide timeout.
pytestmark = pytest.mark.timeout(120)
DATA = Path(__file__).parent / "data" / "kserve_logger_events.json"


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------------------ helpers
def sample_event(kind: str = "request") -> tuple[dict[str, str], dict]:
    event = json.loads(DATA.read_text())[kind]
    return event["headers"], event["body"]


def sessions_statistic(service: DriftService) -> float | None:
    """The double detector's last statistic: the mean sessions_7d of what it has scored."""
    return metric(service, "mlops_drift_test_statistic", model=MODEL, version="3", feature="sessions_7d")


def metric(service_or_text: DriftService | str, name: str, **labels: str) -> float | None:
    text = (
        service_or_text if isinstance(service_or_text, str) else service_or_text.metrics.exposition().decode()
    )
    return sample_value(text, name, **labels)


def send(service: DriftService, sessions: list[int], **extensions: str):
    return service.handle_http(binary_headers(**extensions), json.dumps(columns_body(sessions)).encode())


@pytest.fixture
def client_for() -> Iterator[Callable[[DriftService], TestClient]]:
    clients: list[TestClient] = []

    def start(service: DriftService) -> TestClient:
        client = TestClient(create_app(service, tick_s=0.05))
        client.__enter__()  # runs the lifespan, so the flusher thread is live
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


# --------------------------------------------------------------------------------------------- tests
def test_kserve_binary_pair_is_accepted_and_counted_by_kind(client_for):
    service = make_service()
    client = client_for(service)
    for kind in ("request", "response"):
        headers, body = sample_event(kind)
        response = client.post("/", headers=headers, content=json.dumps(body))
        assert response.status_code == 200, response.text
    text = client.get("/metrics").text
    # The version came from the logged version annotation, not Triton's "1" in the response body.
    for kind in ("request", "response"):
        assert metric(text, "mlops_drift_events_received_total", model=MODEL, version="3", kind=kind) == 1
    assert service.buffers.pending((MODEL, "3")) == 2


def test_response_scores_feed_the_prediction_score_histogram(client_for):
    """The canary analysis reads the PSI between versions from this histogram on a cluster."""
    client = client_for(make_service())
    probabilities = [0.2, 0.8, 0.9, 0.1, 0.5, 0.5]
    outputs = [{"name": "output__0", "datatype": "FP32", "shape": [3, 2], "data": probabilities}]
    headers = binary_headers(RESPONSE_TYPE, annotations=version_annotation("3"))
    assert client.post("/", headers=headers, content=json.dumps({"outputs": outputs})).status_code == 200
    # A response without probabilities is still accepted; it adds no scores.
    names = [{"name": "predicted_class", "datatype": "BYTES", "shape": [1], "data": ["1"]}]
    assert client.post("/", headers=headers, content=json.dumps({"outputs": names})).status_code == 200
    text = client.get("/metrics").text
    histogram = "mlops_prediction_score_bucket"
    assert metric(text, "mlops_prediction_score_count", model=MODEL, version="3") == 3
    # FP32 scores: 0.1 and 0.8 are a hair above their decimal bounds, 0.5 is exact.
    assert metric(text, histogram, model=MODEL, version="3", le="0.15") == 1
    assert metric(text, histogram, model=MODEL, version="3", le="0.5") == 2
    assert metric(text, histogram, model=MODEL, version="3", le="0.8") == 2
    assert metric(text, histogram, model=MODEL, version="3", le="0.85") == 3


def test_structured_mode_with_data_and_data_base64(client_for):
    service = make_service()
    client = client_for(service)
    envelope = {
        "specversion": "1.0",
        "id": "s1",
        "source": "router",
        "type": REQUEST_TYPE,
        "inferenceservicename": MODEL,
        "annotations": version_annotation("3"),
        "datacontenttype": "application/json",
    }
    headers = {"content-type": "application/cloudevents+json; charset=utf-8"}
    inline = client.post("/", headers=headers, content=json.dumps({**envelope, "data": columns_body([1])}))
    encoded = base64.b64encode(json.dumps(columns_body([2, 3])).encode()).decode()
    b64 = client.post("/", headers=headers, content=json.dumps({**envelope, "data_base64": encoded}))
    assert (inline.status_code, b64.status_code) == (200, 200)
    assert [inline.json()["rows"], b64.json()["rows"]] == [1, 2]
    assert metric(service, "mlops_drift_events_received_total", model=MODEL, version="3", kind="request") == 2


BAD_EVENTS = {
    "missing_attribute": ({"ce-type": None}, columns_body([1])),
    "unknown_type": ({"ce-type": "com.example.other"}, columns_body([1])),
    "bad_json": ({}, b"{not json"),
    "bad_payload": ({}, {"id": "x", "outputs": []}),
    "unknown_model": ({"ce-inferenceservicename": "no-such-model"}, columns_body([1])),
}


@pytest.mark.parametrize("reason", [*BAD_EVENTS, "shape_mismatch"])
def test_malformed_events_are_400_counted_and_the_service_keeps_serving(client_for, reason):
    service = make_service()
    client = client_for(service)
    if reason == "shape_mismatch":
        body = columns_body([1, 2])
        body["inputs"][3]["shape"] = [3]
        changes, reason = {}, "bad_payload"
    else:
        changes, body = BAD_EVENTS[reason]
    headers = {k: v for k, v in {**binary_headers(), **changes}.items() if v is not None}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post("/", headers=headers, content=content)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error and "\n" not in error
    assert metric(client.get("/metrics").text, "mlops_drift_events_rejected_total", reason=reason) == 1
    ok = client.post("/", headers=binary_headers(), content=json.dumps(columns_body([1])))
    assert ok.status_code == 200


def test_count_based_flush_runs_the_detector_and_sets_every_gauge(client_for):
    clock = FakeClock()
    detector = MeanBoundDetector()
    service = make_service([detector], clock=clock)
    client = client_for(service)
    for sessions in ([9, 9], [7, 8]):
        client.post("/", headers=binary_headers(), content=json.dumps(columns_body(sessions)))
    wait_for(lambda: detector.windows == [4])
    text = client.get("/metrics").text
    labels = {"model": MODEL, "version": "3"}
    assert metric(text, "mlops_drift_test_statistic", feature="sessions_7d", **labels) == pytest.approx(8.25)
    assert metric(text, "mlops_drift_p_value", feature="sessions_7d", **labels) == pytest.approx(0.001)
    assert metric(text, "mlops_drift_p_value", feature="lifetime_value", **labels) == pytest.approx(0.5)
    assert metric(text, "mlops_drift_threshold", **labels) == pytest.approx(0.025)
    assert metric(text, "mlops_drift_detected", **labels) == 1
    assert metric(text, "mlops_drift_last_run_timestamp_seconds", **labels) == clock.now
    assert metric(text, "mlops_drift_detector_duration_seconds_count", **labels) == 1
    assert service.buffers.pending((MODEL, "3")) == 0


def test_time_based_flush_scores_a_partial_window_once_it_is_old():
    clock = FakeClock()
    detector = MeanBoundDetector()
    service = make_service([detector], buffer_size=100, max_age_s=10.0, clock=clock)
    send(service, [1, 2, 3])
    clock.now += 9.0
    assert service.run_due() == []
    clock.now += 1.5
    [report] = service.run_due()
    assert (report.rows, report.result.drift) == (3, False)
    assert metric(service, "mlops_drift_detected", model=MODEL, version="3") == 0
    assert metric(service, "mlops_drift_last_run_timestamp_seconds", model=MODEL, version="3") == clock.now


def test_a_split_window_keeps_the_age_of_its_remainder():
    buffer = WindowBuffer(buffer_size=2, max_age_s=10.0, max_pending=10)
    buffer.add(RowBlock(("x",), ("int64",), ([1, 2, 3],), 3), now=0.0)
    window, end_row = buffer.take(now=1.0)
    assert (list(window["x"]), end_row) == ([1, 2], 2)
    assert buffer.take(now=5.0) is None
    window, end_row = buffer.take(now=10.0)
    assert (list(window["x"]), end_row) == ([3], 3)  # the remainder keeps its rows' indices too


def test_overflow_drops_are_counted_never_silent():
    service = make_service(buffer_size=4, max_pending=4)
    send(service, [1, 2])
    accepted = send(service, [3, 4, 5, 6])  # two rows fit; the window they fill is scored before the answer
    assert (accepted.rows, accepted.dropped) == (2, 2)
    assert (
        metric(service, "mlops_drift_events_dropped_total", model=MODEL, version="3", reason="buffer_full")
        == 2
    )
    assert metric(service, "mlops_drift_rows_scored_total", model=MODEL, version="3") == 4
    assert service.buffers.pending((MODEL, "3")) == 0


def test_known_model_without_that_versions_detector_is_accepted_and_counted_dropped():
    service = make_service([MeanBoundDetector("3"), MeanBoundDetector("4")])
    accepted = send(service, [1, 2], annotations=version_annotation("9"))
    assert (accepted.version, accepted.rows, accepted.dropped) == ("9", 0, 2)
    # Counted under one label for every version without a detector (a client names versions at will).
    labels = {"model": MODEL, "version": "other"}
    assert metric(service, "mlops_drift_events_dropped_total", reason="no_detector", **labels) == 2
    # Two versions loaded and nothing names one: the rows cannot be routed, and that is counted too.
    send(service, [1])
    assert metric(service, "mlops_drift_events_dropped_total", model=MODEL, version="unknown") == 1


def test_single_tensor_input_takes_the_detectors_feature_names():
    detector = MeanBoundDetector()
    service = make_service([detector], buffer_size=2)
    tensor = {"inputs": [{"name": "input__0", "shape": [2, 4], "datatype": "FP32", "data": [0, 1, 2, 6] * 2}]}
    service.handle_http(binary_headers(), json.dumps(tensor).encode())  # a full window: scored at once
    assert sessions_statistic(service) == pytest.approx(6.0)
    tensor["inputs"][0].update(shape=[2, 3], data=[0, 1, 2] * 2)
    with pytest.raises(ValueError, match="3 columns, the detector expects 4"):
        service.handle_http(binary_headers(), json.dumps(tensor).encode())


def test_a_failing_detector_costs_its_window_not_the_service(caplog):
    service = make_service([MeanBoundDetector(fail=True)], buffer_size=2)
    assert send(service, [1, 2]).rows == 2  # the event that filled the window is still acknowledged
    assert "RuntimeError: detector exploded" in caplog.text
    assert (
        metric(service, "mlops_drift_events_dropped_total", model=MODEL, version="3", reason="detector_error")
        == 2
    )
    assert send(service, [3]).rows == 1


def test_checkpoint_restore_continues_the_online_window(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    first = MeanBoundDetector(online=True)
    service = make_service([first], buffer_size=2, checkpoints=store)
    send(service, [2, 4])  # a full window: scored and checkpointed before the answer
    saved = json.loads(store.path_for(MODEL, "3").read_text())
    assert saved == {"format": 2, "rows_scored": 2, "state": {"seen": 2, "total": 6.0}}

    restarted = MeanBoundDetector(online=True)
    service = make_service([restarted], buffer_size=2, checkpoints=store)
    assert (restarted.seen, restarted.total) == (2, 6.0)
    send(service, [10, 12])
    assert sessions_statistic(service) == pytest.approx(28 / 4)  # mean over all four rows
    assert json.loads(store.path_for(MODEL, "3").read_text())["state"]["seen"] == 4


def test_a_checkpoint_written_before_the_journal_existed_still_restores(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    store.path_for(MODEL, "3").parent.mkdir(parents=True)
    store.path_for(MODEL, "3").write_text(json.dumps({"seen": 5, "total": 10.0}))  # format 1: the state
    restarted = MeanBoundDetector(online=True)
    make_service([restarted], checkpoints=store)
    assert (restarted.seen, restarted.total) == (5, 10.0)


def test_metrics_exist_at_zero_from_load_and_health_endpoints(client_for):
    client = client_for(make_service([MeanBoundDetector("3"), MeanBoundDetector("4")]))
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()["detectors"]) == (200, 2)
    text = client.get("/metrics").text
    for version in ("3", "4"):
        labels = {"model": MODEL, "version": version}
        assert metric(text, "mlops_drift_events_received_total", kind="request", **labels) == 0
        assert metric(text, "mlops_drift_events_dropped_total", reason="buffer_full", **labels) == 0
        assert metric(text, "mlops_drift_detected", **labels) == 0
    assert metric(text, "mlops_drift_events_rejected_total", reason="bad_json") == 0


def test_detectors_are_found_by_bundle_and_bad_folders_fail_at_start(tmp_path, capsys):
    for version in ("3", "4"):
        (tmp_path / "bundles" / MODEL / version).mkdir(parents=True)
        (tmp_path / "bundles" / MODEL / version / "detector.json").write_text("{}")
    detectors = load_detectors(tmp_path / "bundles", loader=lambda folder: MeanBoundDetector(folder.name))
    assert sorted(detectors) == [(MODEL, "3"), (MODEL, "4")]
    with pytest.raises(ConfigError, match="two bundles for model"):
        load_detectors(tmp_path / "bundles", loader=lambda folder: MeanBoundDetector("3"))
    assert drift_main(["--detectors", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_real_socket_round_trip():
    detector = MeanBoundDetector()
    service = make_service([detector], buffer_size=3)
    with (
        serving_in_thread(create_app(service, tick_s=0.05)) as base,
        httpx.Client(base_url=base, timeout=5.0) as http,
    ):
        headers, body = sample_event("request")
        assert http.post("/", headers=headers, content=json.dumps(body)).status_code == 200
        reply = http.post(
            "/",
            headers=binary_headers(RESPONSE_TYPE, annotations=version_annotation("3")),
            content=b'{"outputs": []}',
        )
        assert reply.status_code == 200
        assert http.post("/", headers=binary_headers(), content=b"[").status_code == 400
        assert (
            http.post("/", headers=binary_headers(), content=json.dumps(columns_body([7]))).status_code == 200
        )
        wait_for(lambda: detector.windows == [3])
        text = http.get("/metrics").text
    assert metric(text, "mlops_drift_detected", model=MODEL, version="3") == 1
    assert metric(text, "mlops_drift_events_received_total", model=MODEL, version="3", kind="response") == 1
    assert metric(text, "mlops_drift_events_rejected_total", reason="bad_json") == 1
