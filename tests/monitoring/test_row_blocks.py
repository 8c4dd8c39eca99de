"""Decoded rows stay in lists until a window is taken (monitoring/payloads/rows.py): each value is checked
against its OIP datatype when the event arrives, so the one DataFrame a window builds never meets a value
it cannot hold, and the window's dtypes are what the datatypes say."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitoring.payloads.errors import EventError
from monitoring.payloads.oip import request_rows
from monitoring.payloads.rows import RowBlock, frame_of


def _one(datatype: str, data: list, shape: list[int] | None = None) -> dict:
    return {"inputs": [{"name": "x", "shape": shape or [len(data)], "datatype": datatype, "data": data}]}


@pytest.mark.parametrize(
    ("datatype", "data", "dtype", "values"),
    [
        ("FP32", [1, 2.5, float("nan")], "float32", [1.0, 2.5, math.nan]),
        ("FP64", [[1.0], [3]], "float64", [1.0, 3.0]),  # [n, 1] nested, a JSON integer in a float input
        ("INT64", [-(2**63), 2**63 - 1], "int64", [-(2**63), 2**63 - 1]),
        ("UINT64", [2**64 - 1], "uint64", [2**64 - 1]),
        ("INT8", [-128, 127], "int64", [-128, 127]),
        ("BOOL", [True, False], "bool", [True, False]),
        ("BYTES", ["pro", ""], "object", ["pro", ""]),
    ],
)
def test_each_datatype_becomes_its_column_dtype(datatype, data, dtype, values) -> None:
    shape = [len(data), 1] if data and isinstance(data[0], list) else None
    frame = request_rows(_one(datatype, data, shape)).frame()
    assert str(frame["x"].dtype) == dtype
    np.testing.assert_array_equal(frame["x"].to_numpy(), np.array(values, dtype=dtype))


@pytest.mark.parametrize(
    ("datatype", "data"),
    [
        ("FP32", ["1.5"]),  # a number in a string is not a number
        ("FP32", [True]),  # nor is a boolean
        ("FP32", [None]),
        ("FP32", [10**400]),  # no float holds it
        ("INT8", [128]),
        ("INT64", [2**63]),
        ("UINT32", [-1]),
        ("INT64", [1.5]),  # would be truncated to 1
        ("BOOL", [1]),
        ("BYTES", [3]),
        ("FP32", [1.0, [2.0]]),  # ragged nesting
    ],
)
def test_a_value_its_datatype_cannot_hold_refuses_the_event(datatype, data) -> None:
    with pytest.raises(EventError, match=f"OIP input 'x': data is not {datatype}") as caught:
        request_rows(_one(datatype, data))
    assert caught.value.reason == "bad_payload"


def test_a_tensor_input_splits_into_the_detectors_columns() -> None:
    body = _one("FP32", [1, 10, 2, 20, 3, 30], shape=[3, 2])
    block = request_rows(body, ["a", "b"])
    assert (block.columns, block.data, len(block)) == (("a", "b"), ([1.0, 2.0, 3.0], [10.0, 20.0, 30.0]), 3)


def test_blocks_slice_select_and_join_into_one_window() -> None:
    first = RowBlock(("a", "b"), ("float32", "object"), ([1.0, math.nan, 3.0], ["x", "", "z"]), 3)
    second = RowBlock(("b", "a"), ("object", "float64"), (["w"], [4.0]), 1)  # another order and dtype
    rest = first.slice(1)
    assert math.isnan(rest.data[0][0]) and rest.data[0][1:] == [3.0] and rest.data[1] == ["", "z"]
    assert len(first.slice(5)) == 0 and len(first.slice(0, 2)) == 2 and first.slice(0) is first
    assert first.records()[1] == {"a": None, "b": ""}  # NaN is None for JSON
    with pytest.raises(KeyError, match="c"):
        first.select(["a", "c"])
    window = frame_of([first.slice(1), second])
    assert list(window.columns) == ["a", "b"] and str(window["a"].dtype) == "float64"  # the common type
    assert window["b"].tolist() == ["", "z", "w"] and window["a"].tolist()[1:] == [3.0, 4.0]
