"""The drift service's core, free of any web framework: route KServe logger events to per (model, version)
buffers, run the detector on full or old windows, export the results, and checkpoint online state.

Routing. Model: the `inferenceservicename` extension, else the payload's `model_name`; a model with no
detector for any version is rejected (400). Version, first that applies: the `modelversion` extension
(set by the local router, or by anyone who knows the registry version), the `x-model-version` header
logged in the `metadata` extension, the payload's `model_version` when a detector has it, the model's only
loaded version, else the payload's `model_version`. Triton answers with its repository version ("1"),
not the registry's, which is why it ranks below the explicit sources. A request for a version without a
detector is accepted and its rows counted as dropped (`no_detector`); responses are counted, not scored.

The detector protocol and bundle loading live in `detectors.py`, the background `Flusher` in `flusher.py`;
their names are re-exported here.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from monitoring.drift_service.buffers import Buffers, Key
from monitoring.drift_service.checkpoint import CheckpointStore
from monitoring.drift_service.detectors import (
    DriftDetector,
)
from monitoring.drift_service.errors import EventError
from monitoring.drift_service.metrics import DriftMetrics, RunResult
from monitoring.payloads.cloudevents import CloudEvent, event_json, parse_http_event
from monitoring.payloads.oip import payload_field, request_rows, response_probabilities, row_count

if TYPE_CHECKING:
    from monitoring.quality.tracker import QualityTracker

log = logging.getLogger(__name__)

DEFAULT_BUFFER_SIZE = 200
DEFAULT_MAX_AGE_S = 60.0
DEFAULT_MAX_PENDING = 10_000
VERSION_HEADER = "x-model-version"


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
    result: RunResult | None
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
        self._versions: dict[str, list[str]] = {}
        self._run_lock = threading.Lock()  # one detector run at a time: detectors are not thread-safe
        for model, version in self.detectors:
            self._versions.setdefault(model, []).append(version)
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
        payload = event_json(event)
        model = self._model_of(event, payload)
        version = self._version_of(model, event, payload)
        if event.kind == "response":
            self.metrics.count_received(model, version or "unknown", "response")
            self.metrics.observe_scores(model, version or "unknown", _scores_or_nothing(payload))
            if self.quality is not None:
                self.quality.observe_response(event.id, model, version or "unknown", payload)
            return Accepted(model, version or "unknown", "response", 0, 0)
        detector = self.detectors.get((model, version)) if version else None
        if detector is None:
            rows = row_count(payload)  # validates the payload before anything is counted
            reason = "unknown_version" if version is None else "no_detector"
            version = version or "unknown"
            self.metrics.count_received(model, version, "request")
            self.metrics.count_dropped(model, version, reason, rows)
            if self.quality is not None:
                self.quality.observe_request(event.id, model, version, payload, _rows_or_none(payload), rows)
            return Accepted(model, version, "request", 0, rows)
        decoded = request_rows(payload, detector.features, _tensor_encoding(detector))
        rows = _detector_columns(decoded, detector)
        if self.quality is not None:
            self.quality.observe_request(event.id, model, version, payload, decoded, len(decoded))
        self.metrics.count_received(model, version, "request")
        dropped = self.buffers.add((model, version), rows)
        self.metrics.count_dropped(model, version, "buffer_full", dropped)
        return Accepted(model, version, "request", len(rows) - dropped, dropped)

    def _model_of(self, event: CloudEvent, payload: Any) -> str:
        model = event.attribute("inferenceservicename") or payload_field(payload, "model_name")
        if not model:
            raise EventError(
                "unknown_model", f"CloudEvent {event.id}: no ce-inferenceservicename or model_name"
            )
        if model not in self._versions:
            raise EventError("unknown_model", f"CloudEvent {event.id}: no detector for model {model!r}")
        return model

    def _version_of(self, model: str, event: CloudEvent, payload: Any) -> str | None:
        explicit = event.attribute("modelversion") or _metadata_version(event.attribute("metadata"))
        if explicit:
            return explicit
        loaded = self._versions[model]
        from_payload = payload_field(payload, "model_version")
        if from_payload in loaded:
            return from_payload
        return loaded[0] if len(loaded) == 1 else from_payload

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


def _rows_or_none(payload: Any) -> pd.DataFrame | None:
    # Without a detector a single [n, k] tensor has no column names; its rows are logged without inputs.
    try:
        return request_rows(payload)
    except EventError:
        return None


def _metadata_version(metadata: str | None) -> str | None:
    # KServe logs selected request headers as JSON {"Header-Name": ["value", ...]}.
    if not metadata:
        return None
    try:
        headers = json.loads(metadata)
    except json.JSONDecodeError:
        return None
    if not isinstance(headers, dict):
        return None
    for name, values in headers.items():
        if str(name).lower() == VERSION_HEADER and values:
            return str(values[0] if isinstance(values, list) else values)
    return None


def _tensor_encoding(detector: Any) -> Any:
    """What decodes a logged model tensor: the model's own encoder when the detector bundle carries it."""
    return getattr(detector, "model_encoding", None) or getattr(detector, "encoding", None)


def _scores_or_nothing(payload: Any) -> list[float]:
    """The prediction scores of a response for the score histogram; a response without a probability
    output (e.g. a transformer's class names only) has none, and is still accepted."""
    try:
        probabilities = response_probabilities(payload)
    except EventError:
        return []
    if probabilities.shape[1] == 2:
        return probabilities[:, 1].tolist()
    return probabilities.max(axis=1).tolist()
