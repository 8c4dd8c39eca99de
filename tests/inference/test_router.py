"""The local serving router over OIP REST in front of a real Triton: the canary split, promotion and
rollback under load, 4xx for bad requests, metrics by role and code, and KServe-logger CloudEvents (the
parts that need no Triton are in test_router_parts.py).

Two real scikit-learn models (ONNX via skl2onnx) are served by one Triton as `demo__v1` and `demo__v2`;
the router (uvicorn in a thread, built from its CLI flags) reads an InferenceService file that the tests
rewrite, and posts CloudEvents to a stdlib HTTP server on loopback.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from scipy.stats import binom

from inference.router.__main__ import build_settings, parse_args
from inference.router.app import create_app
from inference.router.isvc import Route
from inference.triton_local import TritonLocal
from tests.helpers.environment import served_test
from tests.helpers.raw_http import stalled_upload_answer
from tests.helpers.router_stack import (
    N_FEATURES,
    Receiver,
    assert_kserve_logger_headers,
    isvc,
    logged_pairs,
    stage_two_versions,
    tensor,
    triton_counts,
    write_isvc,
)
from tests.helpers.servers import serving_in_thread
from tests.helpers.waiting import wait_for

MAX_BODY = 16 * 1024  # the oversized case sends ~50 KB; good requests are ~200 bytes
READ_TIMEOUT_S = 1.0


# ------------------------------------------------------------------------------------- the served stack
class Stack:
    def __init__(
        self, url: str, settings: Any, models: dict[str, Any], receiver: Receiver, isvc: Path, triton: Any
    ):
        self.url, self.settings, self.models, self.receiver, self.isvc = url, settings, models, receiver, isvc
        self.triton = triton
        self.rows = np.random.default_rng(1).normal(size=(3, N_FEATURES)).astype(np.float32)
        self.client = httpx.Client(base_url=url, timeout=30)

    def expected(self, version: str) -> np.ndarray:
        return self.models[version].predict_proba(self.rows.astype(np.float64))

    def infer(self, path: str = "/v2/models/demo/infer", rows: np.ndarray | None = None, **kw: Any):
        rows = self.rows if rows is None else rows
        body = {"id": kw.pop("id", "r"), "inputs": [tensor(rows, kw.pop("datatype", "FP32"))]}
        return self.client.post(path, json=body)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("router")
    models, path = stage_two_versions(root)
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    with TritonLocal(log_path=root / "triton.log").start(root / "repo") as triton:
        flags = ["--isvc", str(path), "--triton-url", triton.http_url, "--logger-url", receiver.url]
        flags += ["--seed", "0", "--max-body-bytes", str(MAX_BODY), "--reload-interval-s", "0.05"]
        flags += ["--read-timeout-s", str(READ_TIMEOUT_S)]
        settings = build_settings(parse_args(flags))
        with serving_in_thread(create_app(settings)) as url:
            yield Stack(url, settings, models, receiver, path, triton)
    receiver.shutdown()


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


JSON_HEADERS = {"content-type": "application/json"}


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
        # json.loads raises RecursionError past ~1,000 levels: a 500 until the router read bodies as untrusted
        "nested past the parser": lambda: stack.client.post(
            "/v2/models/demo/infer", content=b"[" * 5_000 + b"]" * 5_000, headers=JSON_HEADERS
        ),
        "lone surrogate": lambda: stack.client.post(
            "/v2/models/demo/infer", content=b'{"id": "\\ud800", "inputs": []}', headers=JSON_HEADERS
        ),
        "wrong method": lambda: stack.client.put("/v2/models/demo/infer", content=b"{}"),
        "unknown path": lambda: stack.client.get("/v3/models"),
    }
    codes = {"bad json": 400, "wrong shape": 400, "wrong datatype": 400}
    codes |= {"nested past the parser": 400, "lone surrogate": 400}
    codes |= {"unknown model": 404, "unknown version": 404, "oversized": 413}
    codes |= {"wrong method": 405, "unknown path": 404}
    for case, send in bad.items():
        response = send()
        assert response.status_code == codes[case], (case, response.text)
        error = response.json()
        assert list(error) == ["error"] and error["error"] and "\n" not in error["error"], case
        good = stack.infer()
        assert good.status_code == 200, (case, good.text)


def test_a_stalled_body_is_answered_408_and_the_next_request_succeeds(stack: Stack) -> None:
    answer = stalled_upload_answer(stack.url, JSON_HEADERS, path="/v2/models/demo/infer")
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'{"error":"body: not received whole within 1 s"}' in answer
    assert stack.infer().status_code == 200


def _nested(depth: int) -> list:
    data: list = [1.0] * N_FEATURES
    for _ in range(depth):
        data = [data]
    return data


def _body(**changes: Any) -> dict:
    body = {"id": "r", "inputs": [tensor(np.ones((1, N_FEATURES), dtype=np.float32))]}
    body["inputs"][0].update(changes.pop("tensor", {}))
    return {**body, **changes}


# Each a client's mistake Triton would answer with a 5xx, or serve, or answer undecodably (issue 18 items
# 7-9); the router refuses it with 400 and a line naming what and where.
ONE_X = [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]
SHORT, LONG = [1.0] * (N_FEATURES - 1), [1.0] * (N_FEATURES + 1)
MALFORMED = {
    "no inputs": (_body(inputs=[]), "'inputs' must be a non-empty list"),
    "inputs not a list": (_body(inputs={"name": "input__0"}), "'inputs' must be a non-empty list"),
    "missing input": (_body(inputs=ONE_X), "unknown input 'x'"),
    "id not a string": (_body(id=5), "'id' must be a string, got int"),
    "data short of the shape": (_body(tensor={"data": SHORT}), "needs 5 values, 'data' has 4"),
    "data beyond the shape": (_body(tensor={"data": LONG}), "needs 5 values, 'data' has more"),
    "negative dimension": (_body(tensor={"shape": [-1, N_FEATURES]}), "must be a list of non-negative"),
    "wrong rank": (_body(tensor={"shape": [N_FEATURES]}), "shape [5], the model takes [-1, 5]"),
    "string data": (_body(tensor={"data": ["a"] * N_FEATURES}), "FP32 data must be numbers, got str"),
    "too large for FP32": (_body(tensor={"data": [1e39] * N_FEATURES}), "1e+39 is not a finite FP32 value"),
    "binary outputs": (_body(parameters={"binary_data_output": True}), "binary tensor extension"),
    "binary output": (_body(outputs=[{"name": "output__0", "parameters": {"binary_data": True}}]), "binary"),
    "deeply nested data": (_body(tensor={"data": _nested(40)}), "'data' is nested too deeply"),
}


@served_test
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_request_is_a_400_naming_it_and_not_a_failure_of_the_version(stack: Stack, case) -> None:
    body, says = MALFORMED[case]
    before = triton_counts(stack.triton.metrics_url)
    response = stack.client.post("/v2/models/demo/versions/2/infer", json=body)
    assert response.status_code == 400, response.text
    (error,) = response.json().values()
    assert "\n" not in error and (says is None or says in error), error
    after = triton_counts(stack.triton.metrics_url)
    assert after == before  # Triton never saw it: nothing counts against version 2
    assert stack.infer("/v2/models/demo/versions/2/infer").status_code == 200


@served_test
@pytest.mark.parametrize("literal", ["Infinity", "-Infinity"])
def test_infinite_inputs_are_refused(stack: Stack, literal: str) -> None:
    data = ", ".join(["1.0"] * (N_FEATURES - 1) + [literal])
    tensor = f'"name": "input__0", "datatype": "FP32", "shape": [1, {N_FEATURES}], "data": [{data}]'
    body = f'{{"inputs": [{{{tensor}}}]}}'
    headers = {"content-type": "application/json"}
    response = stack.client.post("/v2/models/demo/infer", content=body, headers=headers)
    assert response.status_code == 400 and "is not a finite FP32 value" in response.json()["error"]


@served_test
def test_triton_counts_each_routed_request_under_its_version_and_the_router_none(stack: Stack) -> None:
    success = "nv_inference_request_success"
    before = triton_counts(stack.triton.metrics_url)
    stack.infer("/v2/models/demo/versions/1/infer")
    stack.infer("/v2/models/demo/versions/2/infer")
    stack.infer("/v2/models/demo/versions/2/infer")
    assert stack.infer("/v2/models/demo/versions/2/infer", datatype="FP64").status_code == 400
    after = triton_counts(stack.triton.metrics_url)
    assert after[("demo__v1", success)] - before[("demo__v1", success)] == 1
    assert after[("demo__v2", success)] - before[("demo__v2", success)] == 2  # the 400 is in neither
    assert (
        after[("demo__v2", "nv_inference_request_failure")]
        == before[("demo__v2", "nv_inference_request_failure")]
    )
    # the cluster has no router: what the canary reads comes from Triton (docs/signals.md)
    assert "mlops_inference_" not in stack.client.get("/metrics").text


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
