"""Open Inference Protocol tensors in and out of the transformer.

Client request: one 1-D tensor per entity key (`session_id`, `customer_id`: INT64, any integer type, or
BYTES holding the decimal id), `[n]` or `[n, 1]`, plus one per request-time field the feature service's
on-demand views take (none for this repository's services). Row i of every tensor is one prediction.

Predictor request: the model's raw-feature inputs, one named tensor `[n, 1]` per feature (FP32 numerics,
NaN when missing; BYTES categories, "" when missing: core/raw_features.py). Client response:
`probabilities` FP32 `[n, n_classes]` (columns in the spec's classes order) and `predicted_class` BYTES
`[n]` (the most probable class).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from kserve import InferInput, InferOutput, InferRequest, InferResponse
from kserve.errors import InvalidInput

from core.raw_features import datatype_of

INTEGER_TYPES = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_DECIMAL = re.compile(r"-?[0-9]{1,20}", re.ASCII)  # 20 digits: longer cannot fit INT64 (checked next)
PROBABILITIES = "probabilities"
PREDICTED_CLASS = "predicted_class"


def entity_rows(
    request: InferRequest, entity_keys: Sequence[str], request_fields: Sequence[str], max_rows: int
) -> list[dict[str, Any]]:
    """The request's rows as Feast entity rows (`{key: id, ..., field: value}`); InvalidInput otherwise."""
    tensors = named_inputs(request, [*entity_keys, *request_fields])
    columns = {key: entity_ids(tensors[key]) for key in entity_keys}
    columns |= {field: _values(tensors[field]) for field in request_fields}
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise InvalidInput(f"every input needs the same number of rows (got {lengths})")
    rows = next(iter(lengths.values()))
    if not 1 <= rows <= max_rows:
        raise InvalidInput(f"a request holds 1 to {max_rows} rows (got {rows})")
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def named_inputs(request: InferRequest, expected: Sequence[str], what: str = "") -> dict[str, InferInput]:
    """The request's tensors by name when they are exactly `expected` (`what` says what they are in the
    error); InvalidInput naming the missing and unknown ones otherwise."""
    tensors = {tensor.name: tensor for tensor in request.inputs}
    missing = [name for name in expected if name not in tensors]
    unknown = sorted(set(tensors) - set(expected))
    if missing or unknown:
        raise InvalidInput(
            f"inputs must be exactly {', '.join(expected)}{what}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(unknown)}" if unknown else "")
        )
    return tensors


def entity_ids(tensor: InferInput) -> list[int]:
    """The ids as Python ints within INT64, the entity type of the feature views (Feast `Int64`)."""
    if tensor.datatype == "BYTES":
        texts = [_text(value) for value in _values(tensor)]
        # ASCII digits only: str.isdigit() accepts '²' and int() then fails; a sign at most once
        bad = [text for text in texts if not _DECIMAL.fullmatch(text)]
        if bad:
            raise InvalidInput(f"input {tensor.name}: BYTES ids must be decimal integers (got {bad[0]!r})")
        ids = [int(text) for text in texts]
    elif tensor.datatype in INTEGER_TYPES:
        # JSON data is checked before numpy casts it: 20701.7 must not become session 20701
        if isinstance(tensor.data, list):
            _check_ids(tensor.name, tensor.datatype, _flat(tensor.data))
        ids = [int(value) for value in _values(tensor)]
    else:
        raise InvalidInput(
            f"input {tensor.name}: datatype must be INT64 (or another integer type, or BYTES), "
            f"got {tensor.datatype}"
        )
    _check_ids(tensor.name, tensor.datatype, ids)
    return ids


def _check_ids(name: str, datatype: str, values: list[Any]) -> None:
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int)]
    if bad:
        raise InvalidInput(f"input {name}: {datatype} ids must be integers (got {bad[0]!r})")
    outside = [v for v in values if not INT64_MIN <= v <= INT64_MAX]
    if outside:
        raise InvalidInput(f"input {name}: ids must fit INT64 (got {outside[0]})")


def _flat(data: list[Any]) -> list[Any]:
    return [v for item in data for v in (_flat(item) if isinstance(item, list) else [item])]


def _values(tensor: InferInput) -> list[Any]:
    shape = [int(dim) for dim in tensor.shape]
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise InvalidInput(f"input {tensor.name}: shape must be [n] or [n, 1] (got {shape})")
    try:
        array = np.asarray(tensor.as_numpy())
    except (ValueError, TypeError, OverflowError) as error:
        raise InvalidInput(
            f"input {tensor.name}: data does not fit shape {shape} and {tensor.datatype}: {error}"
        ) from None
    if array.size != shape[0]:
        raise InvalidInput(f"input {tensor.name}: shape {shape} needs {shape[0]} values, got {array.size}")
    return [_text(value) if isinstance(value, bytes) else value for value in array.reshape(-1).tolist()]


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def triton_request(model_name: str, arrays: Mapping[str, np.ndarray], request_id: str | None) -> InferRequest:
    """The predictor's request: the raw features as the model's named inputs, as JSON.

    Not the binary tensor extension: KServe's logger agent on the predictor records the request body as
    it is (kserve v0.20.0 pkg/logger/handler.go reads the body and queues its bytes), and the drift
    service reads OIP JSON; the local router, which plays the predictor's Knative split, takes JSON
    tensors only. At most `serving.max_batch_size` rows of a few dozen values: the JSON costs little."""
    tensors = []
    for name, values in arrays.items():
        tensor = InferInput(name, list(values.shape), datatype_of(values))
        tensor.set_data_from_numpy(values, binary_data=False)
        tensors.append(tensor)
    return InferRequest(model_name=model_name, infer_inputs=tensors, request_id=request_id)


def predictor_output(predictor_response: InferResponse, output_name: str) -> np.ndarray:
    """The predictor's output tensor `output_name` as FP32 (RuntimeError when it lacks it: a server fault)."""
    outputs = {output.name: output for output in predictor_response.outputs}
    if output_name not in outputs:
        raise RuntimeError(f"predictor answered without {output_name!r} (got {', '.join(outputs)})")
    return np.asarray(outputs[output_name].as_numpy(), dtype=np.float32)


def prediction_response(
    predictor_response: InferResponse,
    output_name: str,
    classes: Sequence[str],
    model_name: str,
    model_version: str | None,
) -> InferResponse:
    """The client's response: probabilities per class and the predicted class, under the public name."""
    probabilities = predictor_output(predictor_response, output_name)
    probabilities = probabilities.reshape(len(probabilities), len(classes))
    predicted = np.array([classes[i] for i in probabilities.argmax(axis=1)], dtype=np.object_)
    result = [
        InferOutput(PROBABILITIES, list(probabilities.shape), "FP32"),
        InferOutput(PREDICTED_CLASS, [len(predicted)], "BYTES"),
    ]
    result[0].set_data_from_numpy(probabilities, binary_data=False)
    result[1].set_data_from_numpy(predicted, binary_data=False)
    return InferResponse(
        response_id=predictor_response.id,
        model_name=model_name,
        model_version=model_version,
        infer_outputs=result,
    )
