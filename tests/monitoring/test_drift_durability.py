"""Nothing the drift service acknowledged is lost, nothing is scored twice (#18): the write-ahead journal,
the checkpointed progress, replay at start, drain on SIGTERM, and crashes at each step of a detector run.

The online mean-bound detector's state counts every row it has seen (`seen`), so "each acknowledged row
scored exactly once" reads as: the checkpoint's `rows_scored` equals the rows acknowledged, and so does the
state's `seen`. In-process crashes raise a BaseException at the chosen point and abandon the service, as
`kill -9` would (journal lines are written unbuffered, so the kernel holds them); the process tests kill a
real service under load.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pandas as pd
import pytest

from core.ports import free_port
from monitoring.drift_service import journal as journal_module
from monitoring.drift_service.app import create_app
from monitoring.drift_service.checkpoint import CheckpointStore
from monitoring.drift_service.errors import ConfigError
from monitoring.drift_service.journal import Journal
from monitoring.payloads.rows import RowBlock
from tests.helpers.drift_doubles import MODEL, MeanBoundDetector
from tests.helpers.drift_events import binary_headers, columns_body, make_service
from tests.helpers.metrics_text import sample_value
from tests.helpers.servers import serving_in_thread
from tests.helpers.waiting import wait_for, wait_until_serving

KEY = (MODEL, "3")
REPO = Path(__file__).resolve().parents[2]
# uvicorn shuts down gracefully on SIGTERM, then raises the signal again (exit status -15 to Popen).
STOPPED_BY_SIGTERM = (0, -signal.SIGTERM)


class Crash(BaseException):
    """Stands for the process dying at this point: nothing after it runs, no handler catches it."""


def service_at(home: Path, detector: MeanBoundDetector | None = None, **kwargs):
    detector = detector or MeanBoundDetector(online=True)
    kwargs.setdefault("buffer_size", 4)
    service = make_service(
        [detector],
        checkpoints=CheckpointStore(home / "checkpoints"),
        journal=Journal(home / "journal"),
        **kwargs,
    )
    return service, detector


def send(service, sessions: list[int]) -> int:
    """Rows the service acknowledged for the detector."""
    return service.handle_http(binary_headers(), json.dumps(columns_body(sessions)).encode()).rows


def progress(home: Path) -> tuple[int, int]:
    saved = CheckpointStore(home / "checkpoints").load(*KEY)
    return (saved.rows_scored, saved.state["seen"]) if saved else (0, 0)


def counter(service, name: str, **labels: str) -> float | None:
    return sample_value(service.metrics.exposition().decode(), name, **labels)


def test_the_journal_gives_back_the_rows_it_was_given(tmp_path):
    rows = RowBlock(
        ("plan_tier", "company_size", "lifetime_value", "text"),
        ("object", "int64", "float32", "object"),
        (
            ["pro", None, "free"],
            [10, 2, 3],
            [100.5, float("nan"), 3.25],
            ['a "quoted" line\nwith a newline', "é", ""],
        ),
        3,
    )
    journal = Journal(tmp_path).for_key(KEY)
    journal.append(0, rows)
    journal.append(3, rows.slice(0, 1))
    replay = Journal(tmp_path).for_key(KEY).replay(1)  # a new process; rows before 1 are scored
    assert [first for first, _ in replay.chunks] == [1, 3] and (replay.next_row, replay.lost) == (4, 0)
    pd.testing.assert_frame_equal(replay.chunks[0][1].frame(), rows.slice(1).frame())
    pd.testing.assert_frame_equal(replay.chunks[1][1].frame(), rows.slice(0, 1).frame())
    assert replay.chunks[1][1].frame().dtypes.astype(str).tolist() == ["object", "int64", "float32", "object"]


def test_acknowledged_rows_of_a_partial_window_survive_a_crash(tmp_path):
    service, _ = service_at(tmp_path)
    # one window of 4 (scored by the event that filled it), three rows waiting
    acked = send(service, [1, 2, 3]) + send(service, [4, 5, 6, 7])
    assert progress(tmp_path) == (4, 4)
    del service  # kill -9: no drain, nothing flushed by us

    restarted, detector = service_at(tmp_path)
    labels = {"model": MODEL, "version": "3"}
    assert counter(restarted, "mlops_drift_rows_replayed_total", **labels) == 3
    assert detector.seen == 4  # restored from the checkpoint, not replayed
    restarted.drain()
    assert progress(tmp_path) == (acked, acked) == (7, 7)
    assert counter(restarted, "mlops_drift_rows_scored_total", **labels) == 3


@pytest.mark.parametrize("point", ["before_scoring", "after_scoring", "after_checkpoint"])
def test_a_crash_at_any_step_of_a_run_scores_each_row_once(tmp_path, monkeypatch, point):
    """The event that fills a window scores it before its answer: a crash there leaves that event
    journaled but unanswered (the sender's retry may send it again: the one event in flight)."""
    service, detector = service_at(tmp_path)
    acked = send(service, [1] * 3) + send(service, [2] * 3)  # the first window (4 rows) scored
    assert progress(tmp_path) == (4, 4)
    score = detector.score

    def crash(*_args, **_kwargs):
        raise Crash(point)

    if point == "before_scoring":
        monkeypatch.setattr(detector, "score", crash)
    else:
        monkeypatch.setattr(detector, "score", lambda rows: score(rows))
        if point == "after_scoring":
            monkeypatch.setattr(service.checkpoints, "save", crash)
        else:
            monkeypatch.setattr(service.journal.for_key(KEY), "compact", crash)
    with pytest.raises(Crash):
        send(service, [3] * 3)  # fills the second window (rows 4 to 7); its run crashes
    assert progress(tmp_path) == ((8, 8) if point == "after_checkpoint" else (4, 4))

    restarted, fresh = service_at(tmp_path)  # a new process: the detector as the checkpoint left it
    restarted.drain()
    assert progress(tmp_path) == (acked + 3, acked + 3) == (9, 9)  # each journaled row scored once
    assert fresh.seen == 9


def test_a_torn_last_line_is_cut_off_and_appends_go_on(tmp_path):
    service, _ = service_at(tmp_path)
    acked = send(service, [1]) + send(service, [2])
    [segment] = (tmp_path / "journal").rglob("*.jsonl")
    with segment.open("ab") as handle:  # the machine died mid-write: this event was never answered
        handle.write(b'{"row": 2, "columns": ["plan_')
    del service

    restarted, _ = service_at(tmp_path)
    acked += send(restarted, [3])
    del restarted
    again, detector = service_at(tmp_path)
    again.drain()
    assert progress(tmp_path) == (acked, acked) == (3, 3)
    assert detector.total == 6.0  # the rows 1, 2 and 3, each once


def test_an_unreadable_line_is_counted_as_dropped_with_its_rows(tmp_path):
    service, _ = service_at(tmp_path, buffer_size=10)  # nothing scored before the crash
    for sessions in ([1], [2, 2], [3]):
        send(service, sessions)
    [segment] = (tmp_path / "journal").rglob("*.jsonl")
    lines = segment.read_bytes().splitlines(keepends=True)
    segment.write_bytes(lines[0] + b"{not json}\n" + lines[2])  # the two-row event is unreadable
    del service

    restarted, detector = service_at(tmp_path, buffer_size=10)
    labels = {"model": MODEL, "version": "3", "reason": "journal_unreadable"}
    assert counter(restarted, "mlops_drift_events_dropped_total", **labels) == 2
    restarted.drain()
    assert (detector.seen, detector.total) == (2, 4.0)
    assert progress(tmp_path)[0] == 4  # the progress passes the lost rows: they are never replayed


def test_scored_segments_are_deleted_and_the_rest_replayed(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "SEGMENT_BYTES", 400)  # a few events a segment
    service, _ = service_at(tmp_path, buffer_size=10)
    acked = sum(send(service, [n]) for n in range(25))
    folder = tmp_path / "journal" / MODEL / "3"
    # two windows (rows 0-19) were scored as they filled, and the segments all of whose rows they hold
    # deleted; the segment holding row 20 stays
    segments = sorted(int(path.stem) for path in folder.glob("*.jsonl"))
    assert 0 < segments[0] <= 20 and len(segments) > 1
    del service

    restarted, detector = service_at(tmp_path, buffer_size=10)
    restarted.drain()
    assert progress(tmp_path) == (acked, acked) == (25, 25)
    assert detector.total == sum(range(25))


def test_a_retired_versions_journal_is_counted_and_removed(tmp_path):
    service, _ = service_at(tmp_path)
    send(service, [1, 2])
    del service
    other = make_service(
        [MeanBoundDetector("4", online=True)],
        checkpoints=CheckpointStore(tmp_path / "checkpoints"),
        journal=Journal(tmp_path / "journal"),
    )
    labels = {"model": MODEL, "version": "other", "reason": "no_detector"}
    assert counter(other, "mlops_drift_events_dropped_total", **labels) == 2
    assert not (tmp_path / "journal" / MODEL / "3").exists()


def test_an_unusable_journal_folder_fails_at_start_naming_it(tmp_path):
    (tmp_path / "journal").write_text("a file where the journal's folder should be")
    with pytest.raises(ConfigError, match=r"--journal-dir: cannot read the journal of .*Not a directory"):
        service_at(tmp_path)


def test_a_full_disk_refuses_the_event_with_503_and_loses_nothing_acknowledged(tmp_path, monkeypatch):
    service, _ = service_at(tmp_path)
    folder = tmp_path / "journal" / MODEL / "3"
    with serving_in_thread(create_app(service, tick_s=0.05)) as base, httpx.Client(base_url=base) as http:
        body = json.dumps(columns_body([1]))
        assert http.post("/", headers=binary_headers(), content=body).json()["rows"] == 1
        monkeypatch.setattr(journal_module, "SEGMENT_BYTES", 1)  # the next event opens a new segment...
        (folder / f"{1:020d}.jsonl").symlink_to("/dev/full")  # ...on a full disk: ENOSPC
        answer = http.post("/", headers=binary_headers(), content=body)
        text = http.get("/metrics").text
    assert answer.status_code == 503
    assert list(answer.json()) == ["error"] and "No space left" in answer.json()["error"]
    assert "\n" not in answer.json()["error"]
    assert sample_value(text, "mlops_drift_events_rejected_total", reason="journal_unavailable") == 1
    labels = {"model": MODEL, "version": "3", "kind": "request"}
    assert sample_value(text, "mlops_drift_events_received_total", **labels) == 1  # the refused one is not
    assert progress(tmp_path) == (1, 1)  # the server's shutdown drained the acknowledged row
    (folder / f"{1:020d}.jsonl").unlink()
    del service

    restarted, detector = service_at(tmp_path)
    assert counter(restarted, "mlops_drift_rows_replayed_total", model=MODEL, version="3") == 0
    assert send(restarted, [5]) == 1  # the journal takes events again
    restarted.drain()
    assert progress(tmp_path) == (2, 2) and detector.total == 6.0


# ----------------------------------------------------------------------------------- real processes
class Sender:
    """Posts one-row events one at a time until stopped; counts the rows acknowledged with 2xx."""

    def __init__(self, base: str) -> None:
        self.base, self.acked, self.failed = base, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        body = json.dumps(columns_body([4])).encode()
        with httpx.Client(base_url=self.base, timeout=5.0) as http:
            while not self._stop.is_set():
                try:
                    answer = http.post("/", headers=binary_headers(), content=body)
                except httpx.HTTPError:
                    self.failed += 1  # the process is gone: this event is not acknowledged
                    continue
                if answer.status_code == 200:
                    self.acked += answer.json()["rows"]

    def __enter__(self) -> Sender:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def start_service(home: Path, port: int, journal: bool) -> subprocess.Popen:
    argv = [sys.executable, "-m", "tests.helpers.drift_process", "--port", str(port), "--home", str(home)]
    process = subprocess.Popen([*argv, *(["--journal"] if journal else [])], cwd=REPO)
    wait_until_serving(f"http://127.0.0.1:{port}/readyz", process, timeout_s=60)
    return process


def test_kill_9_under_load_then_sigterm_scores_every_acknowledged_row_once(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    acked = 0
    for _life in range(3):  # kill -9 twice mid-stream, then a graceful stop
        process = start_service(tmp_path, port, journal=True)
        with Sender(base) as sender:
            wait_for(lambda: sender.acked >= 120, "120 events acknowledged", timeout_s=30)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
        acked += sender.acked
    process = start_service(tmp_path, port, journal=True)
    with Sender(base) as sender:
        wait_for(lambda: sender.acked >= 75, "75 events acknowledged", timeout_s=30)
    acked += sender.acked
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) in STOPPED_BY_SIGTERM
    rows_scored, seen = progress(tmp_path)
    assert seen == rows_scored  # no row entered the detector twice
    # An event in flight at a kill may have been journaled without its answer arriving: at most one a kill.
    assert acked <= rows_scored <= acked + 3


def test_sigterm_scores_the_partial_window_even_without_a_journal(tmp_path):
    port = free_port()
    body = json.dumps(columns_body([4])).encode()
    acked = 0
    for events in (135, 40):  # each life leaves a partial window of the 50-row windows: 35, then 25
        process = start_service(tmp_path, port, journal=False)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as http:
            for _ in range(events):
                acked += http.post("/", headers=binary_headers(), content=body).json()["rows"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) in STOPPED_BY_SIGTERM
        assert progress(tmp_path) == (acked, acked)  # counted on from the checkpoint across the restart
    assert acked == 175
