"""KServe's batched payload logs in the agent's CSV and Parquet formats, and an S3-compatible store to put
them in. The LogRequest records and the JSON format are monitoring/bench/agent_log.py's (kserve v0.20.0,
commit 1fb781055dd1567164358233e1125142ca6ef1fe); CSV and Parquet follow marshaller_record.go `logRecord`
and `logRecordColumns` (encoding/csv, header row; parquet-go: one string column per field,
`tlsSkipVerify` boolean). The store is moto's S3 server (from the bench environment), on loopback, started
by `monitoring.bench.store`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from monitoring.bench.store import s3_store
from monitoring.payloads.batch_log import RECORD_COLUMNS
from pipelines.local_run import environment


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


@contextmanager
def s3_server(log: Path) -> Iterator[str]:
    """moto's S3 server (started as `make bench` starts it), with boto3 pointed at it through its own
    environment variables (what KServe's storage secret sets on a cluster); yields the endpoint URL."""
    with s3_store(log) as endpoint:
        variables = {
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
        }
        with environment(variables):
            yield endpoint
