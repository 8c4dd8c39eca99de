"""KServe's batched payload logs as its agent writes them, and an S3-compatible store to put them in.

The record shapes follow kserve v0.20.0 (commit 1fb781055dd1567164358233e1125142ca6ef1fe): pkg/logger/
types.go `LogRequest` (Go's encoding/json: `[]byte` as base64, `*url.URL` as the struct of its fields,
maps as objects, `time.Time` as RFC 3339), marshaller_json.go (an object for a batch of one, else an
array), marshaller_record.go `logRecord` and `logRecordColumns` for CSV (encoding/csv, header row) and
Parquet (parquet-go: one string column per field, `tlsSkipVerify` boolean); store.go `getObjectKey`.
The store is moto's S3 server (from the bench environment), on loopback, started by `monitoring.bench.store`.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from monitoring.bench.store import s3_store
from monitoring.payloads.batch_log import RECORD_COLUMNS


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
    """One LogRequest as encoding/json writes it (field order of types.go)."""
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
    return json.dumps(records[0] if len(records) == 1 else records, separators=(",", ":")).encode()


def _flat(record: dict) -> list[str]:
    """marshaller_record.go toLogRecord + logRecordToStrings: URLs as strings, maps as JSON text."""
    url = record["url"]
    flat = {
        **{name: record.get(name, "") for name in RECORD_COLUMNS},
        "url": f"{url['Scheme']}://{url['Host']}{url['Path']}",
        "sourceUri": record["sourceUri"]["Path"],
        "metadata": json.dumps(record.get("metadata") or {}, separators=(",", ":")),
        "annotations": json.dumps(record["annotations"], separators=(",", ":"))
        if record.get("annotations")
        else "",
        "tlsSkipVerify": "false",
    }
    return [flat[name] for name in RECORD_COLUMNS]


def csv_object(records: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")  # Go's csv.Writer ends lines with \n
    writer.writerow(RECORD_COLUMNS)
    writer.writerows(_flat(record) for record in records)
    return out.getvalue().encode()


def parquet_object(records: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [dict(zip(RECORD_COLUMNS, _flat(record), strict=True)) for record in records]
    for row in rows:
        row["tlsSkipVerify"] = False
    table = pa.Table.from_pylist(rows)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def object_key(prefix: str, model: str, first: dict, extension: str) -> str:
    """store.go getObjectKey: <prefix>/<namespace>/<isvc>/<component>/<path>/<id>-<request|response>.<ext>"""
    kind = first["reqType"].rsplit(".", 1)[1]
    return f"{prefix}/mlops/{model}/predictor/logs/{first['id']}-{kind}.{extension}"


@contextmanager
def s3_server(log: Path) -> Iterator[str]:
    """moto's S3 server (started as `make bench` starts it), with boto3 pointed at it through its own
    environment variables (what KServe's storage secret sets on a cluster); yields the endpoint URL."""
    names = ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")
    previous = {name: os.environ.get(name) for name in names}
    with s3_store(log) as endpoint:
        os.environ.update(dict(zip(names, (endpoint, "test", "test", "us-east-1"), strict=True)))
        try:
            yield endpoint
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
