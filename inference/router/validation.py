"""An Open Inference Protocol REST request checked against the served model's metadata before Triton sees
it, so a client's mistake is the client's 400 with one line naming what and where, never a 5xx and never a
failure counted against the version (the canary reads Triton's failure counter; docs/signals.md).

Checked: `id` is a string; `inputs` is a list naming each of the model's inputs once with its datatype; a
shape of the model's rank whose fixed dimensions match; `data` (flat or nested) holding exactly the shape's
element count of the datatype's kind; numbers within the datatype's range (FP32 overflows to infinity
above 3.4e38) and not infinite; integers integral. NaN passes: it is how a raw numeric feature says
"missing" (core/raw_features.py), which the model's own preprocessing imputes, and Triton reads it. The
binary tensor extension is refused (JSON tensors only), so a client asking for binary outputs gets a clear
400 instead of a body it cannot decode. `check_grpc_request` applies the same checks to a gRPC
`ModelInferRequest` (typed contents or raw little-endian bytes).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from inference.router.oip_proto import CONTENTS_FIELD, RAW_DTYPE
from inference.router.upstream import RouterFailure

_INT_RANGES = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}
_FLOAT_LIMITS = {"FP16": 65504.0, "FP32": 3.4028234663852886e38, "FP64": math.inf, "BF16": 3.38953139e38}
_BINARY = "binary tensor extension is not supported: send and ask for JSON tensors (binary_data=False)"


@dataclass(frozen=True)
class InputSpec:
    """One input as Triton's model metadata states it (`shape` with -1 for a variable dimension)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


def input_specs(metadata: Mapping[str, Any]) -> dict[str, InputSpec]:
    """The inputs of a `GET /v2/models/<name>` answer, by name."""
    specs = {}
    for item in metadata.get("inputs") or []:
        shape = tuple(int(d) for d in item["shape"])
        specs[str(item["name"])] = InputSpec(str(item["name"]), str(item["datatype"]), shape)
    return specs


def check_request(body: Any, specs: Mapping[str, InputSpec]) -> None:
    """`RouterFailure(400, ...)` naming the first problem of an infer request body, else None."""
    if not isinstance(body, dict):
        _refuse("request body must be a JSON object with an 'inputs' list")
    if "id" in body and not isinstance(body["id"], str):
        _refuse(f"'id' must be a string, got {type(body['id']).__name__}")
    _check_binary(body)
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        _refuse("'inputs' must be a non-empty list of tensors")
    seen: set[str] = set()
    for index, tensor in enumerate(inputs):
        where = f"inputs[{index}]"
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            _refuse(f"{where}: a tensor is an object with a string 'name'")
        name = tensor["name"]
        if name in seen:
            _refuse(f"{where}: input {name!r} given twice")
        seen.add(name)
        spec = _known(specs, name, index)
        _check_tensor(tensor, spec, f"input {name!r}")
    missing = sorted(set(specs) - seen)
    if missing:
        _refuse(f"missing input(s) {', '.join(map(repr, missing))}")


def check_grpc_request(request: Any, specs: Mapping[str, InputSpec]) -> None:
    """`RouterFailure(400, ...)` naming the first problem of a `ModelInferRequest`, else None."""
    if not request.inputs:
        _refuse("'inputs' must be a non-empty list of tensors")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        _refuse(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
    seen: set[str] = set()
    for index, tensor in enumerate(request.inputs):
        where = f"input {tensor.name!r}"
        if tensor.name in seen:
            _refuse(f"inputs[{index}]: input {tensor.name!r} given twice")
        seen.add(tensor.name)
        spec = specs.get(tensor.name)
        if spec is None:
            _refuse(
                f"inputs[{index}]: unknown input {tensor.name!r}; the model takes {', '.join(sorted(specs))}"
            )
        shape = list(tensor.shape)
        _check_header(tensor.datatype, shape, spec, where)
        if raw:
            values = _raw_values(raw[index], spec.datatype, math.prod(shape), where)
        else:
            values = list(getattr(tensor.contents, CONTENTS_FIELD[spec.datatype]))
            if len(values) != math.prod(shape):
                _refuse(f"{where}: shape {shape} needs {math.prod(shape)} values, got {len(values)}")
        if spec.datatype in _FLOAT_LIMITS:
            array = np.asarray(values, dtype=np.float64)
            if _out_of_range(array, spec.datatype).any():
                _refuse(f"{where}: data holds values that are not finite {spec.datatype} values")
    missing = sorted(set(specs) - seen)
    if missing:
        _refuse(f"missing input(s) {', '.join(map(repr, missing))}")


def _raw_values(raw: bytes, datatype: str, expected: int, where: str) -> Any:
    if datatype == "BYTES":  # length-prefixed strings: Triton checks their framing itself
        return []
    itemsize = np.dtype(RAW_DTYPE[datatype]).itemsize
    if len(raw) != expected * itemsize:
        _refuse(f"{where}: shape needs {expected * itemsize} bytes of raw contents, got {len(raw)}")
    return np.frombuffer(raw, dtype=RAW_DTYPE[datatype])


def _known(specs: Mapping[str, InputSpec], name: str, index: int) -> InputSpec:
    spec = specs.get(name)
    if spec is None:
        _refuse(f"inputs[{index}]: unknown input {name!r}; the model takes {', '.join(sorted(specs))}")
    return spec


def _check_binary(body: dict[str, Any]) -> None:
    parameters = [body.get("parameters")]
    for part in ("outputs", "inputs"):  # either may be any JSON value here; the checks below say which
        tensors = body.get(part)
        parameters += (
            [t.get("parameters") for t in tensors if isinstance(t, dict)] if isinstance(tensors, list) else []
        )
    for found in parameters:
        if isinstance(found, dict) and (
            found.get("binary_data_output") or found.get("binary_data") or "binary_data_size" in found
        ):
            _refuse(_BINARY)


SMALL_TENSOR = 16  # values; below this the walk is cheaper than numpy's fast path (measured, 11 [1] inputs)


def _check_header(datatype: Any, shape: Any, spec: InputSpec, where: str) -> None:
    if datatype != spec.datatype:
        _refuse(f"{where}: datatype {datatype!r}, the model takes {spec.datatype}")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        _refuse(f"{where}: 'shape' must be a list of non-negative integers")
    if len(shape) != len(spec.shape) or any(
        want not in (-1, got) for want, got in zip(spec.shape, shape, strict=True)
    ):
        _refuse(f"{where}: shape {shape}, the model takes {list(spec.shape)} (-1: any)")


def _check_tensor(tensor: dict[str, Any], spec: InputSpec, where: str) -> None:
    _check_header(tensor.get("datatype"), tensor.get("shape"), spec, where)
    shape = tensor["shape"]
    if "data" not in tensor:
        _refuse(f"{where}: no 'data'")
    expected = math.prod(shape)
    # numpy costs about 15 us a call whatever the size: a raw feature's [1] tensor is walked in Python
    if expected > SMALL_TENSOR and _numbers_fit(tensor["data"], spec.datatype, expected):
        return
    count = 0  # the slow walk names the first problem
    for count, value in enumerate(_flat(tensor["data"], where), start=1):
        if count > expected:
            break
        _check_value(value, spec.datatype, where)
    if count != expected:
        found = "more" if count > expected else count
        _refuse(f"{where}: shape {shape} needs {expected} values, 'data' has {found}")


def _numbers_fit(data: Any, datatype: str, expected: int) -> bool:
    """The fast path for numeric tensors (numpy reads the nested lists in C): True when `data` is exactly
    `expected` numbers of `datatype`'s range (NaN included); False sends the request down the slow walk."""
    if (datatype not in _FLOAT_LIMITS and datatype not in _INT_RANGES) or not isinstance(data, list):
        return False
    try:
        array = np.asarray(data)
    except (ValueError, TypeError, OverflowError):  # ragged nesting
        return False
    # numbers only (strings, objects and ints beyond 64 bits go the slow way); a JSON `true` among numbers
    # becomes 1 here and is left to Triton, which refuses it with its own 400
    if array.dtype.kind not in "iuf" or array.size != expected or array.ndim > 32:
        return False
    array = array.astype(np.float64)
    if datatype in _FLOAT_LIMITS:
        return not _out_of_range(array, datatype).any()
    low, high = _INT_RANGES[datatype]
    exact = np.abs(array) < 2**53  # float64 holds integers exactly only below 2**53: the walk checks others
    return bool((exact & (array == np.round(array)) & (array >= low) & (array <= high)).all())


def _flat(data: Any, where: str) -> Iterator[Any]:
    if not isinstance(data, list):
        _refuse(f"{where}: 'data' must be a list")
    pending: list[Iterator[Any]] = [iter(data)]
    while pending:
        for value in pending[-1]:
            if isinstance(value, list):
                if len(pending) > 32:
                    _refuse(f"{where}: 'data' is nested too deeply")
                pending.append(iter(value))
                break
            yield value
        else:
            pending.pop()


def _check_value(value: Any, datatype: str, where: str) -> None:
    if datatype == "BYTES":
        if not isinstance(value, str):
            _refuse(f"{where}: BYTES data must be strings, got {type(value).__name__}")
    elif datatype == "BOOL":
        if not isinstance(value, bool):
            _refuse(f"{where}: BOOL data must be true or false, got {value!r:.40}")
    elif isinstance(value, bool) or not isinstance(value, int | float):
        _refuse(f"{where}: {datatype} data must be numbers, got {type(value).__name__}")
    elif datatype in _FLOAT_LIMITS:
        if math.isinf(value) or abs(value) > _FLOAT_LIMITS[datatype]:  # NaN passes (the module doc)
            _refuse(f"{where}: {value!r} is not a finite {datatype} value")
    elif datatype in _INT_RANGES:
        low, high = _INT_RANGES[datatype]
        if (isinstance(value, float) and not value.is_integer()) or not low <= value <= high:
            _refuse(f"{where}: {value!r} is not a {datatype} value")


def _out_of_range(array: np.ndarray, datatype: str) -> np.ndarray:
    """Infinite values and values beyond the datatype's range; NaN is neither (a missing raw feature)."""
    return np.isinf(array) | (np.abs(np.nan_to_num(array, nan=0.0)) > _FLOAT_LIMITS[datatype])


def _refuse(message: str) -> NoReturn:
    raise RouterFailure(400, message)
