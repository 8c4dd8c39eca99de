"""Versions a client names do not add series without bound (#18): a request or response event names its
version (KServe's `ce-annotations`), so labels take a version only when its detector is loaded; every other
version is counted under `version="other"`, in the drift service's series and the quality tracker's."""

from __future__ import annotations

import json
import random

from prometheus_client.parser import text_string_to_metric_families

from inference.deploy.annotations import MODEL_VERSION_KEY
from inference.router.logger import RESPONSE_TYPE
from monitoring.drift_service.metrics import OTHER_VERSION
from tests.helpers.drift_doubles import MODEL
from tests.helpers.drift_events import binary_headers, columns_body, quality_service

RESPONSE = {"model_name": MODEL, "outputs": [{"name": "output__0", "shape": [2, 2], "datatype": "FP32",
            "data": [0.31, 0.69, 0.94, 0.06]}]}  # fmt: skip


def _send_pair(service, event_id: str, version: str) -> None:
    annotations = json.dumps({MODEL_VERSION_KEY: version})
    request = binary_headers(event_id=event_id, annotations=annotations)
    service.handle_http(request, json.dumps(columns_body([1, 2])).encode())
    response = binary_headers(RESPONSE_TYPE, event_id=event_id, annotations=annotations)
    service.handle_http(response, json.dumps(RESPONSE).encode())


def _series(service) -> dict[str, set[str]]:
    """Series of each family, by their label values."""
    text = service.metrics.exposition().decode()
    return {
        family.name: {repr(sorted(sample.labels.items())) + sample.name for sample in family.samples}
        for family in text_string_to_metric_families(text)
    }


def test_a_thousand_random_versions_add_a_constant_number_of_series(tmp_path) -> None:
    service = quality_service(tmp_path)
    _send_pair(service, "known", "3")  # the loaded detector's version keeps its own label
    _send_pair(service, "first-unknown", "v-0")
    after_one = _series(service)
    rng = random.Random(0)
    for i in range(1_000):
        _send_pair(service, f"e{i}", f"v-{rng.randrange(10**9)}")
    after_many = _series(service)
    assert after_many == after_one, {k: after_many[k] - after_one.get(k, set()) for k in after_many}
    versions = {label for names in after_many.values() for label in names if "'version'" in label}
    assert any(f"('version', '{OTHER_VERSION}')" in v for v in versions)
    assert not any("v-" in v for v in versions)
    received = service.metrics.received.labels(model=MODEL, version=OTHER_VERSION, kind="response")
    assert received._value.get() == 1_001  # counted, not lost
    assert service.metrics.received.labels(model=MODEL, version="3", kind="response")._value.get() == 1
    service.quality.store.close()
