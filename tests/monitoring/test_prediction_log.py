"""The prediction store's write-ahead log (monitoring/quality/write_log.py): logged predictions reach sqlite
in batches, and a process that dies between an event's answer and the next batch loses none of them.

A crash is a store dropped without `flush` or `close` (its log lines were written unbuffered, as `kill -9`
leaves them); the next store on the same folder must hold every logged row exactly once.
"""

from __future__ import annotations

import json
import shutil

import pytest

from monitoring.drift_service.errors import UnavailableError
from monitoring.quality.store import LOG_FOLDER, PredictionStore
from monitoring.quality.write_log import WriteLog
from tests.helpers.drift_doubles import MODEL
from tests.helpers.drift_events import binary_headers, columns_body, quality_service, version_annotation
from tests.helpers.metrics_text import sample_value

VERSION = "3"


def _log_three(store: PredictionStore) -> None:
    for i in range(3):
        store.log_request(f"ce-{i}", f"r-{i}", MODEL, VERSION, [{"x": i}], now=1000.0 + i)
    store.log_response("ce-1", "r-1", MODEL, VERSION, [[0.25, 0.75]], now=1001.5)


def _rows(store: PredictionStore) -> list[tuple]:
    return sorted((r["request_id"], r["features"]["x"], r["proba"]) for r in store.recent(MODEL, since=0.0))


def test_rows_logged_before_a_crash_are_in_the_next_store_once(tmp_path):
    _log_three(PredictionStore.in_folder(tmp_path))  # answered, never flushed: the process dies
    assert list((tmp_path / LOG_FOLDER).glob("*.jsonl"))  # what the crash left
    restarted = PredictionStore.in_folder(tmp_path)
    expected = [("r-0", 0, None), ("r-1", 1, [0.25, 0.75]), ("r-2", 2, None)]
    assert _rows(restarted) == expected
    assert not list((tmp_path / LOG_FOLDER).glob("*.jsonl"))  # applied, then deleted
    restarted.close()
    assert _rows(PredictionStore.in_folder(tmp_path)) == expected  # and not applied again


def test_a_batch_applied_twice_leaves_the_same_rows(tmp_path):
    """A crash after the batch's commit but before its segments were deleted replays it: upserts make the
    second application a no-op."""
    store = PredictionStore.in_folder(tmp_path)
    _log_three(store)
    kept = tmp_path / "kept"
    shutil.copytree(tmp_path / LOG_FOLDER, kept)
    store.flush(now=1002.0)
    store.close()
    shutil.rmtree(tmp_path / LOG_FOLDER)
    shutil.copytree(kept, tmp_path / LOG_FOLDER)  # the segments as they were before the delete
    restarted = PredictionStore.in_folder(tmp_path)
    assert _rows(restarted) == [("r-0", 0, None), ("r-1", 1, [0.25, 0.75]), ("r-2", 2, None)]
    assert len(restarted.recent(MODEL, since=0.0)) == 3


def test_a_torn_last_line_is_skipped_and_the_rest_recovered(tmp_path):
    log = WriteLog(tmp_path)
    log.append("request", [("ce-0", 0, "r-0", MODEL, VERSION, 1000.0, 1, json.dumps({"x": 0}))])
    (segment,) = tmp_path.glob("*.jsonl")
    with segment.open("ab") as handle:
        handle.write(b'["request",[["ce-1",0,"r-')  # the process died mid-write: never answered
    entries, upto = WriteLog(tmp_path).replay()
    assert [rows[0][0] for _, rows in entries] == ["ce-0"] and upto == int(segment.stem)


def test_an_event_the_log_cannot_store_is_refused_503_and_not_counted(tmp_path):
    service = quality_service(tmp_path)
    log_folder = tmp_path / LOG_FOLDER
    service.quality.store.flush(now=0.0)  # closes the open segment: the next write opens a new one
    shutil.rmtree(log_folder)
    log_folder.write_text("not a folder")  # every open under it now fails
    headers = binary_headers(annotations=version_annotation(VERSION))
    body = json.dumps(columns_body([1])).encode()
    with pytest.raises(UnavailableError, match="prediction log") as refused:
        service.handle_http(headers, body)
    assert refused.value.status_code == 503
    assert service.buffers.pending((MODEL, VERSION)) == 0  # not queued: the sender's retry is the only copy
    text = service.metrics.exposition().decode()
    assert sample_value(text, "mlops_drift_events_rejected_total", reason="journal_unavailable") == 1
    received = sample_value(
        text, "mlops_drift_events_received_total", model=MODEL, version=VERSION, kind="request"
    )
    assert received == 0
