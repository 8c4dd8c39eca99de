"""Open Inference Protocol (KServe v2) request JSON -> the rows a drift detector reads (a `RowBlock`).

Two shapes reach the detector: raw feature columns (one named input per column, shape [n] or [n, 1]: what
every tabular model takes, core/raw_features.py), and a single tensor [n, k] whose columns are the
detector's features in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from monitoring.payloads.errors import EventError
from monitoring.payloads.rows import RowBlock

TENSOR_INPUT = "input__0"
PROBABILITY_OUTPUT = "output__0"  # every exported model's class probabilities (components/README.md)
# OIP datatype -> (the Python type its JSON values have, the column's dtype in `RowBlock`, integer range)
_INT = {f"INT{b}": (-(1 << (b - 1)), (1 << (b - 1)) - 1) for b in (8, 16, 32, 64)}
_UINT = {f"UINT{b}": (0, (1 << b) - 1) for b in (8, 16, 32, 64)}
DATATYPES: dict[str, tuple[type, str, tuple[int, int] | None]] = {
    "BOOL": (bool, "bool", None),
    **{name: (int, "int64", bounds) for name, bounds in _INT.items()},
    **{name: (int, "int64" if name != "UINT64" else "uint64", bounds) for name, bounds in _UINT.items()},
    "FP16": (float, "float32", None),
    "FP32": (float, "float32", None),
    "FP64": (float, "float64", None),
    "BYTES": (str, "object", None),
}


def payload_field(payload: Any, name: str) -> str | None:
    """A top-level string field (`model_name`, `model_version`) of a v2 payload, if present."""
    value = payload.get(name) if isinstance(payload, dict) else None
    return str(value) if value not in (None, "") else None


def row_count(payload: Any) -> int:
    """Rows in a v2 request (validated), for counting rows that have no detector to go to."""
    return _inputs(payload)[0]["shape"][0]


def request_rows(payload: Any, features: Sequence[str] | None = None) -> RowBlock:
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
    # Runs for every input of every logged event: the checks short-circuit on the common shape, and the
    # error text is built only when one fails.
    if type(item) is not dict:
        raise EventError("bad_payload", f"OIP inputs[{position}]: expected an object")
    name, shape, datatype, data = item.get("name"), item.get("shape"), item.get("datatype"), item.get("data")
    if type(name) is not str or not name:
        raise EventError("bad_payload", f"OIP inputs[{position}]: 'name' must be a non-empty string")
    if type(shape) is not list or not shape or not all(type(size) is int and size >= 0 for size in shape):
        raise EventError(
            "bad_payload", f"OIP input {name!r}: 'shape' must be a list of non-negative integers"
        )
    if len(shape) > 2:
        raise EventError("bad_payload", f"OIP input {name!r}: shape {shape} has more than 2 dimensions")
    if datatype not in DATATYPES:
        raise EventError("bad_payload", f"OIP input {name!r}: unknown datatype {datatype!r}")
    if type(data) is not list:
        raise EventError("bad_payload", f"OIP input {name!r}: 'data' must be a list")
    count = shape[0] if len(shape) == 1 else shape[0] * shape[1]
    # Flat already (a nested value left in it is refused by its datatype's check in `_values`)?
    values = data if len(data) == count and (not data or type(data[0]) is not list) else _flatten(data)
    if len(values) != count:
        raise EventError(
            "bad_payload", f"OIP input {name!r}: shape {shape} needs {count} values, got {len(values)}"
        )
    return {"name": name, "shape": shape, "datatype": datatype, "values": values}


def _flatten(data: list[Any]) -> list[Any]:
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


def _values(item: dict[str, Any]) -> list[Any]:
    """The input's values, each checked against its datatype (JSON integers in a float input become
    floats); one bad value refuses the event, so a window never meets a value it cannot convert."""
    values = item["values"]
    kind, _, bounds = DATATYPES[item["datatype"]]
    if all(type(value) is kind for value in values):  # `type(...) is`: a bool is not an int here
        if bounds is None or all(bounds[0] <= value <= bounds[1] for value in values):
            return values
    elif kind is float and all(type(value) in (int, float) for value in values):
        try:
            return [float(value) for value in values]
        except OverflowError:
            pass
    raise EventError("bad_payload", f"OIP input {item['name']!r}: data is not {item['datatype']}")


def _column_rows(inputs: list[dict[str, Any]]) -> RowBlock:
    lengths = {item["name"]: item["shape"][0] for item in inputs}
    if len(set(lengths.values())) > 1:
        raise EventError("bad_payload", f"OIP inputs: columns have different row counts {lengths}")
    if len(lengths) != len(inputs):
        raise EventError("bad_payload", "OIP inputs: duplicate input names")
    return RowBlock(
        tuple(item["name"] for item in inputs),
        tuple(DATATYPES[item["datatype"]][1] for item in inputs),
        tuple(_values(item) for item in inputs),
        inputs[0]["shape"][0],
    )


def _tensor_rows(item: dict[str, Any], features: Sequence[str] | None) -> RowBlock:
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
    values = _values(item)  # row-major: column j is every width-th value from j
    dtype = DATATYPES[item["datatype"]][1]
    return RowBlock(tuple(features), (dtype,) * width, tuple(values[j::width] for j in range(width)), rows)


def response_probabilities(payload: Any, output: str = PROBABILITY_OUTPUT) -> np.ndarray:
    """Class probabilities per row from a v2 response: the `output` tensor (else the only output), shape
    [n, k], or [n] / [n, 1] read as P(class 1) of a binary model."""
    item, values = _output_values(payload, output)
    shape = item["shape"]
    if len(shape) == 1 or shape[1] == 1:
        positive = values.reshape(shape[0])
        proba = np.column_stack([1.0 - positive, positive])
    else:
        proba = values.reshape(shape[0], shape[1])
    return checked_probabilities(proba, item["name"])


def response_scores(payload: Any, output: str = PROBABILITY_OUTPUT) -> np.ndarray:
    """A ranker's scores [n, 1] from a v2 response (the `output` tensor, else the only output, [n] or
    [n, 1]): any finite numbers, only their order within a request means something."""
    item, values = _output_values(payload, output)
    shape = item["shape"]
    if not (len(shape) == 1 or shape[1] == 1):
        raise EventError("bad_payload", f"OIP output {item['name']!r}: a ranker's scores are [n] or [n, 1]")
    if not np.isfinite(values).all():
        raise EventError("bad_payload", f"OIP output {item['name']!r}: scores must be finite")
    return values.reshape(shape[0], 1)


def _output_values(payload: Any, output: str) -> tuple[dict[str, Any], np.ndarray]:
    """The checked output tensor to read (`output`, else the only one) and its values as float64."""
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
    # As their datatype holds them: an FP32 0.8 is 0.800000011..., on the histogram's bounds that counts.
    return item, np.array(_values(item), dtype=DATATYPES[item["datatype"]][1]).astype(np.float64)


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
