"""The headers KServe's logger sends for an event of one revision, built by the local router's own
`event_headers` (checked against the recorded KServe fixture in tests/monitoring/test_canary_attribution.py),
so tests that post payload events send nothing KServe does not."""

from __future__ import annotations

import json
from datetime import datetime

from inference.deploy.annotations import MODEL_VERSION_KEY, REQUEST_ID_HEADER
from inference.router.isvc import Route
from inference.router.logger import REQUEST_TYPE, RESPONSE_TYPE, event_headers


def kserve_headers(model: str, version: str, event_id: str, kind: str = "request") -> dict[str, str]:
    """Binary-mode headers of a `kind` event from the stable revision serving `version` of `model`."""
    target = Route(model, version, logged_annotations=((MODEL_VERSION_KEY, version),)).targets[0]
    return event_headers(event_id, REQUEST_TYPE if kind == "request" else RESPONSE_TYPE, target, "default")


def mirrored_headers(
    service: str, version: str, kind: str, request_id: str | None, at: datetime
) -> dict[str, str]:
    """Binary-mode headers of InferenceService `service` (serving `version`) during a shadow rollout: its
    logger lists `X-Request-Id` in `metadataHeaders`, so `ce-metadata` carries the id (Go's json.Marshal of
    the header map, kserve pkg/logger/handler.go); None: a logger that lists nothing (an empty map)."""
    target = Route(service, version, logged_annotations=((MODEL_VERSION_KEY, version),)).targets[0]
    event_type = REQUEST_TYPE if kind == "request" else RESPONSE_TYPE
    headers = event_headers(f"{service}-{request_id}", event_type, target, "mlops", at)
    if request_id is not None:
        headers["ce-metadata"] = json.dumps({REQUEST_ID_HEADER: [request_id]}, separators=(",", ":"))
    return headers
