"""CloudEvents 1.0 over HTTP: binary mode (`ce-*` headers + body) and structured mode
(`Content-Type: application/cloudevents+json`).

KServe's logger sends binary mode: `ce-type` is `org.kubeflow.serving.inference.request` or `.response`,
a request and its response share `ce-id`, and it adds the extensions `inferenceservicename`,
`namespace`, `component`, `endpoint` ("default" or "canary") and `metadata` (JSON of logged headers).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from core.untrusted_json import UntrustedJsonError, loads_untrusted
from inference.router.logger import REQUEST_TYPE, RESPONSE_TYPE
from monitoring.payloads.errors import EventError

KIND_BY_TYPE = {REQUEST_TYPE: "request", RESPONSE_TYPE: "response"}
REQUIRED_ATTRIBUTES = ("id", "source", "specversion", "type")
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
HEADER_PREFIX = "ce-"


@dataclass(frozen=True)
class CloudEvent:
    attributes: dict[str, str]  # context attributes and extensions, lower-case names without `ce-`
    data: Any = None  # bytes (binary mode, data_base64) or already-decoded JSON (structured `data`)

    @property
    def id(self) -> str:
        return self.attributes["id"]

    @property
    def type(self) -> str:
        return self.attributes["type"]

    @property
    def kind(self) -> str:
        """ "request" or "response" (validated at parse time)."""
        return KIND_BY_TYPE[self.type]

    def attribute(self, name: str) -> str | None:
        return self.attributes.get(name)


def parse_http_event(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """A KServe inference CloudEvent from an HTTP request, in either content mode."""
    lowered = {name.lower(): value for name, value in headers.items()}
    content_type = _media_type(lowered.get("content-type", ""))
    if content_type == BATCH_CONTENT_TYPE:
        raise EventError("unsupported_content_type", "Content-Type: batched CloudEvents are not supported")
    if content_type == STRUCTURED_CONTENT_TYPE:
        event = _parse_structured(body)
    else:
        event = _parse_binary(lowered, body)
    _validate(event)
    return event


def _parse_binary(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    # The HTTP binding percent-encodes header values outside printable ASCII.
    attributes = {
        name[len(HEADER_PREFIX) :]: unquote(value) if "%" in value else value
        for name, value in headers.items()
        if name.startswith(HEADER_PREFIX)
    }
    if "content-type" in headers:
        attributes["datacontenttype"] = headers["content-type"]
    return CloudEvent(attributes=attributes, data=body)


def _parse_structured(body: bytes) -> CloudEvent:
    try:
        document = loads_untrusted(body, "structured CloudEvent body")
    except UntrustedJsonError as exc:
        raise EventError("bad_json", str(exc)) from None
    if not isinstance(document, dict):
        raise EventError("bad_json", "structured CloudEvent body: expected a JSON object")
    data: Any = document.pop("data", None)
    if "data_base64" in document:
        try:
            data = base64.b64decode(str(document.pop("data_base64")), validate=True)
        except (binascii.Error, ValueError):
            raise EventError("bad_json", "structured CloudEvent data_base64: not base64") from None
    attributes = {str(name).lower(): str(value) for name, value in document.items() if value is not None}
    return CloudEvent(attributes=attributes, data=data)


def _validate(event: CloudEvent) -> None:
    missing = [name for name in REQUIRED_ATTRIBUTES if not event.attributes.get(name)]
    if missing:
        raise EventError("missing_attribute", f"CloudEvent: missing ce-{missing[0]}")
    if event.attributes["specversion"] != "1.0":
        raise EventError(
            "unsupported_specversion", f"ce-specversion: {event.attributes['specversion']!r} is not 1.0"
        )
    if event.type not in KIND_BY_TYPE:
        raise EventError(
            "unknown_type", f"ce-type: {event.type!r} is not a KServe inference request/response"
        )
    content_type = _media_type(event.attributes.get("datacontenttype", "application/json"))
    if isinstance(event.data, bytes) and content_type and not content_type.endswith("json"):
        raise EventError("unsupported_content_type", f"Content-Type: {content_type!r} is not JSON")


def event_json(event: CloudEvent) -> Any:
    """The event's data as JSON (bytes and JSON strings are decoded; structured `data` objects pass)."""
    data = event.data
    if isinstance(data, dict | list):
        return data
    if data is None or data == b"" or data == "":
        raise EventError("bad_json", f"CloudEvent {event.id}: no data")
    if not isinstance(data, bytes | str):  # structured mode's `data` may be any JSON value
        what = type(data).__name__
        raise EventError("bad_json", f"CloudEvent {event.id} data: expected a JSON object, got {what}")
    try:
        return loads_untrusted(data, f"CloudEvent {event.id} data")
    except UntrustedJsonError as exc:
        raise EventError("bad_json", str(exc)) from None


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()
