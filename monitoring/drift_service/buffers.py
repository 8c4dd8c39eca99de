"""Per (model, version) row buffers between the HTTP handler and the detector runs.

A buffer is due when it holds `buffer_size` rows (a full window; it gives exactly that many) or when its
oldest row is older than `max_age_s` (it gives everything, so quiet models still get scored). At most
`max_pending` rows wait per buffer; rows beyond that are dropped and the caller counts them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from monitoring.payloads.logged import Key


@dataclass
class _Chunk:
    arrived: float
    rows: pd.DataFrame


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

    def add(self, rows: pd.DataFrame, now: float) -> int:
        """Queue rows; returns how many did not fit and were dropped."""
        room = max(self.max_pending - self.pending, 0)
        kept = rows.iloc[:room]
        if len(kept):
            self._chunks.append(_Chunk(now, kept))
            self.pending += len(kept)
        return len(rows) - len(kept)

    def is_due(self, now: float) -> bool:
        if self.pending >= self.buffer_size:
            return True
        return bool(self._chunks) and now - self._chunks[0].arrived >= self.max_age_s

    def take(self, now: float) -> pd.DataFrame | None:
        """The next window to score, or None when the buffer is not due."""
        if not self.is_due(now):
            return None
        wanted = min(self.buffer_size, self.pending)
        parts: list[pd.DataFrame] = []
        while wanted:
            chunk = self._chunks.popleft()
            part, rest = chunk.rows.iloc[:wanted], chunk.rows.iloc[wanted:]
            if len(rest):  # the rest keeps its arrival time, so its age still counts
                self._chunks.appendleft(_Chunk(chunk.arrived, rest))
            parts.append(part)
            wanted -= len(part)
        window = pd.concat(parts, ignore_index=True)
        self.pending -= len(window)
        return window


class Buffers:
    """Thread-safe buffers by key; `wakeup` is set when a buffer fills, so the flusher need not poll."""

    def __init__(
        self, buffer_size: int, max_age_s: float, max_pending: int, clock: Callable[[], float]
    ) -> None:
        WindowBuffer(buffer_size, max_age_s, max_pending)  # validate the settings once, up front
        self._settings = (buffer_size, max_age_s, max_pending)
        self._clock = clock
        self._buffers: dict[Key, WindowBuffer] = {}
        self._lock = threading.Lock()
        self.wakeup = threading.Event()

    def add(self, key: Key, rows: pd.DataFrame) -> int:
        with self._lock:
            buffer = self._buffers.setdefault(key, WindowBuffer(*self._settings))
            dropped = buffer.add(rows, self._clock())
            full = buffer.pending >= buffer.buffer_size
        if full:
            self.wakeup.set()
        return dropped

    def take_due(self) -> list[tuple[Key, pd.DataFrame]]:
        """Every due window, oldest keys first; a buffer holding several windows gives them all."""
        now = self._clock()
        windows: list[tuple[Key, pd.DataFrame]] = []
        with self._lock:
            for key, buffer in self._buffers.items():
                while (window := buffer.take(now)) is not None:
                    windows.append((key, window))
        return windows

    def pending(self, key: Key) -> int:
        with self._lock:
            buffer = self._buffers.get(key)
            return buffer.pending if buffer else 0
