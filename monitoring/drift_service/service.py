"""The drift service's core, free of any web framework: route KServe logger events to per (model, version)
buffers, run the detector on full or old windows, export the results, and checkpoint online state.

Each event is decoded once on entry into a `LoggedInference` (`monitoring/payloads/logged.py`, which also
says how its model and version are found); the detector buffers, the score histogram and the quality
tracker all read that value. A model with no detector for any version is rejected (400). A request for a
version without a detector is accepted and its rows counted as dropped (`no_detector`, or
`unknown_version` when nothing names a version); responses are counted, not scored.

Bundle loading lives in `detectors.py`, the background `Flusher` in `flusher.py`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from monitoring.detectors.base import DriftDetector, DriftResult
from monitoring.drift_service.buffers import Buffers
from monitoring.drift_service.checkpoint import CheckpointStore
from monitoring.drift_service.metrics import DriftMetrics, histogram_scores
from monitoring.payloads.cloudevents import CloudEvent, parse_http_event
from monitoring.payloads.errors import EventError
from monitoring.payloads.logged import Key, LoggedInference, TensorLayout, logged_inference

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
    ) -> None:
        self.detectors = dict(detectors)
        self.quality = quality  # logs predictions and joins delayed outcomes (monitoring/quality)
        self.metrics = metrics or DriftMetrics()
        self.buffers = Buffers(buffer_size, max_age_s, max_pending, clock)
        self.max_age_s = max_age_s
        self.checkpoints = checkpoints
        self.clock = clock
        self._layouts = {
            key: TensorLayout(tuple(detector.features), detector.model_encoding)
            for key, detector in self.detectors.items()
        }
        self._run_lock = threading.Lock()  # one detector run at a time: detectors are not thread-safe
        for model, version in self.detectors:
            self.metrics.register_detector(model, version)
        self._restore_checkpoints()
        if quality is not None:
            quality.start(self.detectors)
        self.ready = True

    def _restore_checkpoints(self) -> None:
        if self.checkpoints is None:
            return
        for (model, version), detector in self.detectors.items():
            state = self.checkpoints.load(model, version) if detector.online else None
            if state:
                detector.restore(state)
                log.info("restored %s version %s from %s", model, version, self.checkpoints.folder)

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
        logged = logged_inference(event, self._layouts)
        if logged.kind == "response":
            return self._take_response(logged)
        return self._take_request(logged)

    def _take_response(self, logged: LoggedInference) -> Accepted:
        self.metrics.count_received(logged.model, logged.version, "response")
        self.metrics.observe_scores(logged.model, logged.version, histogram_scores(logged.scores))
        if self.quality is not None:
            self.quality.observe_response(logged)
        return Accepted(logged.model, logged.version, "response", 0, 0)

    def _take_request(self, logged: LoggedInference) -> Accepted:
        model, version = logged.key
        detector = self.detectors.get(logged.key) if logged.version_named else None
        if detector is None:
            reason = "no_detector" if logged.version_named else "unknown_version"
            self.metrics.count_received(model, version, "request")
            self.metrics.count_dropped(model, version, reason, logged.row_count)
            if self.quality is not None:
                self.quality.observe_request(logged)
            return Accepted(model, version, "request", 0, logged.row_count)
        rows = _detector_columns(logged.rows, detector)  # decoded with this detector's layout: not None
        if self.quality is not None:
            self.quality.observe_request(logged)
        self.metrics.count_received(model, version, "request")
        dropped = self.buffers.add(logged.key, rows)
        self.metrics.count_dropped(model, version, "buffer_full", dropped)
        return Accepted(model, version, "request", len(rows) - dropped, dropped)

    # ------------------------------------------------------------------------------------ detector runs
    def run_due(self) -> list[RunReport]:
        """Score every due window (full, or older than max_age_s); called by the flusher thread."""
        with self._run_lock:
            return [self._run(key, window) for key, window in self.buffers.take_due()]

    def _run(self, key: Key, window: pd.DataFrame) -> RunReport:
        model, version = key
        detector = self.detectors[key]
        started = time.perf_counter()
        try:
            result = detector.score(window)
        except Exception as exc:  # a detector bug must cost its window, not the service
            log.exception("detector %s version %s failed on %d rows", model, version, len(window))
            self.metrics.count_dropped(model, version, "detector_error", len(window))
            return RunReport(model, version, len(window), None, f"{type(exc).__name__}: {exc}")
        self.metrics.record_run(model, version, result, self.clock(), time.perf_counter() - started)
        if detector.online and self.checkpoints is not None:
            self._checkpoint(model, version, detector)
        return RunReport(model, version, len(window), result)

    def _checkpoint(self, model: str, version: str, detector: DriftDetector) -> None:
        try:
            self.checkpoints.save(model, version, detector.state())  # type: ignore[union-attr]
        except (OSError, TypeError, ValueError):  # the run's metrics stand; the next run retries the save
            log.exception("checkpoint for %s version %s failed", model, version)


def _detector_columns(rows: pd.DataFrame, detector: DriftDetector) -> pd.DataFrame:
    missing = [name for name in detector.features if name not in rows.columns]
    if missing:
        raise EventError(
            "bad_payload",
            f"OIP inputs: missing column {missing[0]!r} for {detector.model} {detector.version}",
        )
    return rows[list(detector.features)]
