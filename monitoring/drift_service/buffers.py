"""Per (model, version) row buffers between the HTTP handler and the detector runs.

A buffer is due when it holds `buffer_size` rows (a full window; it gives exactly that many) or when its
oldest row is older than `max_age_s` (it gives everything, so quiet models still get scored). At most
`max_pending` rows wait per buffer; rows beyond that are dropped and the caller counts them.

Every row kept gets an index, counting per (model, version) from the first row ever kept, so a window
says where it ends (`Window.end_row`, the checkpoint's `rows_scored` once it is scored). With a journal,
rows are written to it under the same lock before they are queued (and before the event is answered).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from monitoring.drift_service.journal import Journal, encode_rows
from monitoring.payloads.logged import Key
from monitoring.payloads.rows import RowBlock, frame_of


@dataclass
class _Chunk:
    arrived: float
    first_row: int
    rows: RowBlock


@dataclass(frozen=True)
class Window:
    key: Key
    rows: pd.DataFrame
    end_row: int  # the index after its last row: every row before it is taken once this one is scored


class WindowBuffer:
    def __init__(self, buffer_size: int, max_age_s: float, max_pending: int) -> None:
        if buffer_size < 1 or max_pending < buffer_size or max_age_s <= 0:
            raise ValueError(
                f"buffer: need buffer_size >= 1, max_pending >= buffer_size and max_age_s > 0, got "
                f"{buffer_size}, {max_pending}, {max_age_s}"
            )
        self.buffer_size = buffer_size
        self.max_age_s = max_age_s
        self.max_pending = max_pending
        self._chunks: deque[_Chunk] = deque()
        self.pending = 0
        self.next_row = 0  # the index the next kept row gets

    def room(self) -> int:
        return max(self.max_pending - self.pending, 0)

    def add(self, rows: RowBlock, now: float, first_row: int | None = None) -> int:
        """Queue rows (indices from `first_row`, default the next); returns how many were dropped."""
        kept = fitting(rows, self.room())
        if len(kept):
            first = self.next_row if first_row is None else first_row
            self._chunks.append(_Chunk(now, first, kept))
            self.pending += len(kept)
            self.next_row = first + len(kept)
        return len(rows) - len(kept)

    def is_due(self, now: float) -> bool:
        if self.pending >= self.buffer_size:
            return True
        return bool(self._chunks) and now - self._chunks[0].arrived >= self.max_age_s

    def take(self, now: float, force: bool = False) -> tuple[pd.DataFrame, int] | None:
        """The next window to score and its end row, or None when the buffer is not due (or empty)."""
        if not self.pending or not (force or self.is_due(now)):
            return None
        wanted = min(self.buffer_size, self.pending)
        parts: list[RowBlock] = []
        end_row = 0
        while wanted:
            chunk = self._chunks.popleft()
            part, rest = chunk.rows.slice(0, wanted), chunk.rows.slice(wanted)
            if len(rest):  # the rest keeps its arrival time, so its age still counts
                self._chunks.appendleft(_Chunk(chunk.arrived, chunk.first_row + len(part), rest))
            parts.append(part)
            wanted -= len(part)
            end_row = chunk.first_row + len(part)
        window = frame_of(parts)  # one DataFrame per window, not per event
        self.pending -= len(window)
        return window, end_row


def fitting(rows: RowBlock, room: int) -> RowBlock:
    """The first `room` rows (the block itself when all fit)."""
    return rows.slice(0, room)


class Buffers:
    """Thread-safe buffers by key; `wakeup` is set when a buffer fills, so the flusher need not poll."""

    def __init__(
        self,
        buffer_size: int,
        max_age_s: float,
        max_pending: int,
        clock: Callable[[], float],
        journal: Journal | None = None,
    ) -> None:
        WindowBuffer(buffer_size, max_age_s, max_pending)  # validate the settings once, up front
        self._settings = (buffer_size, max_age_s, max_pending)
        self.buffer_size = buffer_size
        self._clock = clock
        self.journal = journal
        self._buffers: dict[Key, WindowBuffer] = {}
        self._lock = threading.Lock()
        self.wakeup = threading.Event()

    def _buffer(self, key: Key) -> WindowBuffer:
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = WindowBuffer(*self._settings)
        return buffer

    def add(self, key: Key, rows: RowBlock, before_write: Callable[[int, int], None] | None = None) -> int:
        """Journal (if any) and queue the rows that fit; returns how many were dropped. JournalError:
        nothing was queued, and the event must not be acknowledged. `before_write(first_row, kept)` runs
        under the lock just before the journal write (the payload-store ledger records where an object's
        rows go); what it raises leaves nothing written."""
        # Encoded before the lock: only the write itself runs under it (threads hand the event in).
        encoded = encode_rows(rows) if self.journal is not None and len(rows) else None
        with self._lock:
            buffer = self._buffer(key)
            kept = fitting(rows, buffer.room())
            if before_write is not None and len(kept):
                before_write(buffer.next_row, len(kept))
            if len(kept) and self.journal is not None:
                whole = len(kept) == len(rows) and encoded is not None
                self.journal.for_key(key).append(buffer.next_row, encoded if whole else kept)
            dropped = buffer.add(rows, self._clock())
            full = buffer.pending >= buffer.buffer_size
        if full:
            self.wakeup.set()
        return dropped

    def resume(self, key: Key, rows_scored: int, chunks: list[tuple[int, RowBlock]], next_row: int) -> int:
        """At start: queue rows replayed from the journal (not journaled again) after the checkpoint's
        `rows_scored`; returns how many did not fit (dropped)."""
        with self._lock:
            buffer = self._buffer(key)
            buffer.next_row = rows_scored
            dropped = sum(buffer.add(rows, self._clock(), first_row) for first_row, rows in chunks)
            buffer.next_row = max(next_row, buffer.next_row)
        return dropped

    def take_full(self, key: Key) -> list[Window]:
        """The full windows of one buffer (none while it holds fewer than `buffer_size` rows)."""
        now = self._clock()
        windows: list[Window] = []
        with self._lock:
            buffer = self._buffers.get(key)
            while buffer is not None and buffer.pending >= buffer.buffer_size:
                taken = buffer.take(now)
                if taken is None:
                    break
                windows.append(Window(key, *taken))
        return windows

    def take_due(self, force: bool = False) -> list[Window]:
        """Every due window (every pending row with `force`), oldest keys first; a buffer holding
        several windows gives them all."""
        now = self._clock()
        windows: list[Window] = []
        with self._lock:
            for key, buffer in self._buffers.items():
                while (taken := buffer.take(now, force)) is not None:
                    windows.append(Window(key, *taken))
        return windows

    def next_row(self, key: Key) -> int:
        """The index the key's next kept row gets: every row below it is journaled (or scored)."""
        with self._lock:
            buffer = self._buffers.get(key)
            return buffer.next_row if buffer else 0

    def room(self, key: Key) -> int:
        """How many more rows the key's buffer takes before it drops."""
        with self._lock:
            buffer = self._buffers.get(key)
            return buffer.room() if buffer else self._settings[2]

    def pending(self, key: Key) -> int:
        with self._lock:
            buffer = self._buffers.get(key)
            return buffer.pending if buffer else 0
