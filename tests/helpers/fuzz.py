"""Hypothesis strategies for hostile clients of our HTTP and gRPC surfaces, and the check every answer must
pass: never a 5xx, and every 4xx an Open Inference Protocol error body `{"error": "<one line>"}`.

The generators lean on what broke the services before (#18): deep nesting, lone surrogates, non-finite and
huge numbers, wrong JSON types where objects are expected, shapes that disagree with data, ids of every
type. Runs are derandomized (the same cases on every run) and bounded by `max_examples`.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ_CASES = int(os.environ.get("MLOPS_FUZZ_CASES", "250"))
"""Cases per surface: 250 in `make test`, 5,000 in `make fuzz` (MLOPS_FUZZ_CASES=5000)."""
ODD_TEXT = ["\ud800", "\udfff", "\x00", "\u2028", "\u00b2", "--5", "NaN", "", " ", "\U0001f600", "a" * 300]
DATATYPES = ["BOOL", "INT8", "INT32", "INT64", "UINT64", "FP16", "FP32", "FP64", "BYTES", "BF16", "fp32", ""]

texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(ODD_TEXT),
    st.lists(st.sampled_from(ODD_TEXT), max_size=3).map("".join),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 2**63, 2**64, 1e39, -1e39, 0.5]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=5),
    max_leaves=20,
)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# Inside a document, deep enough to trip naive recursive walkers yet still encodable by json.dumps; the
# depths past json's own recursion limit are sent as raw bytes (`encoded`).
deep = st.integers(min_value=30, max_value=900).map(_nested)
raw_deep = st.integers(min_value=900, max_value=5_000).flatmap(
    lambda n: st.sampled_from([b"[" * n + b"]" * n, b'{"inputs": [{"data": ' + b"[" * n + b"]" * n + b"}]}"])
)
shapes = st.one_of(
    st.lists(st.integers(min_value=-2, max_value=8), max_size=4), json_values, st.just([2**63])
)


def tensors(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """One OIP input tensor: a plausible name, datatype, shape and data, each possibly wrong."""
    return st.fixed_dictionaries(
        {},
        optional={
            "name": st.one_of(st.sampled_from(names), texts, json_values),
            "datatype": st.one_of(st.sampled_from(DATATYPES), json_values),
            "shape": shapes,
            "data": st.one_of(
                st.lists(scalars, max_size=12),
                st.lists(st.lists(numbers, max_size=6), max_size=4),
                deep,
                json_values,
            ),
            "parameters": st.one_of(st.dictionaries(texts, json_values, max_size=3), json_values),
        },
    )


def oip_bodies(names: list[str]) -> st.SearchStrategy[Any]:
    """An inference request body as JSON: mostly OIP-shaped, sometimes anything at all."""
    request = st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(texts, json_values),
            "inputs": st.one_of(st.lists(tensors(names), max_size=3), json_values),
            "outputs": st.one_of(
                st.lists(st.dictionaries(texts, json_values, max_size=3), max_size=2), json_values
            ),
            "parameters": st.one_of(st.dictionaries(texts, json_values, max_size=3), json_values),
        },
    )
    return st.one_of(request, request, request, json_values, deep)


def encoded(documents: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Documents as JSON bytes (lone surrogates escaped, as a client's encoder writes them), mixed with
    bytes that are not JSON at all and JSON cut short."""
    as_json = documents.map(lambda doc: json.dumps(doc, allow_nan=True).encode())
    cut = as_json.flatmap(lambda raw: st.integers(0, max(len(raw) - 1, 0)).map(lambda n: raw[:n]))
    return st.one_of(as_json, as_json, as_json, cut, st.binary(max_size=64), raw_deep)


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def assert_client_error_or_success(status: int, body: bytes, what: str) -> None:
    """Never a 5xx; a 4xx carries one line in `{"error": ...}`."""
    assert status < 500, f"{what}: {status} {body[:300]!r}"
    if status >= 400:
        document = json.loads(body)
        assert isinstance(document, dict) and isinstance(document.get("error"), str), (
            f"{what}: {body[:300]!r}"
        )
        assert "\n" not in document["error"], f"{what}: {document['error'][:300]!r}"


# ----------------------------------------------------------------------------------------------- gRPC
SERVER_FAULTS = frozenset({"INTERNAL", "UNKNOWN", "DATA_LOSS"})
"""gRPC status codes that are a server's fault (the 5xx of gRPC); the rest name the client's mistake."""
_proto_text = texts.filter(lambda t: t.encode("utf-8", "ignore").decode() == t)  # protobuf strings: UTF-8


def grpc_requests(model: str, names: list[str]) -> st.SearchStrategy[Any]:
    """`ModelInferRequest`s for `model` (or others) with typed or raw contents, each part possibly wrong.
    KServe's protos are imported here, not at module level (inference/deploy/kserve_schema.py says why)."""
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    contents = st.fixed_dictionaries(
        {},
        optional={
            "fp32_contents": st.lists(st.floats(width=32, allow_nan=True), max_size=12),
            "int64_contents": st.lists(st.integers(-(2**63), 2**63 - 1), max_size=12),
            "bytes_contents": st.lists(st.binary(max_size=8), max_size=4),
            "bool_contents": st.lists(st.booleans(), max_size=4),
        },
    )
    tensor = st.builds(
        lambda name, datatype, shape, data: pb.ModelInferRequest.InferInputTensor(
            name=name, datatype=datatype, shape=shape, contents=pb.InferTensorContents(**data)
        ),
        st.sampled_from(names) | _proto_text,
        st.sampled_from(DATATYPES),
        st.lists(st.integers(-2, 2**40), max_size=4),
        contents,
    )

    def build(model_name: str, version: str, tensors: list, raw: list[bytes], id_: str) -> Any:
        request = pb.ModelInferRequest(model_name=model_name, model_version=version, id=id_)
        request.inputs.extend(tensors)
        request.raw_input_contents.extend(raw)
        return request

    return st.builds(
        build,
        st.sampled_from([model, "nope", ""]),
        st.sampled_from(["", "1", "2", "9"]),
        st.lists(tensor, max_size=3),
        st.lists(st.binary(max_size=40), max_size=2),
        _proto_text,
    )


def assert_no_server_fault(code_name: str, details: str, what: str) -> None:
    assert code_name not in SERVER_FAULTS, f"{what}: {code_name}: {details}"
    assert details and "\n" not in details, f"{what}: {details!r}"
