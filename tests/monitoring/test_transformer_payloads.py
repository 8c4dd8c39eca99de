"""What the KServe transformer sends its predictor is what KServe's logger agent on the predictor records
(kserve v0.20.0 pkg/logger/handler.go reads the request body and queues its bytes as they are) and so what
the drift service must read on a cluster: OIP JSON with the model's raw features, one named tensor each (not
the binary tensor extension, which the drift service, like the local router, refuses), scored with no model
encoder."""

from __future__ import annotations

import json

import numpy as np

from inference.transformer.tensors import triton_request
from tests.helpers.drift_doubles import FEATURES, MODEL
from tests.helpers.drift_events import binary_headers, make_service
from tests.helpers.metrics_text import sample_value


def test_the_transformers_predictor_request_is_json_the_drift_service_scores() -> None:
    columns = {  # the detector's 4 features, as the transformer sends them ([rows, 1] each)
        "plan_tier": np.array([["free"], ["pro"]], dtype=object),
        "company_size": np.array([[10.0], [10.0]], dtype=np.float32),
        "lifetime_value": np.array([[100.0], [100.0]], dtype=np.float32),
        "sessions_7d": np.array([[3.0], [7.0]], dtype=np.float32),
    }
    assert sorted(columns) == sorted(FEATURES)
    body, json_length = triton_request(MODEL, columns, "r-1").to_rest()
    assert json_length is None and isinstance(body, dict)  # no Inference-Header-Content-Length split
    service = make_service(buffer_size=2)
    accepted = service.handle_http(binary_headers(), json.dumps(body).encode())
    assert (accepted.rows, accepted.dropped) == (2, 0)  # a full window, scored before the answer
    text = service.metrics.exposition().decode()
    labels = {"model": MODEL, "version": "3", "feature": "sessions_7d"}
    assert sample_value(text, "mlops_drift_test_statistic", **labels) == 5.0  # the rows' mean sessions_7d
