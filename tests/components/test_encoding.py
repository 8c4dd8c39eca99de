"""The shared tabular encoder: what every tabular model and its Triton export take as input."""

import json

import numpy as np
import pandas as pd
import pytest

from components.common.encoding import FeatureEncoder


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
