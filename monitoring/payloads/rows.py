"""Decoded request rows, column by column in plain Python lists: what one logged event adds to a detector's
buffer, its journal line and its quality record.

An event is one row or a few; building a pandas DataFrame for each cost about 0.5 ms, most of the drift
service's time per event (profiled, docs/measured.md). Rows stay in lists until a detector window is taken,
and `frame_of` builds one DataFrame per window of hundreds of rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd

DTYPES = ("bool", "int64", "uint64", "float32", "float64", "object")
"""The column dtypes a block may name: what OIP datatypes decode to (`monitoring/payloads/oip.py`)."""


@dataclass(frozen=True)
class RowBlock:
    columns: tuple[str, ...]
    dtypes: tuple[str, ...]  # one of DTYPES per column
    data: tuple[list[Any], ...]  # one list of values per column, all of `size` values
    size: int

    def __len__(self) -> int:
        return self.size

    def select(self, names: Sequence[str]) -> RowBlock:
        """The named columns in that order; KeyError naming the first one missing."""
        if tuple(names) == self.columns:
            return self
        position = {name: index for index, name in enumerate(self.columns)}
        picked = [position[name] for name in names]
        return RowBlock(
            tuple(names),
            tuple(self.dtypes[i] for i in picked),
            tuple(self.data[i] for i in picked),
            self.size,
        )

    def slice(self, start: int, stop: int | None = None) -> RowBlock:
        stop = self.size if stop is None else max(min(stop, self.size), 0)
        start = min(max(start, 0), stop)
        if start == 0 and stop == self.size:
            return self
        return RowBlock(self.columns, self.dtypes, tuple(c[start:stop] for c in self.data), stop - start)

    def records(self) -> list[dict[str, Any]]:
        """One {column: value} per row, NaN as None (JSON has no NaN)."""
        # `value != value` is NaN's test, inline: this runs for every logged row.
        columns = [[None if value != value else value for value in column] for column in self.data]
        return [dict(zip(self.columns, values, strict=True)) for values in zip(*columns, strict=True)]

    def frame(self) -> pd.DataFrame:
        return frame_of([self])


def concat(blocks: Sequence[RowBlock]) -> list[RowBlock]:
    """The blocks' rows in order as few blocks as their dtypes allow: consecutive blocks of the same
    columns and dtypes become one (a payload-log object's events of one detector, appended in one go)."""
    runs: list[list[RowBlock]] = []
    for block in blocks:
        if runs and (runs[-1][0].columns, runs[-1][0].dtypes) == (block.columns, block.dtypes):
            runs[-1].append(block)
        else:
            runs.append([block])
    return [_joined(run) for run in runs]


def _joined(run: list[RowBlock]) -> RowBlock:
    if len(run) == 1:
        return run[0]
    first = run[0]
    data = tuple(list(chain.from_iterable(block.data[i] for block in run)) for i in range(len(first.columns)))
    return RowBlock(first.columns, first.dtypes, data, sum(block.size for block in run))


def frame_of(blocks: Sequence[RowBlock]) -> pd.DataFrame:
    """One DataFrame of the blocks' rows in order (the first block's columns); a column whose blocks name
    different dtypes (e.g. one client sent FP32, another FP64) gets numpy's common type of them."""
    columns = blocks[0].columns
    blocks = [block.select(columns) for block in blocks]
    arrays = {}
    for index, name in enumerate(columns):
        dtypes = {block.dtypes[index] for block in blocks}
        dtype = dtypes.pop() if len(dtypes) == 1 else np.result_type(*sorted(dtypes))
        values = list(chain.from_iterable(block.data[index] for block in blocks))
        arrays[name] = np.array(values, dtype=dtype)
    return pd.DataFrame(arrays, columns=list(columns))
