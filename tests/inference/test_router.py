"""The local serving router: InferenceService routes, the canary split, OIP REST in front of a real Triton,
metrics by role and code, and KServe-logger CloudEvents.

Two real scikit-learn models (ONNX via skl2onnx) are served by one Triton as `demo__v1` and `demo__v2`;
the router (uvicorn in a thread, built from its CLI flags) reads an InferenceService file that the tests
rewrite, and posts CloudEvents to a stdlib HTTP server on loopback.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
import yaml
from prometheus_client.parser import text_string_to_metric_families
from scipy.stats import binom

from inference import python_backend_model
from inference.deploy.annotations import CANARY_VERSION_KEY, MODEL_VERSION_KEY, STABLE_VERSION_KEY
from inference.router.__main__ import build_settings, main, parse_args, uvicorn_options
from inference.router.app import create_app
from inference.router.isvc import (
    Route,
    RouteError,
    Target,
    route_from_isvc,
)
from inference.router.logger import EventLogger
from inference.router.metrics import RouterMetrics
from inference.router.routing import IsvcWatcher, RouteTable, stage_model_version
from inference.router.upstream import RouterFailure, public_names
from inference.triton_config import render_config
from inference.triton_dist import SERVING_VENV
from inference.triton_local import Ports, TritonLocal
from tests.components.test_export_triton import sklearn_to_onnx, spec_named

N_FEATURES = 5
MAX_BODY = 16 * 1024  # the oversized case sends ~50 KB; good requests are ~200 bytes
NEEDS_SERVING_ENV = pytest.mark.skipif(
    not (SERVING_VENV / "bin" / "python").exists(), reason="no serving env"
)


def served_test(test: Any) -> Any:
    """Marks a test that needs the real Triton stack (the unit tests above it run everywhere)."""
    return pytest.mark.slow(pytest.mark.serving(NEEDS_SERVING_ENV(test)))


def isvc(stable: str, canary: str | None = None, percent: int | None = None, name: str = "demo") -> dict:
    annotations = {MODEL_VERSION_KEY: stable, **({CANARY_VERSION_KEY: canary} if canary else {})}
    predictor: dict[str, Any] = {"model": {"modelFormat": {"name": "triton"}}}
    if percent is not None:
        predictor["canaryTrafficPercent"] = percent
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"predictor": predictor},
    }


def write_isvc(path: Path, document: dict) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(yaml.safe_dump(document))
    partial.replace(path)  # atomic, as `kubectl`-style renders should be


# ------------------------------------------------------------------------------ unit: routes and logger
def test_a_render_landing_during_a_check_is_loaded_by_the_next_one(tmp_path: Path) -> None:
    """A rollback writes two renders back to back (canary at 0, then the champion alone). If the second
    lands while the watcher checks the first, the next check must still load it."""
    path = tmp_path / "demo.yaml"
    write_isvc(path, isvc("1", "3", 0))
    table = RouteTable([Route("demo", "1", "3", 20)])

    def servable_while_the_next_render_lands(_target: Target) -> bool:
        write_isvc(path, isvc("1"))
        return True

    watcher = IsvcWatcher([path], table, is_servable=servable_while_the_next_render_lands)
    assert watcher.check_once() and table.get("demo") == Route("demo", "1", "3", 0)
    watcher.is_servable = None
    assert watcher.check_once() and table.get("demo") == Route("demo", "1")
    assert not watcher.check_once()  # nothing new


def test_isvc_fields_become_routes_with_knative_promotion_semantics() -> None:
    assert route_from_isvc(isvc("1", "2", 20)) == Route("demo", "1", "2", 20)
    assert route_from_isvc(isvc("1", "2", 0)).pick(0.0).role == "stable"  # rolled back
    assert route_from_isvc(isvc("1", "2")) == Route("demo", "2")  # field removed: canary promoted
    assert route_from_isvc(isvc("1")) == Route("demo", "1")
    # inference/deploy's render: model-version is the newest (storageUri) version, stable-version the stable
    rendered = isvc("2", "2", 20)
    rendered["metadata"]["annotations"][STABLE_VERSION_KEY] = "1"
    assert route_from_isvc(rendered) == Route("demo", "1", "2", 20)
    with pytest.raises(RouteError, match=r"f.yaml: spec.predictor.canaryTrafficPercent must be in 0..100"):
        route_from_isvc(isvc("1", "2", 120), "f.yaml")
    with pytest.raises(RouteError, match=r"model-version.*missing"):
        route_from_isvc({"metadata": {"name": "demo"}, "spec": {"predictor": {}}})
    with pytest.raises(RouteError, match=r"metadata\.name is missing"):
        route_from_isvc({"metadata": {}})


def test_seeded_draws_repeat_and_split_by_the_percent() -> None:
    def roles(seed: int) -> list[str]:
        table = RouteTable([Route("demo", "1", "2", 30)], seed=seed)
        return [table.choose("demo").role for _ in range(5000)]  # type: ignore[union-attr]

    first = roles(7)
    assert first == roles(7) and first != roles(8)
    assert 0.27 < first.count("canary") / 5000 < 0.33
    assert RouteTable([Route("demo", "1", "2", 100)]).choose("demo").role == "canary"  # type: ignore[union-attr]
    assert RouteTable().choose("demo") is None


def test_staging_a_version_renames_the_triton_model(tmp_path: Path) -> None:
    source = tmp_path / "export" / "demo"
    (source / "1").mkdir(parents=True)
    (source / "config.pbtxt").write_text('name: "demo"\nbackend: "python"\n')
    staged = stage_model_version(source, tmp_path / "repo", "demo", "7")
    assert staged.name == "demo__v7"
    assert (staged / "config.pbtxt").read_text().startswith('name: "demo__v7"\n')
    with pytest.raises(FileNotFoundError, match=r"no config\.pbtxt"):
        stage_model_version(tmp_path / "nowhere", tmp_path / "repo", "demo", "1")


def test_logger_counts_drops_when_its_queue_is_full_and_never_blocks() -> None:
    metrics = RouterMetrics()
    logger = EventLogger("http://127.0.0.1:9/none", metrics, queue_size=3)  # worker not started
    began = time.perf_counter()
    for _ in range(3):
        logger.log_pair(Target("demo", "1", "stable"), b"{}", b"{}")
    assert time.perf_counter() - began < 0.1
    assert logger.pending == 3
    assert metrics.logger_dropped.labels("queue_full")._value.get() == 3


class _SilentCloser(BaseHTTPRequestHandler):
    """Answers like HTTP/1.1 keep-alive, then drops the connection unannounced (an idle-timeout receiver)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.server.bodies.append(self.rfile.read(int(self.headers["content-length"])))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
        self.close_connection = True

    def log_message(self, *_: Any) -> None:
        pass


def test_logger_reopens_a_connection_the_receiver_dropped_and_loses_no_event() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SilentCloser)
    server.bodies = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    metrics = RouterMetrics()
    logger = EventLogger(f"http://127.0.0.1:{server.server_address[1]}/events", metrics).start()
    try:
        for i in range(3):
            logger.log_pair(Target("demo", "1", "stable"), f"q{i}".encode(), lambda i=i: f"a{i}".encode())
            time.sleep(0.05)  # lets the receiver drop the connection between events
    finally:
        logger.stop()
        server.shutdown()
    assert sorted(server.bodies) == [b"a0", b"a1", b"a2", b"q0", b"q1", b"q2"]  # type: ignore[attr-defined]
    assert metrics.logger_sent._value.get() == 6


def test_triton_answers_get_public_names_without_touching_the_tensors() -> None:
    target = Target("demo", "2", "canary")
    plain = b'{"model_name":"demo__v2","model_version":"1","outputs":[{"data":[0.25]}]}'
    assert (
        public_names(plain, target)
        == b'{"model_name":"demo","model_version":"2","outputs":[{"data":[0.25]}]}'
    )
    with_id = b'{"id":"a\\"b","model_name":"demo__v2","model_version":"1","outputs":[]}'
    assert json.loads(public_names(with_id, target)) == {
        "id": 'a"b',
        "model_name": "demo",
        "model_version": "2",
        "outputs": [],
    }
    reordered = b'{"outputs":[],"model_name":"demo__v2"}'  # not Triton's layout: re-encoded whole
    assert json.loads(public_names(reordered, target)) == {
        "outputs": [],
        "model_name": "demo",
        "model_version": "2",
    }
    with pytest.raises(RouterFailure, match="invalid JSON"):
        public_names(b"<html>", target)


def test_cli_serves_without_access_log_on_the_fastest_loop_installed() -> None:
    options = uvicorn_options("127.0.0.1", 8081)
    assert options["access_log"] is False
    assert options["loop"] == "uvloop" and options["http"] == "httptools"  # both in platform.lock
    with pytest.raises(SystemExit):
        parse_args(["--isvc", "f.yaml", "--triton-url", "http://t", "--grpc-port", "8082"])


def test_cli_refuses_an_invalid_isvc_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "isvc.yaml"
    write_isvc(path, isvc("1", "2", -5))
    assert main(["--isvc", str(path), "--triton-url", "http://127.0.0.1:9"]) == 1
    assert capsys.readouterr().err.strip().endswith("canaryTrafficPercent must be in 0..100, got -5")


# ------------------------------------------------------------------------------------- the served stack
class Receiver(ThreadingHTTPServer):
    """Collects posted CloudEvents: (lower-cased headers, parsed JSON body)."""

    def __init__(self) -> None:
        self.events: list[tuple[dict[str, str], dict]] = []
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _ReceiverHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.events.append(  # type: ignore[attr-defined]
            ({k.lower(): v for k, v in self.headers.items()}, json.loads(body))
        )
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


class Stack:
    def __init__(self, url: str, settings: Any, models: dict[str, Any], receiver: Receiver, isvc: Path):
        self.url, self.settings, self.models, self.receiver, self.isvc = url, settings, models, receiver, isvc
        self.rows = np.random.default_rng(1).normal(size=(3, N_FEATURES)).astype(np.float32)
        self.client = httpx.Client(base_url=url, timeout=30)

    def expected(self, version: str) -> np.ndarray:
        return self.models[version].predict_proba(self.rows.astype(np.float64))

    def infer(self, path: str = "/v2/models/demo/infer", rows: np.ndarray | None = None, **kw: Any):
        rows = self.rows if rows is None else rows
        body = {"id": kw.pop("id", "r"), "inputs": [tensor(rows, kw.pop("datatype", "FP32"))]}
        return self.client.post(path, json=body)


def tensor(rows: np.ndarray, datatype: str = "FP32") -> dict:
    return {
        "name": "input__0",
        "shape": list(rows.shape),
        "datatype": datatype,
        "data": rows.ravel().tolist(),
    }


def export_local_model(model: Any, dest: Path) -> Path:
    """A `local/demo/` folder as export_triton writes it: Python backend running the ONNX artifact."""
    (dest / "1").mkdir(parents=True)
    (dest / "1" / "model.onnx").write_bytes(sklearn_to_onnx(model, N_FEATURES))
    (dest / "1" / "model.py").write_bytes(Path(python_backend_model.__file__).read_bytes())
    inputs = [{"name": "input__0", "datatype": "FP32", "dims": [N_FEATURES]}]
    outputs = [{"name": "output__0", "datatype": "FP32", "dims": [2]}]
    config = render_config(
        "demo", inputs, outputs, spec_named("conversion-sklearn").serving, "local", "model.onnx"
    )
    (dest / "config.pbtxt").write_text(config)
    return dest


def fit_model(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    features = rng.normal(size=(200, N_FEATURES))
    label = (features @ rng.normal(size=N_FEATURES) > 0).astype(int)
    return LogisticRegression().fit(features, label)


def stage_two_versions(root: Path) -> tuple[dict[str, Any], Path]:
    """`demo` v1 and v2 (two real models) staged under `root/repo`, and an InferenceService file that
    canaries v2 at 20%."""
    models = {"1": fit_model(0), "2": fit_model(1)}
    for version, model in models.items():
        source = export_local_model(model, root / f"export-v{version}" / "local" / "demo")
        stage_model_version(source, root / "repo", "demo", version)
    path = root / "isvc.yaml"
    write_isvc(path, isvc("1", "2", 20))
    return models, path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("router")
    models, path = stage_two_versions(root)
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    with TritonLocal(log_path=root / "triton.log").start(root / "repo") as triton:
        flags = ["--isvc", str(path), "--triton-url", triton.http_url, "--logger-url", receiver.url]
        flags += ["--seed", "0", "--max-body-bytes", str(MAX_BODY), "--reload-interval-s", "0.05"]
        settings = build_settings(parse_args(flags))
        port = Ports.free().http
        server = uvicorn.Server(uvicorn.Config(create_app(settings), port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        yield Stack(f"http://127.0.0.1:{port}", settings, models, receiver, path)
        server.should_exit = True
        thread.join(timeout=10)
    receiver.shutdown()


def wait_for(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


Event = tuple[dict[str, str], dict]


def logged_pairs(receiver: Receiver, ids: dict[str, str]) -> dict[str, tuple[Event, Event]]:
    """Per role, the (request, response) CloudEvents logged for the request with that id (waits for them)."""

    def events_for(request_id: str) -> list[Event]:
        return [e for e in list(receiver.events) if e[1].get("id") == request_id]

    wait_for(lambda: all(len(events_for(i)) == 2 for i in ids.values()))
    return {role: tuple(events_for(request_id)) for role, request_id in ids.items()}  # type: ignore[misc]


def assert_kserve_logger_headers(pair: tuple[Event, Event], endpoint: str, version: str) -> None:
    """The binary-mode headers KServe's logger sets, on both events of one inference."""
    (req_headers, _), (resp_headers, _) = pair
    assert req_headers["ce-id"] == resp_headers["ce-id"]
    assert req_headers["ce-type"] == "org.kubeflow.serving.inference.request"
    assert resp_headers["ce-type"] == "org.kubeflow.serving.inference.response"
    for headers in (req_headers, resp_headers):
        assert headers["ce-specversion"] == "1.0" and headers["ce-endpoint"] == endpoint
        assert headers["ce-modelversion"] == version and headers["ce-inferenceservicename"] == "demo"
        assert headers["ce-source"] == "http://localhost/demo" and headers["ce-component"] == "predictor"
        assert headers["content-type"] == "application/json" and headers["ce-time"].endswith("Z")


def outputs(response: httpx.Response) -> np.ndarray:
    out = response.json()["outputs"][0]
    return np.asarray(out["data"], dtype=np.float64).reshape(out["shape"])


@served_test
def test_health_and_metadata_speak_oip_with_public_names(stack: Stack) -> None:
    assert stack.client.get("/v2/health/live").json() == {"live": True}
    assert stack.client.get("/v2/health/ready").status_code == 200
    meta = stack.client.get("/v2/models/demo").json()
    assert meta["name"] == "demo" and meta["versions"] == ["1", "2"]
    assert meta["inputs"][0]["name"] == "input__0"
    assert stack.client.get("/v2/models/demo/versions/2/ready").status_code == 200
    assert stack.client.get("/v2/models/nope/ready").status_code == 404


@served_test
def test_canary_share_is_binomial_and_each_answer_is_its_versions_own(stack: Stack) -> None:
    expected = {v: stack.expected(v) for v in ("1", "2")}
    assert np.abs(expected["1"] - expected["2"]).max() > 0.05  # the versions are told apart by output
    versions = []
    for _ in range(2000):
        response = stack.infer()
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_name"] == "demo"
        np.testing.assert_allclose(outputs(response), expected[body["model_version"]], atol=1e-5, rtol=0)
        versions.append(body["model_version"])
    low, high = binom.interval(0.99, 2000, 0.2)
    assert low <= versions.count("2") <= high
    pinned = stack.infer("/v2/models/demo/versions/2/infer")
    assert pinned.json()["model_version"] == "2"
    np.testing.assert_allclose(outputs(pinned), expected["2"], atol=1e-5, rtol=0)


@served_test
def test_promotion_and_rollback_under_load_fail_no_request(stack: Stack) -> None:
    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def send_continuously() -> None:
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            while not stop.is_set():
                body = {"inputs": [tensor(stack.rows)]}
                response = client.post("/v2/models/demo/infer", json=body)
                version = response.json().get("model_version", "") if response.status_code == 200 else ""
                results.append((response.status_code, version))

    def switch_and_see(document: dict, version: str) -> None:
        generation = stack.settings.table.generation
        write_isvc(stack.isvc, document)
        wait_for(lambda: stack.settings.table.generation > generation)
        mark = len(results) + 1  # the request in flight at the swap may still have the old route
        wait_for(lambda: len(results) > mark + 30)
        assert {v for _, v in results[mark:]} == {version}

    client = threading.Thread(target=send_continuously)
    client.start()
    try:
        wait_for(lambda: len(results) > 30)
        switch_and_see(isvc("1", "2", 0), "1")  # roll back
        switch_and_see(isvc("2"), "2")  # promote: v2 stable, all traffic
        # a render naming a version Triton does not serve is refused; serving goes on unchanged
        generation = stack.settings.table.generation
        write_isvc(stack.isvc, isvc("2", "3", 50))
        wait_for(lambda: stack.settings.watcher.last_error is not None)
        assert "version 3 (canary) is not ready in Triton as demo__v3" in stack.settings.watcher.last_error
        assert stack.settings.table.generation == generation
    finally:
        stop.set()
        client.join(timeout=30)
        write_isvc(stack.isvc, isvc("1", "2", 20))
        wait_for(lambda: stack.settings.table.get("demo") == Route("demo", "1", "2", 20))
    assert len(results) > 100
    assert [r for r in results if r[0] != 200] == []


@served_test
def test_malformed_requests_get_their_4xx_and_the_next_request_succeeds(stack: Stack) -> None:
    rows = stack.rows
    bad = {
        "bad json": lambda: stack.client.post(
            "/v2/models/demo/infer", content=b"{not json", headers={"content-type": "application/json"}
        ),
        "wrong shape": lambda: stack.infer(rows=rows[:, :-1]),
        "wrong datatype": lambda: stack.infer(datatype="FP64"),
        "unknown model": lambda: stack.infer("/v2/models/nope/infer"),
        "unknown version": lambda: stack.infer("/v2/models/demo/versions/9/infer"),
        "oversized": lambda: stack.infer(rows=np.zeros((2000, N_FEATURES), dtype=np.float32)),
    }
    codes = {"bad json": 400, "wrong shape": 400, "wrong datatype": 400}
    codes |= {"unknown model": 404, "unknown version": 404, "oversized": 413}
    for case, send in bad.items():
        response = send()
        assert response.status_code == codes[case], (case, response.text)
        error = response.json()
        assert list(error) == ["error"] and error["error"], case
        good = stack.infer()
        assert good.status_code == 200, (case, good.text)


def _samples(stack: Stack, name: str) -> dict[tuple, float]:
    text = stack.client.get("/metrics").text
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


@served_test
def test_metrics_are_labelled_by_role_and_code(stack: Stack) -> None:
    def count(role: str, version: str, code: str) -> float:
        key = (("code", code), ("model", "demo"), ("role", role), ("version", version))
        return _samples(stack, "mlops_inference_requests_total").get(key, 0.0)

    before = {(r, v, c): count(r, v, c) for r, v, c in [("stable", "1", "200"), ("canary", "2", "200")]}
    before[("canary", "2", "400")] = count("canary", "2", "400")
    stack.infer("/v2/models/demo/versions/1/infer")
    stack.infer("/v2/models/demo/versions/2/infer")
    stack.infer("/v2/models/demo/versions/2/infer")
    stack.infer("/v2/models/demo/versions/2/infer", datatype="FP64")
    assert count("stable", "1", "200") == before[("stable", "1", "200")] + 1
    assert count("canary", "2", "200") == before[("canary", "2", "200")] + 2
    assert count("canary", "2", "400") == before[("canary", "2", "400")] + 1
    buckets = _samples(stack, "mlops_inference_request_duration_seconds_bucket")
    inf = (("le", "+Inf"), ("model", "demo"), ("role", "canary"), ("version", "2"))
    assert buckets[inf] >= 3


@served_test
def test_each_inference_is_logged_as_a_cloudevent_pair(stack: Stack) -> None:
    ids = {role: f"{role}-{uuid.uuid4()}" for role in ("stable", "canary")}
    stack.infer("/v2/models/demo/versions/1/infer", id=ids["stable"])
    stack.infer("/v2/models/demo/versions/2/infer", id=ids["canary"])
    pairs = logged_pairs(stack.receiver, ids)
    for role, endpoint, version in [("stable", "default", "1"), ("canary", "canary", "2")]:
        assert_kserve_logger_headers(pairs[role], endpoint, version)
        (_, req_body), (_, resp_body) = pairs[role]
        assert req_body["inputs"][0]["name"] == "input__0"
        assert resp_body["model_version"] == version and resp_body["outputs"][0]["name"] == "output__0"


@served_test
def test_a_routed_version_triton_does_not_serve_is_a_server_error(stack: Stack) -> None:
    table = stack.settings.table
    demo = table.get("demo")
    table.update(Route("ghost", "9"))
    try:
        response = stack.infer("/v2/models/ghost/infer")
        assert response.status_code == 503
        assert "ghost__v9" in response.json()["error"]
        assert stack.client.get("/v2/health/ready").status_code == 503
    finally:
        table.replace([demo])
    assert stack.client.get("/v2/health/ready").status_code == 200
