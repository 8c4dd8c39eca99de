"""KServe's batched payload logs as its agent writes them: the one encoder of LogRequest records that the
store bench (monitoring/bench/store.py) uploads and the payload-store tests build on.

The record shapes follow kserve v0.20.0 (commit 1fb781055dd1567164358233e1125142ca6ef1fe): pkg/logger/
types.go `LogRequest` (Go's encoding/json: `[]byte` as base64, `*url.URL` as the struct of its fields,
maps as objects, `time.Time` as RFC 3339), marshaller_json.go (an object for a batch of one, else an
array), store.go `getObjectKey`. The decoder they feed is monitoring/payloads/batch_log.py.
"""

from __future__ import annotations

import base64
import json


def go_url(text: str) -> dict:
    """Go's JSON of a *url.URL parsed from a pod name (the agent's --source-uri): a relative path."""
    return {
        "Scheme": "",
        "Opaque": "",
        "User": None,
        "Host": "",
        "Path": text,
        "RawPath": "",
        "OmitHost": False,
        "ForceQuery": False,
        "RawQuery": "",
        "Fragment": "",
        "RawFragment": "",
    }


def log_request(kind: str, event_id: str, body: dict, model: str, annotations: dict | None = None) -> dict:
    """One LogRequest (`kind` request or response) as encoding/json writes it (field order of types.go)."""
    record = {
        "url": {**go_url(""), "Scheme": "s3", "Host": "payload-logs", "Path": "/mlops"},
        "bytes": base64.b64encode(json.dumps(body).encode()).decode(),
        "contentType": "application/json",
        "reqType": f"org.kubeflow.serving.inference.{kind}",
        "id": event_id,
        "sourceUri": go_url(f"{model}-predictor-00001-deployment-5d8c7b9f4-abcde"),
        "inferenceService": model,
        "namespace": "mlops",
        "component": "predictor",
        "endpoint": "default",
        "metadata": {},
        "occurrenceTime": "2026-12-06T10:15:03.123456789Z",
    }
    if annotations:
        record["annotations"] = annotations
    return record


def json_object(records: list[dict]) -> bytes:
    """marshaller_json.go: one record as an object, a batch as an array."""
    return json.dumps(records[0] if len(records) == 1 else records, separators=(",", ":")).encode()


def object_key(prefix: str, model: str, first: dict, extension: str) -> str:
    """store.go getObjectKey: <prefix>/<namespace>/<isvc>/<component>/<path>/<id>-<request|response>.<ext>"""
    kind = first["reqType"].rsplit(".", 1)[1]
    return f"{prefix}/mlops/{model}/predictor/logs/{first['id']}-{kind}.{extension}"
