"""Open Inference Protocol (KServe v2) request JSON -> a DataFrame of rows for a drift detector.

Two shapes reach the detector: raw feature columns (one named input per column, shape [n] or [n, 1]: what
every tabular model takes, core/raw_features.py), and a single tensor [n, k] whose columns are the
detector's features in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod
from typing import Any

import numpy as np
import pandas as pd

from monitoring.payloads.errors import EventError

TENSOR_INPUT = "input__0"
PROBABILITY_OUTPUT = "output__0"  # every exported model's class probabilities (components/README.md)
NUMERIC_DTYPES = {
    "BOOL": np.bool_,
    "INT8": np.int64,
    "INT16": np.int64,
    "INT32": np.int64,
    "INT64": np.int64,
    "UINT8": np.int64,
    "UINT16": np.int64,
    "UINT32": np.int64,
    "UINT64": np.uint64,
    "FP16": np.float32,
    "FP32": np.float32,
    "FP64": np.float64,
}


def payload_field(payload: Any, name: str) -> str | None:
    """A top-level string field (`model_name`, `model_version`) of a v2 payload, if present."""
    value = payload.get(name) if isinstance(payload, dict) else None
    return str(value) if value not in (None, "") else None


def row_count(payload: Any) -> int:
    """Rows in a v2 request (validated), for counting rows that have no detector to go to."""
    return _inputs(payload)[0]["shape"][0]


def request_rows(payload: Any, features: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of a v2 inference request; `features` names the columns of a single [n, k] tensor input."""
    inputs = _inputs(payload)
    if len(inputs) == 1 and len(inputs[0]["shape"]) == 2 and inputs[0]["shape"][1] != 1:
        return _tensor_rows(inputs[0], features)
    return _column_rows(inputs)


def _inputs(payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, dict):
        raise EventError("bad_payload", "OIP payload: expected a JSON object")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise EventError("bad_payload", "OIP payload: 'inputs' must be a non-empty list")
    return [_checked_input(position, item) for position, item in enumerate(inputs)]


def _checked_input(position: int, item: Any) -> dict[str, Any]:
    where = f"OIP inputs[{position}]"
    if not isinstance(item, dict):
        raise EventError("bad_payload", f"{where}: expected an object")
    name, shape, datatype = item.get("name"), item.get("shape"), item.get("datatype")
    if not isinstance(name, str) or not name:
        raise EventError("bad_payload", f"{where}: 'name' must be a non-empty string")
    where = f"OIP input {name!r}"
    if not isinstance(shape, list) or not shape or not all(_is_size(size) for size in shape):
        raise EventError("bad_payload", f"{where}: 'shape' must be a list of non-negative integers")
    if len(shape) > 2:
        raise EventError("bad_payload", f"{where}: shape {shape} has more than 2 dimensions")
    if datatype != "BYTES" and datatype not in NUMERIC_DTYPES:
        raise EventError("bad_payload", f"{where}: unknown datatype {datatype!r}")
    values = _flatten(item.get("data"), where)
    if len(values) != prod(shape):
        raise EventError(
            "bad_payload", f"{where}: shape {shape} needs {prod(shape)} values, got {len(values)}"
        )
    return {"name": name, "shape": shape, "datatype": datatype, "values": values}


def _is_size(size: Any) -> bool:
    return isinstance(size, int) and not isinstance(size, bool) and size >= 0


def _flatten(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise EventError("bad_payload", f"{where}: 'data' must be a list")
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:  # iterative: a deeply nested payload must not exhaust the recursion limit
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            flat.append(value)
        else:
            stack.pop()
    return flat


def _typed(item: dict[str, Any]) -> np.ndarray:
    values = item["values"]
    try:
        if item["datatype"] == "BYTES":
            return np.array([_text(value) for value in values], dtype=object)
        return np.array(values, dtype=NUMERIC_DTYPES[item["datatype"]])
    except (TypeError, ValueError, OverflowError):
        raise EventError(
            "bad_payload", f"OIP input {item['name']!r}: data is not {item['datatype']}"
        ) from None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(value)


def _column_rows(inputs: list[dict[str, Any]]) -> pd.DataFrame:
    lengths = {item["name"]: item["shape"][0] for item in inputs}
    if len(set(lengths.values())) > 1:
        raise EventError("bad_payload", f"OIP inputs: columns have different row counts {lengths}")
    if len(lengths) != len(inputs):
        raise EventError("bad_payload", "OIP inputs: duplicate input names")
    return pd.DataFrame({item["name"]: _typed(item) for item in inputs})


def _tensor_rows(item: dict[str, Any], features: Sequence[str] | None) -> pd.DataFrame:
    rows, width = item["shape"]
    if not features:
        raise EventError(
            "bad_payload", f"OIP input {item['name']!r}: a [n, k] tensor needs the detector's features"
        )
    if width != len(features):
        raise EventError(
            "bad_payload",
            f"OIP input {item['name']!r}: {width} columns, the detector expects {len(features)}",
        )
    return pd.DataFrame(_typed(item).reshape(rows, width), columns=list(features))


def response_probabilities(payload: Any, output: str = PROBABILITY_OUTPUT) -> np.ndarray:
    """Class probabilities per row from a v2 response: the `output` tensor (else the only output), shape
    [n, k], or [n] / [n, 1] read as P(class 1) of a binary model."""
    outputs = payload.get("outputs") if isinstance(payload, dict) else None
    if not isinstance(outputs, list) or not outputs:
        raise EventError("bad_payload", "OIP response: 'outputs' must be a non-empty list")
    checked = [_checked_input(position, item) for position, item in enumerate(outputs)]
    chosen = [item for item in checked if item["name"] == output] or (checked if len(checked) == 1 else [])
    if not chosen:
        raise EventError("bad_payload", f"OIP response: no output {output!r} among {len(checked)} outputs")
    item = chosen[0]
    if item["datatype"] == "BYTES":
        raise EventError("bad_payload", f"OIP output {item['name']!r}: probabilities must be numeric")
    values = _typed(item).astype(np.float64)
    shape = item["shape"]
    if len(shape) == 1 or shape[1] == 1:
        positive = values.reshape(shape[0])
        proba = np.column_stack([1.0 - positive, positive])
    else:
        proba = values.reshape(shape[0], shape[1])
    return checked_probabilities(proba, item["name"])


# FP32 softmax outputs sum to 1 within ~1e-6; a looser bound still refuses [0, 0] or [0.9, 0.9].
PROBABILITY_SUM_TOLERANCE = 1e-3


def checked_probabilities(proba: np.ndarray, output: str) -> np.ndarray:
    """`proba` if every row is a probability distribution (finite, in [0, 1], summing to 1); otherwise
    the quality tracker could not score it (NaN or a zero row breaks log loss and ROC AUC for the whole
    window, and would again after a restart), so it is refused with the first bad row named."""
    finite = np.isfinite(proba).all(axis=1)
    in_range = ((proba >= 0.0) & (proba <= 1.0)).all(axis=1)
    sums = np.abs(proba.sum(axis=1) - 1.0) <= PROBABILITY_SUM_TOLERANCE
    bad = np.flatnonzero(~(finite & in_range & sums))
    if len(bad):
        row = int(bad[0])
        shown = [float(value) for value in proba[row][:4]]
        raise EventError(
            "bad_payload",
            f"OIP output {output!r} row {row}: not class probabilities (finite, in [0, 1], summing to 1): "
            f"{shown}{' ...' if proba.shape[1] > 4 else ''} ({len(bad)} bad rows of {len(proba)})",
        )
    return proba
