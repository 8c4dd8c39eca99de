"""One payload-log object (a batch KServe's agent wrote to object storage) into the drift service, exactly
once: its events are decoded as the HTTP path decodes one, each detector's rows are appended in pieces of
at most a window (one journal line each, recorded in the ledger first, `object_ledger.py`), and each
filled window is scored before the next piece, so a large object never overflows a buffer.

Per event the same rules as `DriftService.ingest`: a bad record is counted as rejected by reason and the
rest of the object goes on; responses feed the score histogram and the quality tracker; rows of a version
without a detector are counted as dropped. Read again after a crash, a begun object's events are decoded
again, the quality tracker's writes (keyed by event id) are repeated harmlessly, and only the rows the
journal does not hold are queued (the `received` counter counts that object's events twice).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from monitoring.drift_service.object_ledger import ObjectLedger
from monitoring.drift_service.service import DriftService
from monitoring.payloads.cloudevents import CloudEvent
from monitoring.payloads.errors import EventError
from monitoring.payloads.logged import Key, logged_inference
from monitoring.payloads.rows import RowBlock, concat

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectReport:
    name: str
    events: int
    rejected: int  # records refused (bad payload, unknown model, ...)
    rows: int  # rows queued for a detector by this reading (fewer on a re-read after a crash)
    dropped: int  # rows of accepted events not queued (no detector, unknown version, buffer full)


def ingest_object(
    service: DriftService, ledger: ObjectLedger, name: str, events: list[CloudEvent]
) -> ObjectReport:
    """Queue the object's rows; JournalError or UnavailableError (journal or prediction log not writable)
    leaves it begun, to be read again."""
    ledger.begin(name)
    grouped: dict[Key, list[RowBlock]] = {}
    rejected = dropped = 0
    for event in events:
        try:
            rows = _request_rows(service, event, grouped)
        except EventError as exc:
            service.metrics.count_rejected(exc.reason)
            log.warning("%s: %s", name, exc)
            rejected += 1
            continue
        dropped += rows
    queued = 0
    for key, blocks in grouped.items():
        stored = ledger.stored_rows(name, key, service.buffers.next_row(key))
        queued_key, dropped_key = _append(service, ledger, name, key, blocks, stored)
        queued += queued_key
        dropped += dropped_key
    ledger.finish(name, sum(len(block) for blocks in grouped.values() for block in blocks))
    return ObjectReport(name, len(events), rejected, queued, dropped)


def _request_rows(service: DriftService, event: CloudEvent, grouped: dict[Key, list[RowBlock]]) -> int:
    """Decode one event; a request's rows join its detector's group. Returns rows dropped."""
    logged = logged_inference(event, service.layouts, service.rankers)
    if logged.kind == "response":
        service.take_response(logged)
        return 0
    rows = service.accepted_rows(logged)
    if rows is None:
        return logged.row_count
    service.metrics.count_received(*logged.key, "request")
    grouped.setdefault(logged.key, []).append(rows)
    return 0


def _append(
    service: DriftService, ledger: ObjectLedger, name: str, key: Key, blocks: list[RowBlock], stored: int
) -> tuple[int, int]:
    """Append the key's rows after the first `stored` (already in the journal) in window-sized pieces,
    scoring each filled window before the next; returns (rows queued, rows dropped)."""

    def record(first_row: int, rows: int) -> None:
        ledger.record_piece(name, key, first_row, rows)

    queued = dropped = 0
    for block in concat(blocks):
        skip = min(stored, len(block))
        stored -= skip
        start = skip
        while start < len(block):
            size = max(1, min(service.buffers.buffer_size, service.buffers.room(key)))
            piece = block.slice(start, start + size)
            lost = service.buffers.add(key, piece, before_write=record)
            service.metrics.count_dropped(*key, "buffer_full", lost)
            queued += len(piece) - lost
            dropped += lost
            start += len(piece)
            service.run_full(key)
    return queued, dropped
