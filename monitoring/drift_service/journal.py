"""The write-ahead journal of acknowledged rows: the drift service answers an event 2xx only after its
detector rows are written here, so a process that dies before their window is scored (`kill -9`, an OOM
kill, a node drain past the grace period) loses none of them: the next start replays every row after the
checkpoint's `rows_scored` (`monitoring/drift_service/checkpoint.py`).

Layout: `<folder>/<model>/<version>/` holds `key.json` ({"model", "version"}: the names as given, since
path segments are sanitised) and segments `<first row, 20 digits>.jsonl`, one line per event:
`{"row": index of its first row, "columns": [...], "dtypes": [...], "data": [[column values], ...]}`.
Row indices count every row journaled for the (model, version), from 0, without gaps.

Each line goes to the kernel in one unbuffered `write` before the answer, which survives the process's
death; `fsync` (the disk surviving the machine's) runs on every append with `fsync=True`, else when the
flusher calls `sync` (about once a second). A line cut short (the machine died mid-write; never answered)
is cut off at the next open; an unreadable line in between is skipped and its rows reported lost, so the
caller counts them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monitoring.drift_service.checkpoint import safe_name
from monitoring.payloads.logged import Key
from monitoring.payloads.rows import DTYPES, RowBlock

log = logging.getLogger(__name__)

SEGMENT_BYTES = 4 << 20  # a new segment past this size; scored segments are deleted whole
KEY_FILE = "key.json"


class JournalError(OSError):
    """The journal cannot take a write (disk full, permissions): the event must not be acknowledged."""


@dataclass(frozen=True)
class Replay:
    chunks: list[tuple[int, RowBlock]]  # (first row index, rows), every row at or after `start`
    next_row: int  # the index the next journaled row gets
    lost: int  # rows at or after `start` on unreadable lines


class KeyJournal:
    """One (model, version)'s segments. Appends come from request threads (under the buffers' lock, which
    keeps row indices in order), compaction and syncs from the flusher: `_lock` keeps them apart."""

    def __init__(self, folder: Path, key: Key, fsync: bool) -> None:
        self.folder, self.key, self.fsync = folder, key, fsync
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        key_file = folder / KEY_FILE
        if not key_file.is_file():
            key_file.write_text(json.dumps({"model": key[0], "version": key[1]}), encoding="utf-8")
        self._segments = sorted(int(path.stem) for path in folder.glob("*.jsonl") if path.stem.isdigit())
        self._file: Any = None  # the open last segment (FileIO: every write is one system call)
        self._size = 0  # the open segment's length in bytes

    def _path(self, first_row: int) -> Path:
        return self.folder / f"{first_row:020d}.jsonl"

    def replay(self, start: int) -> Replay:
        """Every row at or after `start`; cuts off a torn last line so appends follow a whole one."""
        with self._lock:
            return self._replay(start)

    def _replay(self, start: int) -> Replay:
        chunks: list[tuple[int, RowBlock]] = []
        expected, lost = start, 0
        for position, first in enumerate(self._segments):
            path = self._path(first)
            data = path.read_bytes()
            good_end = 0
            for line in data.splitlines(keepends=True):
                entry = _parse(line) if line.endswith(b"\n") else None
                if entry is None:
                    if position == len(self._segments) - 1 and good_end + len(line) == len(data):
                        log.warning("journal %s: a torn last line (%d bytes) cut off", path, len(line))
                        with path.open("r+b") as handle:
                            handle.truncate(good_end)
                        break
                    log.error("journal %s: an unreadable line at byte %d skipped", path, good_end)
                    good_end += len(line)
                    continue
                good_end += len(line)
                row, rows = entry
                lost += max(0, row - max(expected, start))  # a gap: rows of an unreadable line
                expected = max(expected, row + len(rows))
                if row + len(rows) > start:
                    chunks.append((max(row, start), rows.slice(start - row)))
        return Replay(chunks, max(expected, start), lost)

    def append(self, first_row: int, rows: RowBlock | bytes) -> None:
        """Write one event's rows (indices from `first_row`; the rows or `encode_rows` of them, which a
        caller can run before it takes its own lock); JournalError when they are not written."""
        encoded = rows if isinstance(rows, bytes) else encode_rows(rows)
        line = b'{"row":%d,' % first_row + encoded
        with self._lock:
            self._append(first_row, line)

    def _append(self, first_row: int, line: bytes) -> None:
        try:
            if self._file is None or self._size >= SEGMENT_BYTES:
                self._open_segment(first_row)
            before = self._size  # kept here, not asked of the file: `tell` is a system call per event
        except OSError as exc:
            raise JournalError(f"journal {self.folder}: {exc}") from exc
        try:
            written = self._file.write(line)
            if written != len(line):
                raise OSError(f"short write ({written} of {len(line)} bytes)")
            self._size += written
            if self.fsync:
                os.fsync(self._file.fileno())
        except OSError as exc:
            try:  # leave the segment ending in a whole line, so the next append is readable
                self._file.truncate(before)
                self._file.seek(before)
                self._size = before
            except OSError:
                self._file.close()
                self._file = None  # the next append starts a new segment
            raise JournalError(f"journal {self.folder}: {exc}") from exc

    def _open_segment(self, first_row: int) -> None:
        if self._file is not None:  # the current segment is full: seal it
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
        elif self._segments and self._path(self._segments[-1]).stat().st_size < SEGMENT_BYTES:
            first_row = self._segments[-1]  # the first append since start: go on with the last segment
        if not self._segments or self._segments[-1] != first_row:
            self._segments.append(first_row)
        self._file = self._path(first_row).open("ab", buffering=0)
        self._size = self._file.seek(0, os.SEEK_END)

    def compact(self, rows_scored: int) -> None:
        """Delete the segments whose rows are all scored (the next segment starts at or before it)."""
        with self._lock:
            while len(self._segments) > 1 and self._segments[1] <= rows_scored:
                self._path(self._segments.pop(0)).unlink(missing_ok=True)

    def sync(self) -> None:
        with self._lock:
            if self._file is not None:
                os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                os.fsync(self._file.fileno())
                self._file.close()
                self._file = None


class Journal:
    """The journals of every (model, version) under one folder; the caller serialises per key."""

    def __init__(self, folder: str | Path, fsync: bool = False) -> None:
        self.folder = Path(folder)
        self.fsync = fsync
        self._keys: dict[Key, KeyJournal] = {}
        self._lock = threading.Lock()  # guards the dict; each KeyJournal is guarded by its caller

    def for_key(self, key: Key) -> KeyJournal:
        with self._lock:
            journal = self._keys.get(key)
            if journal is None:
                folder = self.folder / safe_name(key[0]) / safe_name(key[1])
                try:
                    journal = self._keys[key] = KeyJournal(folder, key, self.fsync)
                except OSError as exc:
                    raise JournalError(f"journal {folder}: {exc}") from exc
            return journal

    def keys_on_disk(self) -> list[Key]:
        """Every (model, version) that has a journal folder, by its `key.json`."""
        keys = []
        for key_file in sorted(self.folder.glob(f"*/*/{KEY_FILE}")):
            try:
                names = json.loads(key_file.read_text(encoding="utf-8"))
                keys.append((str(names["model"]), str(names["version"])))
            except (OSError, ValueError, KeyError, TypeError):
                log.error("journal %s: unreadable, its folder is ignored", key_file)
        return keys

    def discard(self, key: Key) -> None:
        """Forget a (model, version) whose rows can no longer be scored (the caller counted them)."""
        journal = self.for_key(key)
        journal.close()
        for path in journal.folder.iterdir():
            path.unlink(missing_ok=True)
        journal.folder.rmdir()
        with self._lock:
            self._keys.pop(key, None)

    def sync(self) -> None:
        with self._lock:
            journals = list(self._keys.values())
        for journal in journals:
            journal.sync()

    def close(self) -> None:
        with self._lock:
            journals = list(self._keys.values())
        for journal in journals:
            journal.close()


def encode_rows(rows: RowBlock) -> bytes:
    """A journal line without its leading `{"row":N,` (pure CPU: callers run it outside their locks)."""
    document = {"columns": rows.columns, "dtypes": rows.dtypes, "data": rows.data}
    return json.dumps(document, separators=(",", ":"))[1:].encode("utf-8") + b"\n"


def _parse(line: bytes) -> tuple[int, RowBlock] | None:
    try:
        entry = json.loads(line)
        columns, dtypes, data, row = entry["columns"], entry["dtypes"], entry["data"], entry["row"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(row, int) or isinstance(row, bool) or row < 0:
        return None
    shaped = [isinstance(item, list) for item in (columns, dtypes, data)]
    if not all(shaped) or not len(columns) == len(dtypes) == len(data) or not columns:
        return None
    sizes = {len(column) if isinstance(column, list) else -1 for column in data}
    if len(sizes) != 1 or -1 in sizes or not all(dtype in DTYPES for dtype in dtypes):
        return None
    try:  # a line that parses but holds values its dtypes cannot take would fail its whole window later
        for column, dtype in zip(data, dtypes, strict=True):
            np.array(column, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        return None
    return row, RowBlock(tuple(map(str, columns)), tuple(dtypes), tuple(data), sizes.pop())
