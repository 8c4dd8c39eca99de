"""Fuzzing the local router's Open Inference Protocol surfaces, REST and gRPC, in front of a real Triton
(#18): derandomized hostile requests, none of which may get a server fault (a 5xx over REST; INTERNAL,
UNKNOWN or DATA_LOSS over gRPC) or an error without a one-line body, nor count against a version in
Triton's failure counter; a good request still succeeds afterwards."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from inference.router.__main__ import build_settings, parse_args
from inference.router.app import create_app
from inference.router.grpc_app import GrpcRouter
from inference.triton_local import TritonLocal
from tests.helpers.environment import served_test
from tests.helpers.fuzz import (
    FUZZ_CASES,
    assert_client_error_or_success,
    assert_no_server_fault,
    encoded,
    fuzz_settings,
    grpc_requests,
    oip_bodies,
)
from tests.helpers.router_stack import N_FEATURES, Receiver, stage_two_versions, tensor, triton_counts
from tests.helpers.servers import serving_in_thread

pytestmark = [pytest.mark.fuzz]
PATHS = ["/v2/models/demo/infer", "/v2/models/demo/versions/2/infer", "/v2/models/demo/versions/1/infer"]


class Served:
    def __init__(self, rest_url: str, grpc_address: str, triton: TritonLocal) -> None:
        self.rest = httpx.Client(base_url=rest_url, timeout=30)
        self.channel = grpc.insecure_channel(grpc_address)
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
        self.triton = triton

    def failures(self) -> float:
        counts = triton_counts(self.triton.metrics_url).items()
        return sum(value for (_, family), value in counts if family == "nv_inference_request_failure")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = Path(tmp_path_factory.mktemp("fuzz-router"))
    _, path = stage_two_versions(root)
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    with TritonLocal(log_path=root / "triton.log").start(root / "repo") as triton:
        flags = ["--isvc", str(path), "--triton-url", triton.http_url, "--logger-url", receiver.url]
        settings = build_settings(parse_args([*flags, "--seed", "0", "--max-body-bytes", "65536"]))
        router = GrpcRouter(settings, triton.grpc_address)
        router.start()
        try:
            with serving_in_thread(create_app(settings)) as url:
                yield Served(url, router.address, triton)
        finally:
            router.stop()
    receiver.shutdown()


@served_test
@fuzz_settings(FUZZ_CASES)
@given(path=st.sampled_from(PATHS), body=encoded(oip_bodies(["input__0"])))
def test_rest_inference(served: Served, path: str, body: bytes) -> None:
    response = served.rest.post(path, content=body, headers={"content-type": "application/json"})
    assert_client_error_or_success(response.status_code, response.content, f"POST {path} {body[:200]!r}")


@served_test
@fuzz_settings(FUZZ_CASES)
@given(request=grpc_requests("demo", ["input__0"]))
def test_grpc_inference(served: Served, request: Any) -> None:
    try:
        served.stub.ModelInfer(request, timeout=30)
    except grpc.RpcError as error:
        assert_no_server_fault(error.code().name, error.details(), str(request)[:300])


@served_test
def test_after_the_fuzzing_triton_counted_no_failure_and_a_good_request_succeeds(served: Served) -> None:
    # Malformed requests never reach Triton; only server faults would be counted against a version.
    assert served.failures() == 0
    rows = np.ones((2, N_FEATURES), dtype=np.float32)
    assert served.rest.post(PATHS[0], json={"inputs": [tensor(rows)]}).status_code == 200
