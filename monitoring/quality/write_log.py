"""Logged predictions on their way into the prediction store, written in batches instead of one sqlite
transaction per event.

One transaction per logged event cost about 55 us in memory and an fsync per event on disk (sqlite's WAL at
its default `synchronous=FULL`): the largest cost of a CloudEvent in the drift service. Now each event's
rows are appended to this log (one unbuffered `write`, so they outlive the process, as the drift journal's
lines do) and kept in memory; the flusher hands them to the store about once a second (`take`, which
`fsync`s and seals the segment, so a machine crash loses at most that second, as with the journal), the store
commits them in one transaction, then deletes the segments it has committed (`committed`). At start the
store applies whatever a crash left in the log (`replay`): the store's writes are upserts, so a batch
applied twice leaves the same rows, and nothing acknowledged is lost or repeated.

Layout: `<folder>/<n>.jsonl`, one line per event: `[kind, [[column values], ...]]`. Without a folder (the
in-memory store) the log is memory only.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Entry = tuple[str, list[tuple[Any, ...]]]  # (kind: "request" or "response", the rows' column values)


class WriteLogError(OSError):
    """The log cannot take a write (disk full, permissions): the event must not be acknowledged."""


class WriteLog:
    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self._lock = threading.Lock()
        self._pending: list[Entry] = []
        self._segment = 0
        self._file: Any = None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._segment = max(self._segments(), default=0) + 1

    def _segments(self) -> list[int]:
        assert self.folder is not None
        return sorted(int(path.stem) for path in self.folder.glob("*.jsonl") if path.stem.isdigit())

    def _path(self, segment: int) -> Path:
        assert self.folder is not None
        return self.folder / f"{segment:012d}.jsonl"

    def append(self, kind: str, rows: list[tuple[Any, ...]]) -> None:
        line = None
        if self.folder is not None:  # encoded outside the lock
            line = (json.dumps([kind, rows], separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            if line is not None:
                self._write(line)
            self._pending.append((kind, rows))

    def _write(self, line: bytes) -> None:
        try:
            if self._file is None:
                self._file = self._path(self._segment).open("ab", buffering=0)
            written = self._file.write(line)
            if written != len(line):
                raise OSError(f"short write ({written} of {len(line)} bytes)")
        except OSError as exc:  # the next write starts a new segment: this one may end in a torn line
            self._close()
            self._segment += 1
            raise WriteLogError(f"prediction log {self.folder}: {exc}") from exc

    def take(self) -> tuple[list[Entry], int | None]:
        """Everything logged since the last take, and the segment it was written up to (None: no segment
        was written since); appends go on in a new one."""
        with self._lock:
            taken, self._pending = self._pending, []
            if self._file is None:
                return taken, None
            upto = self._segment
            self._close()
            self._segment += 1
            return taken, upto

    def committed(self, upto: int | None) -> None:
        """The store holds every entry of the segments up to `upto`: delete them."""
        if self.folder is None or upto is None:
            return
        for segment in self._segments():
            if segment <= upto:
                self._path(segment).unlink(missing_ok=True)

    def replay(self) -> tuple[list[Entry], int]:
        """What earlier processes wrote and the store may not hold, and the last segment it came from;
        a torn or unreadable line (never acknowledged: the process died mid-write) is skipped."""
        if self.folder is None:
            return [], 0
        entries: list[Entry] = []
        segments = [segment for segment in self._segments() if segment < self._segment]
        for segment in segments:
            for line in self._path(segment).read_bytes().splitlines():
                try:
                    kind, rows = json.loads(line)
                    entries.append((str(kind), [tuple(row) for row in rows]))
                except (ValueError, TypeError):
                    log.warning("prediction log %s: an unreadable line skipped", self._path(segment))
        return entries, max(segments, default=0)

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._file is not None:
            try:
                os.fsync(self._file.fileno())
                self._file.close()
            except OSError:
                log.exception("prediction log %s: closing a segment failed", self.folder)
            self._file = None
