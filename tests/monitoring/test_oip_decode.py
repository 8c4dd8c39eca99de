"""The payload logger records the model's encoded tensor; the drift service turns it back into the raw
features its detector was fitted on, with the model version's own encoder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.encoding import FeatureEncoder
from monitoring.payloads.oip import decode_model_tensor, request_rows

RAW = pd.DataFrame(
    {
        "sessions_7d": [1, 4, 9, 2, 7],
        "duration_s": [30.5, 120.0, 3.25, 60.0, 900.0],
        "plan_tier": ["free", "pro", "team", "pro", "free"],
        "region": ["eu", "us", "us", "apac", "eu"],
    }
)
COLUMNS = list(RAW.columns)


@pytest.mark.parametrize(
    ("standardize", "scale_in_model"),
    [(False, False), (True, False), (True, True)],
    ids=["unscaled", "scaled-on-the-wire", "scaled-in-the-model"],
)
def test_decoding_inverts_the_encoder(standardize, scale_in_model):
    encoder = FeatureEncoder.fit(RAW, COLUMNS, standardize=standardize, scale_in_model=scale_in_model)
    decoded = decode_model_tensor(encoder.transform(RAW), encoder)
    pd.testing.assert_frame_equal(decoded[COLUMNS], RAW.astype({"sessions_7d": "float64"}), atol=1e-4)


def test_an_unseen_category_decodes_as_missing():
    encoder = FeatureEncoder.fit(RAW, COLUMNS)
    unseen = RAW.head(1).assign(plan_tier="enterprise")
    assert decode_model_tensor(encoder.transform(unseen), encoder)["plan_tier"].tolist() == [None]


def test_a_logged_model_tensor_becomes_the_detectors_rows():
    encoder = FeatureEncoder.fit(RAW, COLUMNS, standardize=True)
    matrix = encoder.transform(RAW)
    payload = {
        "inputs": [
            {
                "name": "input__0",
                "datatype": "FP32",
                "shape": list(matrix.shape),
                "data": matrix.astype(np.float32).ravel().tolist(),
            }
        ]
    }
    rows = request_rows(payload, ["sessions_7d", "duration_s", "plan_tier"], encoder)
    assert rows["plan_tier"].tolist() == RAW["plan_tier"].tolist()
    assert np.allclose(rows["duration_s"], RAW["duration_s"], atol=1e-3)
