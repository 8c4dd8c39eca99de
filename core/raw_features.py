"""The raw-feature tensors a self-contained tabular model takes: one named input per feature.

Every exported tabular model (ONNX graph or Triton ensemble) applies its own version's fitted preprocessing
(imputation, category mapping, scaling: `core.encoding_onnx`), so what travels to it is the feature values
themselves, the same for every version that reads the same features:

- a numeric feature: `FP32 [1]` per row; NaN marks a missing value (the model imputes its training median);
- a categorical feature: `BYTES [1]` per row, the category as text; the empty string marks a missing value
  (like a category the version never saw, it maps to no one-hot column).

The column order is the encoder's (`FeatureEncoder.input_columns`). Whether a feature is numeric is decided
from its values' type, the rule `FeatureEncoder.fit` applies to the training frame (`is_numeric_column`), so
the transformer, which sees Feast's typed values and no version's files, sends what every version expects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

NUMERIC_DATATYPE = "FP32"
CATEGORICAL_DATATYPE = "BYTES"
MISSING_CATEGORY = ""
"""A categorical value that is absent; never a category (`FeatureEncoder.fit` leaves it out)."""


def is_numeric_column(column: pd.Series) -> bool:
    """Numeric (not boolean) columns are numeric features; everything else is categorical."""
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def raw_inputs(numeric: Sequence[str], categorical: Sequence[str]) -> list[dict[str, Any]]:
    """The model's Triton inputs (`BundleInfo.triton_inputs`): numeric features, then categorical ones."""
    return [
        *({"name": name, "datatype": NUMERIC_DATATYPE, "dims": [1]} for name in numeric),
        *({"name": name, "datatype": CATEGORICAL_DATATYPE, "dims": [1]} for name in categorical),
    ]


def takes_raw_features(triton_inputs: Sequence[Mapping[str, Any]], inputs: Sequence[str]) -> bool:
    """Whether a bundle's served model takes its raw features (every tabular bundle since self-contained
    versions) rather than an encoded tensor (older tabular bundles; text models' token ids)."""
    return sorted(str(t["name"]) for t in triton_inputs) == sorted(inputs) and all(
        list(t["dims"]) == [1] for t in triton_inputs
    )


def raw_arrays(frame: pd.DataFrame, inputs: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """`frame`'s columns as the model's named inputs (each `[rows, 1]`), in `inputs` order."""
    missing = [str(tensor["name"]) for tensor in inputs if tensor["name"] not in frame.columns]
    if missing:
        raise ValueError(f"input rows lack column(s): {', '.join(missing)}")
    return {str(tensor["name"]): _array(frame[tensor["name"]], tensor["datatype"]) for tensor in inputs}


def datatype_of(values: np.ndarray) -> str:
    """The OIP datatype of a `raw_arrays` tensor: text (an object array) is BYTES, numbers FP32."""
    return CATEGORICAL_DATATYPE if values.dtype == object else NUMERIC_DATATYPE


def oip_inputs(arrays: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """`raw_arrays` as the `inputs` of an OIP JSON request (NaN stays NaN: write it with `json`)."""
    return [
        {
            "name": name,
            "shape": list(values.shape),
            "datatype": datatype_of(values),
            "data": values.ravel().tolist(),
        }
        for name, values in arrays.items()
    ]


def _array(column: pd.Series, datatype: str) -> np.ndarray:
    if datatype == NUMERIC_DATATYPE:
        values = pd.to_numeric(column, errors="coerce").astype("float64").to_numpy(dtype=np.float64)
        return values.astype(np.float32).reshape(-1, 1)
    if datatype == CATEGORICAL_DATATYPE:
        texts = [MISSING_CATEGORY if _absent(value) else str(value) for value in column.tolist()]
        return np.array(texts, dtype=object).reshape(-1, 1)
    raise ValueError(f"input {column.name!r}: datatype {datatype!r} is not a raw feature type")


def _absent(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))
