"""The shared tabular encoder: what every tabular model and its Triton export take as input."""

import json

import numpy as np
import pandas as pd
import pytest

from core.encoding import FeatureEncoder


@pytest.fixture
def frame():
    return pd.DataFrame(
        {"b_count": [1, 2, None, 4], "a_rate": [0.5, 0.1, 0.2, None], "tier": ["pro", "free", None, "pro"]}
    )


def test_columns_in_order_with_medians_and_one_hot(frame):
    encoder = FeatureEncoder.fit(frame, ["b_count", "a_rate", "tier"])
    assert encoder.output_names == ["b_count", "a_rate", "tier=free", "tier=pro"]
    matrix = encoder.transform(frame)
    assert matrix.dtype == np.float32
    np.testing.assert_allclose(matrix[2], [2.0, 0.2, 0.0, 0.0])  # median fill, missing category -> zeros
    np.testing.assert_allclose(matrix[3], [4.0, 0.2, 0.0, 1.0])


def test_standardized_encoder_survives_a_json_round_trip_with_reordered_keys(frame):
    encoder = FeatureEncoder.fit(frame, ["b_count", "a_rate", "tier"], standardize=True)
    data = json.loads(json.dumps(encoder.to_dict(), sort_keys=True))
    reloaded = FeatureEncoder.from_dict(data)
    np.testing.assert_array_equal(reloaded.transform(frame), encoder.transform(frame))
    assert np.allclose(encoder.transform(frame)[:, 0].mean(), 0.0, atol=1e-6)


def test_unseen_category_encodes_as_zeros_and_missing_column_is_named(frame):
    encoder = FeatureEncoder.fit(frame, ["b_count", "a_rate", "tier"])
    unseen = frame.assign(tier=["enterprise"] * 4)
    assert encoder.transform(unseen)[:, 2:].sum() == 0
    with pytest.raises(ValueError, match="missing input columns: tier"):
        encoder.transform(frame.drop(columns=["tier"]))


COLUMNS = ["b_count", "a_rate", "tier"]


def test_model_side_scaling_keeps_fitted_statistics_off_the_wire(frame):
    complete = frame.fillna({"b_count": 3, "a_rate": 0.3, "tier": "free"})
    shifted = complete.assign(b_count=complete["b_count"] * 3 + 10)  # a later fit on drifted data
    stable = FeatureEncoder.fit(complete, COLUMNS, standardize=True, scale_in_model=True)
    canary = FeatureEncoder.fit(shifted, COLUMNS, standardize=True, scale_in_model=True)
    # The stable version's encoder (the transformer's) sends the canary the tensor its own would send ...
    np.testing.assert_array_equal(stable.transform(complete), canary.transform(complete))
    np.testing.assert_allclose(stable.transform(complete)[:, 0], complete["b_count"])
    # ... and each model scales it with its own fit.
    scaled = canary.scale(stable.transform(shifted))
    np.testing.assert_allclose(scaled[:, 0].mean(), 0.0, atol=1e-6)
    np.testing.assert_allclose(scaled[:, 2:], stable.transform(shifted)[:, 2:])  # one-hot untouched
    assert not np.allclose(stable.scale(stable.transform(shifted)), scaled)


def test_wire_scaled_encoders_from_older_bundles_still_standardize_in_transform(frame):
    legacy = FeatureEncoder.fit(frame, COLUMNS, standardize=True).to_dict()
    legacy.pop("scale_in_model")  # encoder.json written before model-side scaling
    encoder = FeatureEncoder.from_dict(legacy)
    assert not encoder.scale_in_model
    matrix = encoder.transform(frame)
    np.testing.assert_allclose(matrix[:, 0].mean(), 0.0, atol=1e-6)
    np.testing.assert_array_equal(encoder.scale(matrix), matrix)
