"""The drift service over a REAL detector bundle (alibi-detect, serving environment): KServe-logger
CloudEvents carrying OIP requests go in, drift metrics come out, for a clean and a shifted window."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from monitoring.detectors.fit import fit_detector
from monitoring.drift_service.detectors import load_detectors
from monitoring.drift_service.service import DriftService
from tests.helpers.drifted_demo import SHIFTED
from tests.helpers.kserve_events import kserve_headers
from tests.helpers.specs import fixture_spec

pytestmark = pytest.mark.serving
MODEL, VERSION = "conversion-xgboost", "7"


def _oip_request(rows: pd.DataFrame, columns: list[str]) -> bytes:
    """One OIP v2 input per raw feature column, as the KServe transformer sends them to the predictor."""
    inputs = []
    for column in columns:
        values = rows[column]
        if pd.api.types.is_numeric_dtype(values):
            data, datatype = values.astype("float64").fillna(np.nan).tolist(), "FP64"
        else:
            data, datatype = values.astype(str).tolist(), "BYTES"
        inputs.append({"name": column, "shape": [len(rows)], "datatype": datatype, "data": data})
    return json.dumps({"inputs": inputs}, allow_nan=True).encode()


def _send(service: DriftService, rows: pd.DataFrame, columns: list[str], event_id: str) -> None:
    headers = kserve_headers(MODEL, VERSION, event_id)
    accepted = service.handle_http(headers, _oip_request(rows, columns))
    assert (accepted.model, accepted.version, accepted.dropped) == (MODEL, VERSION, 0)


def _gauge(service: DriftService, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(service.metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"{name} {labels} not exported")


@pytest.fixture(scope="module")
def service(sessions, tmp_path_factory):
    root = tmp_path_factory.mktemp("detectors")
    fit_detector(fixture_spec(MODEL), sessions["fit"], VERSION, root / MODEL / VERSION)
    return DriftService(load_detectors(root), buffer_size=250, max_age_s=3600)


def test_a_clean_window_is_not_drift_and_a_shifted_one_is(service, sessions):
    columns = service.detectors[(MODEL, VERSION)].features
    for start in (0, 125):  # the second event fills the window: scored before its answer
        _send(service, sessions["clean"].iloc[start : start + 125], columns, f"clean-{start}")
    assert _gauge(service, "mlops_drift_rows_scored_total", model=MODEL, version=VERSION) == 250
    assert _gauge(service, "mlops_drift_detected", model=MODEL, version=VERSION) == 0

    _send(service, sessions["drifted"].iloc[:250], columns, "drifted")
    assert _gauge(service, "mlops_drift_detected", model=MODEL, version=VERSION) == 1
    shifted = _gauge(service, "mlops_drift_p_value", model=MODEL, version=VERSION, feature=SHIFTED)
    threshold = _gauge(service, "mlops_drift_threshold", model=MODEL, version=VERSION)
    assert shifted < threshold
    assert _gauge(service, "mlops_drift_last_run_timestamp_seconds", model=MODEL, version=VERSION) > 0
