"""The drift service reading KServe's batched payload logs from S3-compatible storage instead of one HTTP
POST per event: moto's S3 server on loopback (from the bench environment) holds objects in the agent's
JSON marshaller format (monitoring/payloads/batch_log.py), `--batch-events` records each (requests and
their responses, as `logger.mode: all` writes them), and `python -m monitoring.drift_service
--payload-store` reads them with its journal and checkpoints on, as deployed.

Per-core throughput is request rows over the CPU time the service process used from the first upload
until every row was scored (its listing and polling included); the uploads and moto run in other
processes.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from core.paths import REPO_ROOT
from core.ports import free_ports
from inference.bench.servers import HOST
from inference.deploy.annotations import MODEL_VERSION_KEY
from monitoring.bench.agent_log import json_object, log_request, object_key
from monitoring.bench.service import cpu_seconds, drift_service, event_body, settled
from monitoring.bench.stats import Throughput

MOTO_SERVER = REPO_ROOT / ".venv-bench" / "bin" / "moto_server"
BUCKET, PREFIX = "payload-logs", "mlops"
STORE_SETTLE_S = 600.0  # the whole store read, not a second's tail
RESPONSE = {"outputs": [{"name": "probabilities", "shape": [1, 2], "datatype": "FP32", "data": [0.4, 0.6]}]}


def log_records(model: str, version: str, row: pd.Series, inferences: int) -> list[dict]:
    """`inferences` request/response pairs, as `logger.mode: all` logs them."""
    annotations, request = {MODEL_VERSION_KEY: version}, event_body(row)
    records = []
    for _ in range(inferences):
        event_id = str(uuid.uuid4())
        records.append(log_request("request", event_id, request, model, annotations))
        records.append(log_request("response", event_id, RESPONSE, model, annotations))
    return records


@contextlib.contextmanager
def s3_store(log: Path) -> Iterator[str]:
    """moto's S3 server on a free port; yields its endpoint."""
    port = free_ports(1)[0]
    with log.open("wb") as sink:
        process = subprocess.Popen([str(MOTO_SERVER), "-H", HOST, "-p", str(port)], stdout=sink, stderr=sink)
    endpoint = f"http://{HOST}:{port}"
    try:
        client = _client(endpoint)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.list_buckets()
                break
            except Exception:  # not listening yet
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"moto's S3 server did not start (log {log})") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


def _client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    )


def measure_store(
    detector_dir: Path, row: pd.Series, model: str, version: str, window: int, work: Path, args
) -> tuple[Throughput, dict, dict[str, float]]:
    objects = max(1, args.store_events // args.batch_events)
    inferences = args.batch_events // 2
    with s3_store(work / "moto.log") as endpoint:
        client = _client(endpoint)
        client.create_bucket(Bucket=BUCKET)
        environment = {
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
        }
        extra_args = ["--payload-store", f"s3://{BUCKET}/{PREFIX}", "--payload-store-poll-s", "0.2"]
        state, log = work / "store-state", work / "drift-store.log"
        with drift_service(detector_dir.parent, window, log, state, extra_args, environment) as (url, pid):
            before_cpu, started = cpu_seconds(pid), time.perf_counter()
            for index in range(objects):
                records = log_records(model, version, row, inferences)
                key = object_key(PREFIX, model, records[0], "json")
                client.put_object(Bucket=BUCKET, Key=key, Body=json_object(records))
                if index == 0:
                    first_put = time.perf_counter()
            uploaded = time.perf_counter()
            totals = settled(url, expected=objects * inferences, timeout_s=STORE_SETTLE_S)
            wall, used_cpu = time.perf_counter() - started, cpu_seconds(pid) - before_cpu
    rows = int(totals["received"])
    extra = {
        "objects": objects,
        "records_per_object": 2 * inferences,
        "format": "json",
        "request_rows": objects * inferences,
        "upload_s": round(uploaded - first_put, 2),
        "service_cpu_s": round(used_cpu, 2),
    }
    return Throughput(rows, wall, used_cpu), extra, totals
