"""The headers KServe's logger sends for an event of one revision, built by the local router's own
`event_headers` (checked against the recorded KServe fixture in tests/monitoring/test_canary_attribution.py),
so tests that post payload events send nothing KServe does not."""

from __future__ import annotations

from inference.deploy.annotations import MODEL_VERSION_KEY
from inference.router.isvc import Route
from inference.router.logger import REQUEST_TYPE, RESPONSE_TYPE, event_headers


def kserve_headers(model: str, version: str, event_id: str, kind: str = "request") -> dict[str, str]:
    """Binary-mode headers of a `kind` event from the stable revision serving `version` of `model`."""
    target = Route(model, version, logged_annotations=((MODEL_VERSION_KEY, version),)).targets[0]
    return event_headers(event_id, REQUEST_TYPE if kind == "request" else RESPONSE_TYPE, target, "default")
