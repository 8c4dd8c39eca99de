"""KServe-logger events and drift services for the drift service's tests: binary-mode CloudEvent headers as
KServe's agent sends them, an OIP request body of the test detector's columns, and services around the
mean-bound test detector, with or without quality tracking."""

from __future__ import annotations

import json
from pathlib import Path

from inference.deploy.annotations import MODEL_VERSION_KEY
from inference.router.logger import REQUEST_TYPE
from monitoring.drift_service.metrics import DriftMetrics
from monitoring.drift_service.service import DriftService
from monitoring.quality.metrics import QualityMetrics
from monitoring.quality.store import PredictionStore
from monitoring.quality.tracker import QualityTracker, labels_from_specs
from tests.helpers.drift_doubles import MODEL, MeanBoundDetector
from tests.helpers.specs import FIXTURE_SPEC_DIR


def columns_body(sessions: list[int]) -> dict:
    n = len(sessions)
    return {
        "inputs": [
            {"name": "plan_tier", "shape": [n], "datatype": "BYTES", "data": ["pro"] * n},
            {"name": "company_size", "shape": [n, 1], "datatype": "INT64", "data": [[10]] * n},
            {"name": "lifetime_value", "shape": [n], "datatype": "FP32", "data": [100.0] * n},
            {"name": "sessions_7d", "shape": [n], "datatype": "INT64", "data": sessions},
        ]
    }


def version_annotation(version: str) -> str:
    """The `annotations` extension KServe's logger sends for a revision that serves `version`."""
    return json.dumps({MODEL_VERSION_KEY: version}, separators=(",", ":"))


def binary_headers(ce_type: str = REQUEST_TYPE, event_id: str = "e1", **extensions: str) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "ce-id": event_id,
        "ce-specversion": "1.0",
        "ce-source": "http://localhost:9081/",
        "ce-type": ce_type,
        "ce-inferenceservicename": MODEL,
    }
    headers.update({f"ce-{name}": value for name, value in extensions.items()})
    return headers


def make_service(detectors: list[MeanBoundDetector] | None = None, **kwargs) -> DriftService:
    detectors = detectors if detectors is not None else [MeanBoundDetector()]
    kwargs.setdefault("buffer_size", 4)
    kwargs.setdefault("max_age_s", 10.0)
    kwargs.setdefault("max_pending", 100)
    return DriftService({(d.model, d.version): d for d in detectors}, **kwargs)


def quality_service(state: Path | None, version: str = "3") -> DriftService:
    metrics = DriftMetrics()
    store = PredictionStore.in_folder(state) if state else PredictionStore()
    tracker = QualityTracker(
        store,
        QualityMetrics(metrics.registry, metrics.version_label),
        labels_from_specs([MODEL], FIXTURE_SPEC_DIR),
        window_size=500,
    )
    detector = MeanBoundDetector(version)
    return DriftService({(MODEL, version): detector}, metrics=metrics, buffer_size=1000, quality=tracker)
