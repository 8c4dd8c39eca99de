"""KServe's batched payload logs read from S3-compatible storage (#15): each marshaller format decodes to the
events the HTTP path gets, a bad object is refused in one line and never read again, and every row of an
object is scored exactly once, across crashes at each step of its reading and `kill -9` of a real service
reading from a real S3 server (moto's)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from core.ports import free_port
from monitoring.bench.agent_log import json_object, log_request, object_key
from monitoring.drift_service.checkpoint import CheckpointStore
from monitoring.drift_service.errors import ConfigError
from monitoring.drift_service.journal import Journal
from monitoring.drift_service.object_ingest import ingest_object
from monitoring.drift_service.object_ledger import ObjectLedger
from monitoring.drift_service.store_lane import S3Location, S3Source, StoreLane
from monitoring.payloads.batch_log import decode_batch, format_of
from monitoring.payloads.cloudevents import event_json
from monitoring.payloads.errors import EventError
from tests.helpers.drift_doubles import MODEL, MeanBoundDetector
from tests.helpers.drift_events import columns_body, make_service
from tests.helpers.payload_logs import csv_object, parquet_object, s3_server
from tests.helpers.waiting import wait_for, wait_until_serving

KEY = (MODEL, "3")
REPO = Path(__file__).resolve().parents[2]
ENCODERS = {"json": json_object, "csv": csv_object, "parquet": parquet_object}
ANNOTATIONS = {"serving.mlops-loop.io/model-version": "3"}
STOPPED_BY_SIGTERM = (0, -signal.SIGTERM)


class Crash(BaseException):
    """Stands for the process dying at this point."""


def batch(start: int, events: int, model: str = MODEL) -> list[dict]:
    """`events` inferences of one row each (sessions_7d = their index), request then response."""
    records = []
    for index in range(start, start + events):
        event_id = f"ev-{index}"
        records.append(log_request("request", event_id, columns_body([index]), model, ANNOTATIONS))
        response = {
            "outputs": [{"name": "probabilities", "shape": [1, 2], "datatype": "FP32", "data": [0.3, 0.7]}]
        }
        records.append(log_request("response", event_id, response, model, ANNOTATIONS))
    return records


@pytest.mark.parametrize("fmt", ["json", "csv", "parquet"])
def test_each_marshaller_format_decodes_to_the_events_the_logger_would_post(fmt):
    records = batch(0, 2)
    events = decode_batch(ENCODERS[fmt](records), fmt, "s3://logs/x")
    assert [(e.id, e.kind) for e in events] == [
        ("ev-0", "request"),
        ("ev-0", "response"),
        ("ev-1", "request"),
        ("ev-1", "response"),
    ]
    first = events[0]
    assert first.attribute("inferenceservicename") == MODEL and first.attribute("endpoint") == "default"
    assert json.loads(first.attribute("annotations")) == ANNOTATIONS
    assert first.attribute("source").startswith(f"{MODEL}-predictor-")
    assert event_json(first) == columns_body([0])
    one = decode_batch(json_object(records[:1]), "json", "s3://logs/one")  # a batch of one: an object
    assert [e.id for e in one] == ["ev-0"]


@pytest.mark.parametrize(
    ("fmt", "data", "says"),
    [
        ("json", b"{not json", "not valid JSON"),
        ("json", b"[]", "non-empty array"),
        ("csv", b"a,b\n1,2\n", "header row"),
        ("parquet", b"PAR1 not really", "not a Parquet file"),
        ("json", json.dumps({**batch(0, 1)[0], "bytes": "%%%"}).encode(), "not base64"),
        ("json", json.dumps({**batch(0, 1)[0], "reqType": "other"}).encode(), "reqType 'other'"),
    ],
)
def test_a_bad_object_is_one_line_naming_it(fmt, data, says):
    with pytest.raises(EventError) as caught:
        decode_batch(data, fmt, "s3://logs/bad.obj")
    message = str(caught.value)
    assert "s3://logs/bad.obj" in message and says in message and "\n" not in message


def test_the_object_name_gives_its_format():
    assert [format_of(n) for n in ("a/b-request.json", "x.CSV", "y.parquet", "z.txt", "noext")] == [
        "json",
        "csv",
        "parquet",
        None,
        None,
    ]
    with pytest.raises(ConfigError, match="s3://bucket"):
        S3Location.parse("http://bucket/prefix")


def service_at(home: Path):
    detector = MeanBoundDetector(online=True)
    service = make_service(
        [detector], buffer_size=4, checkpoints=CheckpointStore(home / "c"), journal=Journal(home / "j")
    )
    return service, detector, ObjectLedger(home / "j")


def progress(home: Path) -> tuple[int, int]:
    saved = CheckpointStore(home / "c").load(*KEY)
    return (saved.rows_scored, saved.state["seen"]) if saved else (0, 0)


def test_an_object_is_scored_once_and_its_bad_records_are_counted(tmp_path):
    service, detector, ledger = service_at(tmp_path)
    records = [*batch(0, 10), log_request("request", "stray", columns_body([1]), "no-such-model")]
    report = ingest_object(service, ledger, "o1.json", decode_batch(json_object(records), "json", "o1"))
    assert (report.events, report.rejected, report.rows, report.dropped) == (21, 1, 10, 0)
    assert detector.windows == [4, 4] and ledger.finished("o1.json")
    service.drain()
    assert progress(tmp_path) == (10, 10)


class MemorySource:
    """The store's listing and reads, in memory: for crash points inside one process (moto's S3 server
    backs the process tests below)."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.location = S3Location("logs", "")
        self.objects = objects

    def names(self):
        return iter(sorted(self.objects))

    def read(self, name: str) -> bytes:
        return self.objects[name]


@pytest.mark.parametrize("point", ["piece_recorded", "piece_journaled", "before_finish"])
def test_a_crash_while_reading_an_object_scores_each_row_once(tmp_path, monkeypatch, point):
    objects = {"a.json": json_object(batch(0, 10)), "b.csv": csv_object(batch(10, 7))}
    service, _, ledger = service_at(tmp_path)
    calls = {"n": 0}
    record_piece, append = ledger.record_piece, service.journal.for_key(KEY).append

    def crash_second(original):
        def wrapped(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2 and point == "piece_recorded":
                original(*args, **kwargs)  # the ledger has the piece; its journal line is never written
                raise Crash(point)
            result = original(*args, **kwargs)
            if calls["n"] == 2 and point == "piece_journaled":
                raise Crash(point)  # the line is in the journal; the ledger's object stays begun
            return result

        return wrapped

    if point == "piece_recorded":
        monkeypatch.setattr(ledger, "record_piece", crash_second(record_piece))
    elif point == "piece_journaled":
        monkeypatch.setattr(service.journal.for_key(KEY), "append", crash_second(append))
    else:
        monkeypatch.setattr(ledger, "finish", lambda *_: (_ for _ in ()).throw(Crash(point)))
    lane = StoreLane(service, ledger, MemorySource(objects))
    with pytest.raises(Crash):
        lane.poll()
    monkeypatch.undo()
    ledger.close()
    del service, lane  # kill -9: nothing drained

    restarted, _, ledger = service_at(tmp_path)
    assert ledger.begun() == ["a.json"]
    reports = StoreLane(restarted, ledger, MemorySource(objects)).poll()
    assert [r.name for r in reports] == ["a.json", "b.csv"]
    assert StoreLane(restarted, ledger, MemorySource(objects)).poll() == []  # nothing read twice
    restarted.drain()
    assert progress(tmp_path) == (17, 17)


def test_a_bad_object_is_rejected_once_and_the_others_are_read(tmp_path):
    service, _, ledger = service_at(tmp_path)
    objects = {"a.json": b"{broken", "b.json": json_object(batch(0, 4)), "c.txt": b"hello"}
    reports = StoreLane(service, ledger, MemorySource(objects)).poll()
    assert [r.name for r in reports] == ["b.json"]
    assert ledger.state("a.json") == ledger.state("c.txt") == "rejected"
    assert StoreLane(service, ledger, MemorySource(objects)).poll() == []
    rejected = service.metrics.objects.labels("rejected")._value.get()
    assert rejected == 2


def test_a_real_s3_store_is_read_through_boto3(tmp_path):
    with s3_server(tmp_path / "moto.log"):
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="payload-logs")
        for index, fmt in enumerate(ENCODERS):
            records = batch(index * 5, 5)
            key = object_key("mlops", MODEL, records[0], fmt)
            s3.put_object(Bucket="payload-logs", Key=key, Body=ENCODERS[fmt](records))
        s3.put_object(Bucket="payload-logs", Key="elsewhere/x.json", Body=b"{}")  # outside the prefix
        service, _, ledger = service_at(tmp_path)
        source = S3Source(S3Location.parse("s3://payload-logs/mlops"))
        reports = StoreLane(service, ledger, source).poll()
        assert sorted(r.rows for r in reports) == [5, 5, 5]
        missing = S3Source(S3Location.parse("s3://no-such-bucket/mlops"))
        assert StoreLane(service, ledger, missing).poll() == []  # logged and counted, tried again later
        assert service.metrics.objects.labels("failed")._value.get() == 1
    service.drain()
    assert progress(tmp_path) == (15, 15)


def start_service(home: Path, port: int) -> subprocess.Popen:
    argv = [sys.executable, "-m", "tests.helpers.drift_process", "--port", str(port), "--home", str(home)]
    argv += ["--journal", "--buffer-size", "20", "--payload-store", "s3://payload-logs/mlops"]
    process = subprocess.Popen(argv, cwd=REPO, env=os.environ.copy())
    wait_until_serving(f"http://127.0.0.1:{port}/readyz", process, timeout_s=60)
    return process


def test_kill_9_while_reading_the_store_then_sigterm_scores_every_row_once(tmp_path):
    objects, per_object = 40, 25
    with s3_server(tmp_path / "moto.log"):
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="payload-logs")
        for index in range(objects):
            records = batch(index * per_object, per_object)
            key = object_key("mlops", MODEL, records[0], "json")
            s3.put_object(Bucket="payload-logs", Key=key, Body=json_object(records))
        port = free_port()
        for _life in range(2):  # kill -9 while objects are being read, twice
            process = start_service(tmp_path, port)
            wanted = 100 * (_life + 1)
            wait_for(lambda w=wanted: scored(tmp_path) >= w, f"{wanted} rows scored", timeout_s=60)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
        process = start_service(tmp_path, port)
        ledger = ObjectLedger(tmp_path / "journal")
        wait_for(lambda: all(ledger.state(n) == "done" for n in _names(s3)), "every object read", 60)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) in STOPPED_BY_SIGTERM
    saved = CheckpointStore(tmp_path / "checkpoints").load(*KEY)
    assert saved.rows_scored == saved.state["seen"] == objects * per_object


def scored(home: Path) -> int:
    saved = CheckpointStore(home / "checkpoints").load(*KEY)
    return saved.rows_scored if saved else 0


def _names(s3) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket="payload-logs").get("Contents", [])]


def test_the_documented_logger_is_what_deploy_renders():
    import yaml

    from core.spec.model import load_specs
    from inference.deploy.payload_logs import PayloadLogStore
    from inference.deploy.render import render_inference_service
    from tests.helpers.deploy_registry import version_ref
    from tests.helpers.specs import FIXTURE_SPEC_DIR

    page = (REPO / "docs" / "monitoring.md").read_text()
    snippet = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    documented = yaml.safe_load(snippet)["spec"]["predictor"]["logger"]
    (spec,) = load_specs(FIXTURE_SPEC_DIR, names=[MODEL])
    store = PayloadLogStore("s3://payload-logs/mlops")
    service = render_inference_service(spec, version_ref(MODEL, "1"), None, "mlops", payload_store=store)
    assert service["spec"]["predictor"]["logger"] == documented
    assert S3Location.parse(documented["url"]) == S3Location("payload-logs", "mlops/")
