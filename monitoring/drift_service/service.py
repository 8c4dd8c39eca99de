"""The drift service's core, free of any web framework: route KServe logger events to per (model, version)
buffers, run the detector on full windows (in the thread of the event that fills one) and old ones (the
flusher), export the results, and checkpoint online state.

Each event is decoded once on entry into a `LoggedInference` (`monitoring/payloads/logged.py`, which also
says how its model and version are found); the detector buffers, the score histogram and the quality
tracker all read that value. A model with no detector for any version is rejected (400). A request for a
version without a detector is accepted and its rows counted as dropped (`no_detector`, or
`unknown_version` when nothing names a version); responses are counted, not scored.

Nothing acknowledged is lost: with a journal (`journal.py`) an event's rows are written before it is
answered, and each run records how far it scored (`checkpoint.py`), so a restart replays exactly the rows
after that point; `drain` (on SIGTERM) scores every pending row, partial windows included. Rows that cannot
be scored are counted in `mlops_drift_events_dropped` by reason.

Bundle loading lives in `detectors.py`, the background `Flusher` in `flusher.py`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from monitoring.detectors.base import DriftDetector, DriftResult
from monitoring.drift_service.buffers import Buffers, Window
from monitoring.drift_service.checkpoint import CheckpointStore, Progress
from monitoring.drift_service.errors import ConfigError, UnavailableError
from monitoring.drift_service.journal import Journal, JournalError
from monitoring.drift_service.metrics import DriftMetrics, histogram_scores
from monitoring.payloads.cloudevents import CloudEvent, parse_http_event
from monitoring.payloads.errors import EventError
from monitoring.payloads.logged import Key, LoggedInference, TensorLayout, logged_inference
from monitoring.payloads.rows import RowBlock
from monitoring.quality.write_log import WriteLogError

if TYPE_CHECKING:
    from monitoring.quality.tracker import QualityTracker

log = logging.getLogger(__name__)

DEFAULT_BUFFER_SIZE = 200
DEFAULT_MAX_AGE_S = 60.0
DEFAULT_MAX_PENDING = 10_000


@dataclass(frozen=True)
class Accepted:
    model: str
    version: str
    kind: str
    rows: int  # rows queued for the detector
    dropped: int  # rows not queued (no detector, buffer full, unknown version)

    def document(self) -> dict[str, str | int]:
        """The 200 answer's JSON object (`dataclasses.asdict` deep-copies: once per event adds up)."""
        return {
            "model": self.model,
            "version": self.version,
            "kind": self.kind,
            "rows": self.rows,
            "dropped": self.dropped,
        }


@dataclass(frozen=True)
class RunReport:
    model: str
    version: str
    rows: int
    result: DriftResult | None
    error: str | None = None


class DriftService:
    def __init__(
        self,
        detectors: Mapping[Key, DriftDetector],
        metrics: DriftMetrics | None = None,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        max_pending: int = DEFAULT_MAX_PENDING,
        checkpoints: CheckpointStore | None = None,
        clock: Callable[[], float] = time.time,
        quality: QualityTracker | None = None,
        journal: Journal | None = None,
    ) -> None:
        if journal is not None and checkpoints is None:
            raise ValueError("a journal needs checkpoints: they record how far its rows are scored")
        self.detectors = dict(detectors)
        self.quality = quality  # logs predictions and joins delayed outcomes (monitoring/quality)
        self.metrics = metrics or DriftMetrics()
        self.buffers = Buffers(buffer_size, max_age_s, max_pending, clock, journal)
        self.journal = journal
        self.max_age_s = max_age_s
        self.checkpoints = checkpoints
        self.clock = clock
        self.layouts = {
            key: TensorLayout(tuple(detector.features)) for key, detector in self.detectors.items()
        }
        # Models whose responses are a ranker's scores, not probabilities (from the specs the tracker read).
        self.rankers = frozenset(quality.rankers) if quality is not None else frozenset()
        self._run_lock = threading.Lock()  # one detector run at a time: detectors are not thread-safe
        for model, version in self.detectors:
            self.metrics.register_detector(model, version)
        self._resume()
        if quality is not None:
            quality.start(self.detectors)
        self.ready = True

    def _resume(self) -> None:
        """Each detector's checkpointed state, then the journal's rows it has not scored."""
        if self.checkpoints is None:
            return
        for key, detector in self.detectors.items():
            progress = self.checkpoints.load(*key) or Progress(0, None)
            if detector.online and progress.state:
                detector.restore(progress.state)
                log.info("restored %s version %s from %s", *key, self.checkpoints.folder)
            if self.journal is not None:
                self._replay(key, progress.rows_scored)
            else:  # nothing to replay, but row indices go on from the checkpoint's
                self.buffers.resume(key, progress.rows_scored, [], progress.rows_scored)
        if self.journal is not None:
            for key in self.journal.keys_on_disk():
                if key not in self.detectors:  # e.g. a version retired since: its rows cannot be scored
                    replay = self.journal.for_key(key).replay(self._checkpointed_rows(key))
                    rows = sum(len(chunk) for _, chunk in replay.chunks) + replay.lost
                    self.metrics.count_dropped(*key, "no_detector", rows)
                    log.warning("journal of %s version %s: %d rows without a detector dropped", *key, rows)
                    self.journal.discard(key)

    def _checkpointed_rows(self, key: Key) -> int:
        progress = self.checkpoints.load(*key) if self.checkpoints is not None else None
        return progress.rows_scored if progress else 0

    def _replay(self, key: Key, rows_scored: int) -> None:
        try:
            replay = self.journal.for_key(key).replay(rows_scored)  # type: ignore[union-attr]
        except OSError as exc:  # JournalError included: the folder cannot be used at all
            raise ConfigError(f"--journal-dir: cannot read the journal of {key[0]} {key[1]} ({exc})") from exc
        self.metrics.count_dropped(*key, "journal_unreadable", replay.lost)
        dropped = self.buffers.resume(key, rows_scored, replay.chunks, replay.next_row)
        self.metrics.count_dropped(*key, "buffer_full", dropped)
        replayed = sum(len(chunk) for _, chunk in replay.chunks) - dropped
        self.metrics.count_replayed(*key, replayed)
        if replayed or replay.lost:
            log.info("%s version %s: %d journal rows replayed, %d unreadable", *key, replayed, replay.lost)

    # ----------------------------------------------------------------------------------------- ingest
    def handle_http(self, headers: Mapping[str, str], body: bytes) -> Accepted:
        """Parse and route one HTTP-delivered CloudEvent; invalid input is counted and re-raised."""
        try:
            event = parse_http_event(headers, body)
            return self.ingest(event)
        except EventError as exc:
            self.metrics.count_rejected(exc.reason)
            raise

    def ingest(self, event: CloudEvent) -> Accepted:
        logged = logged_inference(event, self.layouts, self.rankers)
        if logged.kind == "response":
            return self.take_response(logged)
        return self._take_request(logged)

    def take_response(self, logged: LoggedInference) -> Accepted:
        if self.quality is not None:
            self.observe_quality(self.quality.observe_response, logged)
        self.metrics.count_received(logged.model, logged.version, "response")
        self.metrics.observe_scores(logged.model, logged.version, histogram_scores(logged.scores))
        return Accepted(logged.model, logged.version, "response", 0, 0)

    def observe_quality(self, observe: Callable[[LoggedInference], None], logged: LoggedInference) -> None:
        """Hand the event to the quality tracker first: its prediction log is keyed by event id, so when
        the journal then refuses the event (503) the sender's retry logs the same rows again, not twice."""
        try:
            observe(logged)
        except WriteLogError as exc:
            self.metrics.count_rejected("journal_unavailable")
            log.error("event not acknowledged: %s", exc)
            raise UnavailableError(f"event not stored: {exc}") from None

    def _take_request(self, logged: LoggedInference) -> Accepted:
        model, version = logged.key
        rows = self.accepted_rows(logged)
        if rows is None:
            return Accepted(model, version, "request", 0, logged.row_count)
        try:
            dropped = self.buffers.add(logged.key, rows)  # journaled first, when there is a journal
        except JournalError as exc:
            self.metrics.count_rejected("journal_unavailable")
            log.error("event not acknowledged: %s", exc)
            raise UnavailableError(f"event not stored: {exc}") from None
        self.metrics.count_received(model, version, "request")
        self.metrics.count_dropped(model, version, "buffer_full", dropped)
        self.run_full(logged.key)
        return Accepted(model, version, "request", len(rows) - dropped, dropped)

    def accepted_rows(self, logged: LoggedInference) -> RowBlock | None:
        """A request's rows in its detector's columns, the quality tracker told first; None when no
        detector takes them (counted received and dropped here). The caller queues the rows, then counts
        the request received."""
        model, version = logged.key
        detector = self.detectors.get(logged.key) if logged.version_named else None
        if detector is None:
            reason = "no_detector" if logged.version_named else "unknown_version"
            if self.quality is not None:
                self.observe_quality(self.quality.observe_request, logged)
            self.metrics.count_received(model, version, "request")
            self.metrics.count_dropped(model, version, reason, logged.row_count)
            return None
        rows = detector_columns(logged.rows, detector)  # decoded with this detector's layout: not None
        if self.quality is not None:
            self.observe_quality(self.quality.observe_request, logged)
        return rows

    # ------------------------------------------------------------------------------------ detector runs
    def run_full(self, key: Key) -> list[RunReport]:
        """Score the key's full windows here, in the thread that filled them. Left to the flusher thread, a
        window waited for the GIL at every release inside the detector while this thread held it handling
        events: under load the detector scored a third as fast as alone and full buffers dropped rows
        (measured, docs/measured.md). Here the event that fills a window pays its run (about 8 ms for 250
        rows of the tabular detector), so the service takes events no faster than it scores them."""
        if self.buffers.pending(key) < self.buffers.buffer_size:  # most events: no run lock to wait for
            return []
        with self._run_lock:
            return [self._run(window) for window in self.buffers.take_full(key)]

    def run_due(self) -> list[RunReport]:
        """Score every due window (full, or older than max_age_s); called by the flusher thread."""
        with self._run_lock:
            return [self._run(window) for window in self.buffers.take_due()]

    def drain(self) -> list[RunReport]:
        """Score every pending row, partial windows too, and flush the journal: on shutdown (SIGTERM),
        after the last request was answered."""
        with self._run_lock:
            reports = [self._run(window) for window in self.buffers.take_due(force=True)]
        if self.journal is not None:
            self.journal.close()
        if self.quality is not None:
            self.quality.store.flush(self.clock())
        return reports

    def sync(self) -> None:
        """Flush the journal to disk and commit the logged predictions (the flusher, about once a
        second)."""
        if self.journal is not None:
            self.journal.sync()
        if self.quality is not None:
            self.quality.store.flush(self.clock())

    def _run(self, window: Window) -> RunReport:
        model, version = key = window.key
        rows = window.rows
        detector = self.detectors[key]
        started = time.perf_counter()
        try:
            result = detector.score(rows)
        except Exception as exc:  # a detector bug must cost its window, not the service
            log.exception("detector %s version %s failed on %d rows", model, version, len(rows))
            self.metrics.count_dropped(model, version, "detector_error", len(rows))
            self._checkpoint(key, detector, window.end_row)
            return RunReport(model, version, len(rows), None, f"{type(exc).__name__}: {exc}")
        self.metrics.record_run(model, version, result, self.clock(), time.perf_counter() - started)
        self._checkpoint(key, detector, window.end_row)
        return RunReport(model, version, len(rows), result)

    def _checkpoint(self, key: Key, detector: DriftDetector, end_row: int) -> None:
        """Record the run (state and rows scored, atomically), then drop the journal's scored segments."""
        if self.checkpoints is None:
            return
        try:
            state = detector.state() if detector.online else None
            self.checkpoints.save(*key, Progress(end_row, state))
        except (OSError, TypeError, ValueError):  # the run's metrics stand; the next run retries the save
            log.exception("checkpoint for %s version %s failed", *key)
            return
        if self.journal is not None:
            try:
                self.journal.for_key(key).compact(end_row)
            except OSError:  # scored segments stay a while longer; replay skips their rows
                log.exception("journal compaction for %s version %s failed", *key)


def detector_columns(rows: RowBlock, detector: DriftDetector) -> RowBlock:
    try:
        return rows.select(detector.features)
    except KeyError as exc:
        missing, where = exc.args[0], f"{detector.model} {detector.version}"
        raise EventError("bad_payload", f"OIP inputs: missing column {missing!r} for {where}") from None
