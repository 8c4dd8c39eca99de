"""During a canary, each payload event reaches the detector and score histogram of the version its revision
serves, from what KServe's logger really sends: the `annotations` extension with the version annotation that
deploy lists in `logger.metadataAnnotations` (fixture: tests/monitoring/data/kserve_logger_events.json, with
its KServe source). No custom header, no `no_detector` drops; and the local router sends exactly KServe's
attributes, so local mode exercises the same attribution."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from core.registry import ModelVersionRef
from core.spec.model import load_specs
from inference.deploy.annotations import MODEL_VERSION_KEY
from inference.deploy.render import render_inference_service
from inference.router.isvc import route_from_isvc
from inference.router.logger import REQUEST_TYPE, RESPONSE_TYPE, event_headers
from monitoring.drift_service.service import DriftService
from tests.helpers.drift_doubles import MODEL, MeanBoundDetector
from tests.helpers.metrics_text import sample_value
from tests.helpers.specs import FIXTURE_SPEC_DIR

EVENTS = Path(__file__).parent / "data" / "kserve_logger_events.json"
STABLE, CANARY = "3", "4"


def kserve_pair(endpoint: str, version: str, event_id: str) -> list[tuple[dict[str, str], dict]]:
    """The fixture's request/response pair as the `endpoint` revision serving `version` would log it."""
    recorded = json.loads(EVENTS.read_text())
    pair = []
    for kind in ("request", "response"):
        headers = dict(recorded[kind]["headers"])
        headers |= {
            "Ce-Id": event_id,
            "Ce-Endpoint": endpoint,
            "Ce-Annotations": json.dumps({MODEL_VERSION_KEY: version}, separators=(",", ":")),
        }
        body = copy.deepcopy(recorded[kind]["body"]) | {"id": event_id}
        pair.append((headers, body))
    return pair


def two_version_service() -> DriftService:
    detectors = [MeanBoundDetector(STABLE), MeanBoundDetector(CANARY)]
    return DriftService({(d.model, d.version): d for d in detectors}, buffer_size=100, max_age_s=60.0)


def metric(service: DriftService, name: str, **labels: str) -> float | None:
    return sample_value(service.metrics.exposition().decode(), name, **labels)


def test_kserve_events_of_both_revisions_reach_their_own_versions_detector():
    service = two_version_service()
    sent = {STABLE: 7, CANARY: 3}
    for version, endpoint in ((STABLE, "default"), (CANARY, "canary")):
        for n in range(sent[version]):
            for headers, body in kserve_pair(endpoint, version, f"{endpoint}-{n}"):
                accepted = service.handle_http(headers, json.dumps(body).encode())
                assert (accepted.version, accepted.dropped) == (version, 0)
    for version, count in sent.items():
        key = (MODEL, version)
        assert service.buffers.pending(key) == 2 * count  # two rows per fixture request
        received = metric(
            service, "mlops_drift_events_received_total", model=MODEL, version=version, kind="response"
        )
        assert received == count
        # the per-version score histograms behind the cluster PSI: two scored rows per response
        assert metric(service, "mlops_prediction_score_count", model=MODEL, version=version) == 2 * count
    dropped = [
        metric(service, "mlops_drift_events_dropped_total", model=MODEL, version=v, reason="no_detector")
        for v in (STABLE, CANARY, "1")
    ]
    assert all(value in (None, 0) for value in dropped)


def test_without_the_annotation_two_loaded_versions_cannot_be_told_apart():
    """What the annotation fixes: Triton's repository version "1" names neither loaded version."""
    service = two_version_service()
    headers, body = kserve_pair("canary", CANARY, "bare")[1]
    del headers["Ce-Annotations"]
    accepted = service.handle_http(headers, json.dumps(body).encode())
    assert accepted.version == "1"
    assert metric(service, "mlops_prediction_score_count", model=MODEL, version=CANARY) is None


@pytest.fixture(scope="module")
def canary_route():
    spec = next(s for s in load_specs(FIXTURE_SPEC_DIR) if s.name == MODEL)

    def ref(version: str) -> ModelVersionRef:
        base = f"s3://models/{MODEL}/{version}/artifacts/triton"
        return ModelVersionRef(MODEL, version, f"{base}/cluster", f"{base}/local")

    service = render_inference_service(spec, ref(STABLE), ref(CANARY), "mlops")
    assert MODEL_VERSION_KEY in service["spec"]["predictor"]["logger"]["metadataAnnotations"]
    return route_from_isvc(service)


def test_the_local_router_sends_exactly_kserves_attributes(canary_route):
    recorded = json.loads(EVENTS.read_text())
    for target in canary_route.targets:
        for event_type, kind in ((REQUEST_TYPE, "request"), (RESPONSE_TYPE, "response")):
            headers = event_headers("e1", event_type, target, "mlops")
            assert {h.lower() for h in headers} == {h.lower() for h in recorded[kind]["headers"]}
            assert headers["ce-endpoint"] == ("canary" if target.role == "canary" else "default")
            assert json.loads(headers["ce-annotations"]) == {MODEL_VERSION_KEY: target.version}


def test_router_events_of_a_rendered_canary_are_attributed_per_version(canary_route):
    service = two_version_service()
    recorded = json.loads(EVENTS.read_text())
    for target in canary_route.targets:
        for event_type, kind in ((REQUEST_TYPE, "request"), (RESPONSE_TYPE, "response")):
            headers = event_headers(f"{target.role}-1", event_type, target, "mlops")
            accepted = service.handle_http(headers, json.dumps(recorded[kind]["body"]).encode())
            assert (accepted.version, accepted.dropped) == (target.version, 0)
    assert {t.version for t in canary_route.targets} == {STABLE, CANARY}
