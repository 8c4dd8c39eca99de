"""The router over OIP gRPC: the same routes, canary split, metrics and CloudEvents as over REST.

Two real scikit-learn models (ONNX via skl2onnx, tests/helpers/router_stack.py) are served by one Triton as
`demo__v1` and `demo__v2`, with a GrpcRouter in front. The client is the real `tritonclient.grpc`, in a
long-lived subprocess (tests/helpers/triton_clients.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from scipy.stats import binom

from inference.router.__main__ import build_settings, parse_args
from inference.router.grpc_app import GrpcRouter, GrpcRouterError
from inference.router.oip_proto import request_json, response_json
from inference.triton_local import Ports, TritonLocal
from monitoring.payloads.oip import request_rows
from tests.helpers.environment import served_test
from tests.helpers.router_stack import (
    N_FEATURES,
    Receiver,
    assert_kserve_logger_headers,
    isvc,
    logged_pairs,
    stage_two_versions,
    triton_counts,
    write_isvc,
)
from tests.helpers.triton_clients import GrpcClient
from tests.helpers.waiting import wait_until_serving

MAX_BODY = 16 * 1024  # the oversized case sends ~40 KB; good requests are ~100 bytes
REPO_ROOT = Path(__file__).resolve().parents[2]


class GrpcStack:
    def __init__(self, router: GrpcRouter, models: dict[str, Any], receiver: Receiver, triton: TritonLocal):
        self.router, self.models, self.receiver, self.triton = router, models, receiver, triton
        self.settings = router.settings
        self.rows = np.random.default_rng(1).normal(size=(3, N_FEATURES)).astype(np.float32)
        self.client = GrpcClient(router.address)

    def expected(self, version: str) -> np.ndarray:
        return self.models[version].predict_proba(self.rows.astype(np.float64))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcStack]:
    root = tmp_path_factory.mktemp("grpc-router")
    models, path = stage_two_versions(root)
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    with TritonLocal(log_path=root / "triton.log").start(root / "repo") as triton:
        flags = ["--isvc", str(path), "--triton-url", triton.http_url, "--logger-url", receiver.url]
        flags += ["--seed", "0", "--max-body-bytes", str(MAX_BODY)]
        router = GrpcRouter(build_settings(parse_args(flags)), triton.grpc_address)
        router.start()
        served = GrpcStack(router, models, receiver, triton)
        try:
            yield served
        finally:
            served.client.close()
            router.stop()
    receiver.shutdown()


def outputs(answer: list) -> np.ndarray:
    return np.asarray(answer[2], dtype=np.float64)


# ------------------------------------------------------------------------- unit: protobuf -> OIP JSON
def test_typed_and_raw_tensors_become_the_same_oip_json() -> None:
    rows = np.arange(6, dtype=np.float32).reshape(2, 3)
    typed = pb.ModelInferRequest(id="a", model_name="m")
    tensor = typed.inputs.add(name="x", datatype="FP32", shape=[2, 3])
    tensor.contents.fp32_contents.extend(rows.ravel().tolist())
    raw = pb.ModelInferRequest(id="a", model_name="m")
    raw.inputs.add(name="x", datatype="FP32", shape=[2, 3])
    raw.raw_input_contents.append(rows.tobytes())
    assert json.loads(request_json(typed)) == json.loads(request_json(raw))
    body = json.loads(request_json(raw))
    assert body == {
        "id": "a",
        "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [*range(6)]}],
    }
    read = request_rows(body, ["a", "b", "c"])  # what the drift service reads
    np.testing.assert_array_equal(read.frame().to_numpy(), rows)

    texts = pb.ModelInferResponse(model_name="m", model_version="2")
    texts.outputs.add(name="label", datatype="BYTES", shape=[2])
    texts.raw_output_contents.append(b"\x02\x00\x00\x00hi\x03\x00\x00\x00h\xc3\xa9")
    texts.outputs.add(name="n", datatype="INT64", shape=[1]).contents.int64_contents.append(7)
    answer = json.loads(response_json(texts))
    assert answer["model_version"] == "2"
    assert [o["data"] for o in answer["outputs"]] == [["hi", "hé"], [7]]


# ------------------------------------------------------------------------------------ the served stack
@served_test
def test_health_readiness_and_metadata_use_public_names(stack: GrpcStack) -> None:
    ready = stack.client.call(kind="ready", model="demo")
    assert ready == {"code": "OK", "live": True, "ready": True, "model_ready": True}
    assert stack.client.call(kind="ready", model="demo", version="2")["model_ready"] is True
    assert stack.client.call(kind="ready", model="nope")["code"] == "NOT_FOUND"
    meta = stack.client.call(kind="metadata", model="demo")["metadata"]
    assert meta["name"] == "demo" and meta["versions"] == ["1", "2"]
    assert meta["inputs"][0]["name"] == "input__0" and meta["outputs"][0]["name"] == "output__0"
    pinned = stack.client.call(kind="metadata", model="demo", version="2")["metadata"]
    assert pinned["versions"] == ["2"]


@served_test
def test_canary_share_is_binomial_and_each_answer_is_its_versions_own(stack: GrpcStack) -> None:
    expected = {v: stack.expected(v) for v in ("1", "2")}
    assert np.abs(expected["1"] - expected["2"]).max() > 0.05  # the versions are told apart by output
    n = 1000
    result = stack.client.infer(stack.rows, repeat=n)
    assert result["code"] == "OK", result
    versions = []
    for name, version, _ in result["answers"]:
        assert name == "demo"
        versions.append(version)
    for version in ("1", "2"):
        got = np.array([outputs(a) for a in result["answers"] if a[1] == version])
        np.testing.assert_allclose(got, np.broadcast_to(expected[version], got.shape), atol=1e-5, rtol=0)
    low, high = binom.interval(0.99, n, 0.2)
    assert low <= versions.count("2") <= high
    for version in ("1", "2"):  # pinning by the request's model_version
        (pinned,) = stack.client.infer(stack.rows, version=version, repeat=1)["answers"]
        assert pinned[1] == version
        np.testing.assert_allclose(outputs(pinned), expected[version], atol=1e-5, rtol=0)


@served_test
def test_bad_requests_get_their_grpc_code_and_the_next_request_succeeds(stack: GrpcStack) -> None:
    rows = stack.rows
    cases = {
        "wrong shape": (lambda: stack.client.infer(rows[:, :-1]), "INVALID_ARGUMENT"),
        "wrong datatype": (
            lambda: stack.client.infer(rows, dtype="float64", datatype="FP64"),
            "INVALID_ARGUMENT",
        ),
        "unknown model": (lambda: stack.client.infer(rows, model="nope"), "NOT_FOUND"),
        "unknown version": (lambda: stack.client.infer(rows, version="9"), "NOT_FOUND"),
        "oversized": (
            lambda: stack.client.infer(np.zeros((2000, N_FEATURES), dtype=np.float32)),
            "RESOURCE_EXHAUSTED",
        ),
        "not protobuf": (lambda: _send_garbage(stack.router.address), "INVALID_ARGUMENT"),
    }
    for case, (send, code) in cases.items():
        answer = send()
        assert answer["code"] == code, (case, answer)
        assert answer["message"], case
        good = stack.client.infer(rows)
        assert good["code"] == "OK", (case, good)


def _send_garbage(address: str) -> dict[str, Any]:
    """Bytes that are no ModelInferRequest, sent with grpc's raw channel (no client would produce them)."""
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        try:
            call(b"\xff\xff\xff\xff", timeout=10)
        except grpc.RpcError as exc:
            return {"code": exc.code().name, "message": exc.details()}
    return {"code": "OK"}


def _grpc_request(datatype: str = "FP32", shape: tuple = (1, N_FEATURES), **kind: Any) -> Any:
    request = pb.ModelInferRequest(model_name="demo", model_version="2")
    tensor = request.inputs.add(name=kind.get("name", "input__0"), datatype=datatype, shape=list(shape))
    values = kind.get("values", [1.0] * N_FEATURES)
    if kind.get("raw"):
        request.raw_input_contents.append(np.asarray(values, dtype=np.float32).tobytes())
    else:
        tensor.contents.fp32_contents.extend(values)
    return request


GRPC_MALFORMED = {
    "unknown input": (_grpc_request(name="x"), "unknown input 'x'"),
    "wrong datatype": (_grpc_request(datatype="FP64"), "datatype 'FP64', the model takes FP32"),
    "wrong rank": (_grpc_request(shape=(N_FEATURES,)), "shape [5], the model takes [-1, 5]"),
    "short contents": (_grpc_request(values=[1.0] * 4), "needs 5 values, got 4"),
    "short raw contents": (
        _grpc_request(values=[1.0] * 4, raw=True),
        "needs 20 bytes of raw contents, got 16",
    ),
    "infinity": (_grpc_request(values=[1.0, 2.0, float("-inf"), 4.0, 5.0]), "not finite FP32"),
    "infinity raw": (_grpc_request(values=[float("inf")] * N_FEATURES, raw=True), "not finite FP32"),
    "no inputs": (pb.ModelInferRequest(model_name="demo", model_version="2"), "'inputs' must be a non-empty"),
}


@served_test
@pytest.mark.parametrize("case", sorted(GRPC_MALFORMED))
def test_a_malformed_grpc_request_is_invalid_argument_and_not_a_failure_of_the_version(
    stack: GrpcStack, case: str
) -> None:
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    request, says = GRPC_MALFORMED[case]
    before = triton_counts(stack.triton.metrics_url)
    with grpc.insecure_channel(stack.router.address) as channel, pytest.raises(grpc.RpcError) as failure:
        pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT, failure.value.details()
    assert says in failure.value.details()
    assert triton_counts(stack.triton.metrics_url) == before


@served_test
def test_triton_counts_grpc_requests_under_their_version(stack: GrpcStack) -> None:
    success = "nv_inference_request_success"
    before = triton_counts(stack.triton.metrics_url)
    stack.client.infer(stack.rows, version="1")
    stack.client.infer(stack.rows, version="2", repeat=2)
    after = triton_counts(stack.triton.metrics_url)
    assert after[("demo__v1", success)] - before[("demo__v1", success)] == 1
    assert after[("demo__v2", success)] - before[("demo__v2", success)] == 2
    unroutable = stack.settings.metrics.unroutable.labels("unknown_model")._value.get()
    stack.client.infer(stack.rows, model="nope")
    assert stack.settings.metrics.unroutable.labels("unknown_model")._value.get() == unroutable + 1


@served_test
def test_each_inference_is_logged_as_a_cloudevent_pair_with_oip_json(stack: GrpcStack) -> None:
    ids = {role: f"grpc-{role}-{uuid.uuid4()}" for role in ("stable", "canary")}
    stack.client.infer(stack.rows, version="1", id=ids["stable"])
    stack.client.infer(stack.rows, version="2", id=ids["canary"])
    pairs = logged_pairs(stack.receiver, ids)
    for role, endpoint, version in [("stable", "default", "1"), ("canary", "canary", "2")]:
        assert_kserve_logger_headers(pairs[role], endpoint, version)
        (_, req_body), (_, resp_body) = pairs[role]
        features = [f"f{i}" for i in range(N_FEATURES)]
        read = request_rows(req_body, features).frame().to_numpy()  # the drift service reads the raw bytes
        np.testing.assert_allclose(read, stack.rows)
        assert (resp_body["model_name"], resp_body["model_version"]) == ("demo", version)
        (output,) = resp_body["outputs"]
        served = np.asarray(output["data"]).reshape(output["shape"])
        np.testing.assert_allclose(served, stack.expected(version), atol=1e-5, rtol=0)


@served_test
def test_cli_serves_grpc_and_rest_from_one_route_table(stack: GrpcStack, tmp_path: Path) -> None:
    path = tmp_path / "isvc.yaml"
    write_isvc(path, isvc("1", "2", 100))  # all traffic to the canary: both protocols must agree
    ports = Ports.free()
    command = [sys.executable, "-m", "inference.router", "--isvc", str(path)]
    command += ["--triton-url", stack.triton.http_url, "--triton-grpc", stack.triton.grpc_address]
    command += ["--port", str(ports.http), "--grpc-port", str(ports.grpc)]
    cli = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
    client = GrpcClient(f"127.0.0.1:{ports.grpc}")
    try:
        live = f"http://127.0.0.1:{ports.http}/v2/health/live"
        wait_until_serving(live, cli, 60, details=lambda: cli.stderr.read() if cli.poll() is not None else "")
        (answer,) = client.infer(stack.rows)["answers"]
        assert answer[:2] == ["demo", "2"]
        body = {"inputs": [{"name": "input__0", "shape": [3, N_FEATURES], "datatype": "FP32"}]}
        body["inputs"][0]["data"] = stack.rows.ravel().tolist()
        rest = httpx.post(f"http://127.0.0.1:{ports.http}/v2/models/demo/infer", json=body, timeout=30)
        assert rest.json()["model_version"] == "2"
        np.testing.assert_allclose(outputs(answer), stack.expected("2"), atol=1e-5, rtol=0)
    finally:
        client.close()
        cli.terminate()
        exit_code = cli.wait(timeout=30)
    assert exit_code == 0


def test_triton_unreachable_is_unavailable_and_counted() -> None:
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    from inference.router.app import RouterSettings
    from inference.router.isvc import Route
    from inference.router.metrics import RouterMetrics
    from inference.router.routing import RouteTable

    nowhere = Ports.free().grpc  # nothing listens there
    settings = RouterSettings(RouteTable([Route("demo", "1")]), "http://127.0.0.1:9", RouterMetrics())
    settings.upstream_timeout_s = 5.0
    router = GrpcRouter(settings, f"127.0.0.1:{nowhere}")
    router.start()
    try:
        with grpc.insecure_channel(router.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            assert stub.ServerLive(pb.ServerLiveRequest()).live is False  # live follows Triton's
            assert stub.ServerReady(pb.ServerReadyRequest()).ready is False
            request = pb.ModelInferRequest(model_name="demo")
            request.inputs.add(name="input__0", datatype="FP32", shape=[1]).contents.fp32_contents.append(1)
            with pytest.raises(grpc.RpcError) as failure:
                stub.ModelInfer(request, timeout=10)
        with pytest.raises(GrpcRouterError, match=rf"could not serve on 127\.0\.0\.1:{router.port}: "):
            GrpcRouter(settings, f"127.0.0.1:{nowhere}", port=router.port).start()
    finally:
        router.stop()
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "triton unreachable" in failure.value.details()
