"""The router's request checks on their own (inference/router/validation.py): every datatype's rules, for
REST bodies and gRPC messages alike; the served tests in test_router.py and test_router_grpc.py show the
400s end to end and that Triton never sees them."""

from __future__ import annotations

import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from inference.router.upstream import RouterFailure
from inference.router.validation import InputSpec, check_grpc_request, check_request, input_specs

SPECS = input_specs(
    {
        "inputs": [
            {"name": "ids", "datatype": "INT64", "shape": [-1, 1]},
            {"name": "text", "datatype": "BYTES", "shape": [-1]},
            {"name": "x", "datatype": "FP16", "shape": [-1, 2]},
            {"name": "flag", "datatype": "BOOL", "shape": [-1]},
            {"name": "small", "datatype": "UINT8", "shape": [-1]},
        ]
    }
)
GOOD = {
    "ids": [[20701]],
    "text": ["hello"],
    "x": [[0.5, -1.0]],
    "flag": [True],
    "small": [255],
}


def body(**data: object) -> dict:
    tensors = {**GOOD, **data}
    shapes = {"ids": [1, 1], "text": [1], "x": [1, 2], "flag": [1], "small": [1]}
    return {
        "inputs": [
            {"name": name, "datatype": SPECS[name].datatype, "shape": shapes[name], "data": values}
            for name, values in tensors.items()
        ]
    }


def test_a_good_request_of_every_datatype_passes() -> None:
    check_request(body(), SPECS)
    assert SPECS["x"] == InputSpec("x", "FP16", (-1, 2))


def test_nan_passes_as_a_missing_raw_feature_and_infinity_does_not() -> None:
    check_request(body(x=[[float("nan"), 0.5]]), SPECS)  # the model's own preprocessing imputes it
    with pytest.raises(RouterFailure, match="inf is not a finite FP16 value"):
        check_request(body(x=[[float("inf"), 0.5]]), SPECS)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"ids": [[20701.7]]}, "20701.7 is not a INT64 value"),
        ({"ids": [[2**64]]}, "is not a INT64 value"),
        ({"ids": [["5"]]}, "INT64 data must be numbers, got str"),
        ({"small": [-1]}, "-1 is not a UINT8 value"),
        ({"small": [256]}, "256 is not a UINT8 value"),
        ({"text": [5]}, "BYTES data must be strings, got int"),
        ({"flag": [1]}, "BOOL data must be true or false"),
        ({"x": [[70000.0, 0.0]]}, "70000.0 is not a finite FP16 value"),
        ({"x": [[True, "a"]]}, "FP16 data must be numbers, got bool"),
        ({"x": "0.5"}, "'data' must be a list"),
    ],
)
def test_each_datatype_refuses_what_it_cannot_hold(data: dict, says: str) -> None:
    with pytest.raises(RouterFailure, match=None) as refused:
        check_request(body(**data), SPECS)
    assert refused.value.status == 400 and says in str(refused.value)


def test_a_missing_input_is_named() -> None:
    request = body()
    request["inputs"] = [t for t in request["inputs"] if t["name"] != "flag"]
    with pytest.raises(RouterFailure, match="missing input\\(s\\) 'flag'"):
        check_request(request, SPECS)


def test_grpc_typed_and_raw_contents_are_checked_alike() -> None:
    specs = {"x": InputSpec("x", "FP32", (-1, 2))}
    typed = pb.ModelInferRequest()
    typed.inputs.add(name="x", datatype="FP32", shape=[1, 2]).contents.fp32_contents.extend([0.5, 1.0])
    check_grpc_request(typed, specs)
    raw = pb.ModelInferRequest()
    raw.inputs.add(name="x", datatype="FP32", shape=[1, 2])
    raw.raw_input_contents.append(np.array([0.5, np.inf], dtype=np.float32).tobytes())
    with pytest.raises(RouterFailure, match="not finite FP32"):
        check_grpc_request(raw, specs)
    missing = pb.ModelInferRequest()  # NaN is a missing raw feature, which the model imputes
    missing.inputs.add(name="x", datatype="FP32", shape=[1, 2])
    missing.raw_input_contents.append(np.array([0.5, np.nan], dtype=np.float32).tobytes())
    check_grpc_request(missing, specs)
    twice = pb.ModelInferRequest()
    for _ in range(2):
        twice.inputs.add(name="x", datatype="FP32", shape=[1, 2]).contents.fp32_contents.extend([0.5, 1.0])
    with pytest.raises(RouterFailure, match="given twice"):
        check_grpc_request(twice, specs)
