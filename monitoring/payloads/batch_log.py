"""KServe's batched payload logs: the objects its agent writes to object storage instead of posting one
CloudEvent per inference, read back as the same CloudEvents the HTTP path receives.

Source: kserve v0.20.0 (commit 1fb781055dd1567164358233e1125142ca6ef1fe). With `spec.predictor.logger.url`
`s3://bucket/prefix`, `logger.storage.path` and optionally `logger.storage.parameters.format` (json, csv or
parquet) and `logger.batchSize`/`batchInterval`, the agent (cmd/agent/main.go `startLogger`) batches
`LogRequest`s (pkg/logger/types.go; dispatcher.go, batch_size.go, batch_timed.go), marshals a batch with
its embedded marshaller (marshaller_json.go: one JSON object for a batch of one, else an array, Go's
encoding: `bytes` base64, `url`/`sourceUri` as url.URL structs, `metadata`/`annotations` as objects;
marshaller_csv.go and marshaller_parquet.go: `logRecord` of marshaller_record.go, all strings, `bytes`
base64, `metadata`/`annotations` JSON text, a header row in CSV) and uploads it to
`<prefix>/<namespace>/<isvc>/<component>/<path>/<first id>-<request|response>.<ext>` (store.go
`getObjectKey`). A batch may mix requests and responses. Each record holds what the agent's CloudEvent
would (worker.go `sendHttpCloudEvent`): id, type, source, the `inferenceservicename`, `namespace`,
`component`, `endpoint`, `metadata` and `annotations` extensions, the content type and the body.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from typing import Any

from core.untrusted_json import UntrustedJsonError, loads_untrusted
from monitoring.payloads.cloudevents import KIND_BY_TYPE, CloudEvent
from monitoring.payloads.errors import EventError

FORMATS = ("json", "csv", "parquet")
RECORD_COLUMNS = (  # marshaller_record.go logRecordColumns(), in order: the CSV header
    "url",
    "bytes",
    "contentType",
    "reqType",
    "id",
    "sourceUri",
    "inferenceService",
    "namespace",
    "component",
    "endpoint",
    "metadata",
    "annotations",
    "certName",
    "tlsSkipVerify",
)
# record field -> CloudEvent extension attribute (worker.go's constants)
_EXTENSIONS = {
    "inferenceService": "inferenceservicename",
    "namespace": "namespace",
    "component": "component",
    "endpoint": "endpoint",
}


def format_of(name: str) -> str | None:
    """The marshaller format an object's name ends in (`.json`, `.csv`, `.parquet`), else None."""
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return extension if extension in FORMATS else None


def decode_batch(data: bytes, fmt: str, where: str) -> list[CloudEvent]:
    """The CloudEvents of one stored batch; EventError naming `where` (the object) and the record."""
    if fmt == "json":
        records = _json_records(data, where)
    elif fmt == "csv":
        records = _csv_records(data, where)
    elif fmt == "parquet":
        records = _parquet_records(data, where)
    else:
        raise EventError("unsupported_content_type", f"{where}: format {fmt!r} is not one of {FORMATS}")
    return [_event(record, f"{where} record {index}") for index, record in enumerate(records)]


def _json_records(data: bytes, where: str) -> list[dict[str, Any]]:
    try:
        document = loads_untrusted(data, where)
    except UntrustedJsonError as exc:
        raise EventError("bad_json", str(exc)) from None
    records = document if isinstance(document, list) else [document]  # a batch of one is an object
    if not records or not all(isinstance(record, dict) for record in records):
        raise EventError("bad_json", f"{where}: expected a LogRequest object or a non-empty array of them")
    return records


def _csv_records(data: bytes, where: str) -> list[dict[str, Any]]:
    try:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise EventError("bad_json", f"{where}: not UTF-8 CSV ({exc})") from None
    if not rows or tuple(rows[0]) != RECORD_COLUMNS:
        raise EventError("bad_payload", f"{where}: the header row is not KServe's log record columns")
    if len(rows) == 1:
        raise EventError("bad_payload", f"{where}: no records")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(RECORD_COLUMNS):
            raise EventError("bad_payload", f"{where} line {line}: {len(row)} fields, expected 14")
    return [dict(zip(RECORD_COLUMNS, row, strict=True)) for row in rows[1:]]


def _parquet_records(data: bytes, where: str) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise EventError("bad_payload", f"{where}: not a Parquet file ({exc})") from None
    missing = [name for name in ("bytes", "reqType", "id") if name not in table.column_names]
    if missing:
        raise EventError("bad_payload", f"{where}: no column {missing[0]!r} (not a KServe log record)")
    records = table.to_pylist()
    if not records:
        raise EventError("bad_payload", f"{where}: no records")
    return records


def _event(record: dict[str, Any], where: str) -> CloudEvent:
    event_id, event_type = _text(record.get("id")), _text(record.get("reqType"))
    if not event_id:
        raise EventError("missing_attribute", f"{where}: no id")
    if event_type not in KIND_BY_TYPE:
        raise EventError("unknown_type", f"{where}: reqType {event_type!r} is not a KServe inference type")
    attributes = {
        "id": event_id,
        "type": event_type,
        "specversion": "1.0",
        "source": _url_text(record.get("sourceUri")) or "unknown",
        "datacontenttype": _text(record.get("contentType")) or "application/json",
    }
    for field, name in _EXTENSIONS.items():
        if value := _text(record.get(field)):
            attributes[name] = value
    attributes["metadata"] = _json_text(record.get("metadata"), where, "metadata") or "{}"
    if annotations := _json_text(record.get("annotations"), where, "annotations"):
        attributes["annotations"] = annotations
    return CloudEvent(attributes=attributes, data=_body(record.get("bytes"), where))


def _body(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise EventError("bad_json", f"{where}: no body (bytes)")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise EventError("bad_json", f"{where}: bytes is not base64") from None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _json_text(value: Any, where: str, field: str) -> str:
    """An extension's JSON text: the JSON marshaller writes an object, CSV and Parquet its JSON text."""
    if value in (None, "", {}):
        return ""
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, str):
        return value
    raise EventError("bad_attribute", f"{where}: {field} must be an object or its JSON text")


def _url_text(value: Any) -> str:
    """A url.URL as text: a string (CSV, Parquet) or Go's struct encoding of it (JSON)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return ""
    scheme, host = _text(value.get("Scheme")), _text(value.get("Host"))
    path, opaque = _text(value.get("Path")), _text(value.get("Opaque"))
    if scheme:
        return f"{scheme}:{opaque}" if opaque else f"{scheme}://{host}{path}"
    return path or opaque
