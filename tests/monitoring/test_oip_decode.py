"""The payload logger records what the served model takes: its raw features, one named tensor each, as the
transformer writes them. The drift service reads them as the detector's rows with no model encoder: missing
values (NaN, the empty category) score as the training rows' missing values do."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from core.encoding import FeatureEncoder
from core.raw_features import raw_arrays
from inference.transformer.tensors import triton_request
from monitoring.detectors.tabular import TabularEncoding
from monitoring.payloads.oip import request_rows

RAW = pd.DataFrame(
    {
        "sessions_7d": [1, 4, 9, 2, 7],
        "duration_s": [30.5, None, 3.25, 60.0, 900.0],
        "plan_tier": ["free", "pro", None, "pro", "enterprise"],  # enterprise: never seen in training
        "region": ["eu", "us", "us", "apac", "eu"],
    }
)
COLUMNS = list(RAW.columns)


def _logged_body(frame: pd.DataFrame) -> dict:
    """The predictor request body as the KServe transformer sends it (and the logger records it)."""
    encoder = FeatureEncoder.fit(RAW.head(4), COLUMNS)
    body, _ = triton_request("m", raw_arrays(frame, encoder.raw_inputs), "r-1").to_rest()
    return json.loads(json.dumps(body))  # NaN travels as JSON NaN (inference/transformer/model.py)


def test_the_logged_raw_features_are_the_detectors_rows() -> None:
    rows = request_rows(_logged_body(RAW)).frame()
    assert sorted(rows.columns) == sorted(COLUMNS)
    np.testing.assert_allclose(rows["duration_s"], RAW["duration_s"], equal_nan=True)
    assert rows["plan_tier"].tolist() == ["free", "pro", "", "pro", "enterprise"]  # "" is missing


def test_missing_and_unseen_values_score_as_in_training() -> None:
    detector = TabularEncoding.from_dict(FeatureEncoder.fit(RAW.head(4), COLUMNS).to_dict())
    logged = request_rows(_logged_body(RAW)).frame()
    np.testing.assert_array_equal(detector.transform(logged), detector.transform(RAW))
