"""OIP gRPC messages -> the OIP REST JSON of the same request or response (for payload CloudEvents).

The drift service reads request events as OIP JSON (`inputs[].data`), whatever protocol the client spoke;
gRPC clients send tensors either typed (`contents.fp32_contents`, ...) or as raw little-endian bytes in
`raw_input_contents` / `raw_output_contents` (tritonclient's default). Runs in the logger's thread, never on
the request path.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

# OIP datatype -> the InferTensorContents field that carries it typed, and its raw little-endian dtype
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP16": "fp32_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
RAW_DTYPE = {
    "BOOL": "?",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
_PARAMETER_FIELDS = ("bool_param", "int64_param", "string_param", "double_param", "uint64_param")


def request_json(request: Any) -> bytes:
    """The OIP REST body of a `ModelInferRequest` (id, parameters, inputs with data, requested outputs)."""
    body: dict[str, Any] = {"id": request.id} if request.id else {}
    body.update(_parameters(request.parameters))
    body["inputs"] = _tensors(request.inputs, request.raw_input_contents)
    if request.outputs:
        body["outputs"] = [{"name": output.name} for output in request.outputs]
    return json.dumps(body).encode()


def response_json(response: Any) -> bytes:
    """The OIP REST body of a `ModelInferResponse`."""
    body: dict[str, Any] = {"model_name": response.model_name, "model_version": response.model_version}
    if response.id:
        body["id"] = response.id
    body.update(_parameters(response.parameters))
    body["outputs"] = _tensors(response.outputs, response.raw_output_contents)
    return json.dumps(body).encode()


def _tensors(tensors: Sequence[Any], raw: Sequence[bytes]) -> list[dict[str, Any]]:
    # OIP: raw contents, when used, hold one entry per tensor in order and no tensor has typed contents
    return [
        {
            "name": tensor.name,
            "shape": list(tensor.shape),
            "datatype": tensor.datatype,
            **_parameters(tensor.parameters),
            "data": _raw_data(tensor.datatype, raw[i]) if i < len(raw) else _typed_data(tensor),
        }
        for i, tensor in enumerate(tensors)
    ]


def _typed_data(tensor: Any) -> list[Any]:
    field = CONTENTS_FIELD.get(tensor.datatype)
    if field is None:
        return []
    values = list(getattr(tensor.contents, field))
    return [_text(v) for v in values] if tensor.datatype == "BYTES" else values


def _raw_data(datatype: str, raw: bytes) -> list[Any]:
    if datatype == "BYTES":
        return [_text(item) for item in _length_prefixed(raw)]
    if datatype == "BF16":  # no numpy dtype: the upper half of a float32
        widened = np.frombuffer(raw, dtype="<u2").astype("<u4") << 16
        return widened.view("<f4").tolist()
    dtype = RAW_DTYPE.get(datatype)
    return np.frombuffer(raw, dtype=dtype).tolist() if dtype else []


def _length_prefixed(raw: bytes) -> list[bytes]:
    """Triton's raw BYTES layout: each element is a 4-byte little-endian length and then its bytes."""
    items, offset = [], 0
    while offset + 4 <= len(raw):
        (size,) = struct.unpack_from("<I", raw, offset)
        items.append(raw[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return items


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def _parameters(parameters: Any) -> dict[str, Any]:
    if not parameters:
        return {}
    return {"parameters": {key: _parameter(value) for key, value in parameters.items()}}


def _parameter(value: Any) -> Any:
    field = value.WhichOneof("parameter_choice")
    return getattr(value, field) if field in _PARAMETER_FIELDS else None
