"""Which payload-log objects the drift service has read, and where each one's rows went in the journal: what
makes reading KServe's batched logs exactly once across crashes.

An object is `begun` before its first rows are queued, each piece of rows is recorded (model, version, the
journal row index it starts at, how many) under the buffers' lock just before its journal write, and the
object is `done` after its last piece. After a crash a begun object is read again: a recorded piece whose
first row is below the key's next row (what the journal replay found) reached the journal and is skipped,
every later row is queued again. So the journal, not the ledger, decides what was stored: a piece the
ledger recorded but the journal lost (a torn line) is queued again, and nothing is queued twice.

An object that cannot be read as a payload log is `rejected` with its one-line reason and not read again.
SQLite in the journal's folder (a PVC on the cluster); one writer, the payload-store lane.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from monitoring.payloads.logged import Key

FILE_NAME = "payload-store.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    name TEXT PRIMARY KEY, state TEXT NOT NULL, rows INTEGER NOT NULL, detail TEXT, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pieces (
    name TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, first_row INTEGER NOT NULL,
    rows INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS pieces_by_name ON pieces (name);
"""


class ObjectLedger:
    def __init__(self, folder: str | Path) -> None:
        path = Path(folder) / FILE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: the lane's thread writes, tests and the service's start read
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Survives the process's crash like the journal's unsynced writes; a lost commit only re-reads
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        finished = self._db.execute("SELECT name FROM objects WHERE state != 'begun'")
        self._finished = {name for (name,) in finished}

    def finished(self, name: str) -> bool:
        """Done or rejected: never read again."""
        return name in self._finished

    def begun(self) -> list[str]:
        """Objects a crash interrupted, oldest first."""
        rows = self._db.execute("SELECT name FROM objects WHERE state = 'begun' ORDER BY at")
        return [name for (name,) in rows]

    def state(self, name: str) -> str | None:
        row = self._db.execute("SELECT state FROM objects WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def begin(self, name: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO objects (name, state, rows, at) VALUES (?, 'begun', 0, ?)",
                (name, time.time()),
            )

    def record_piece(self, name: str, key: Key, first_row: int, rows: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO pieces (name, model, version, first_row, rows) VALUES (?, ?, ?, ?, ?)",
                (name, *key, first_row, rows),
            )

    def stored_rows(self, name: str, key: Key, next_row: int) -> int:
        """How many of the object's rows for `key` reached the journal, given the key's next row index."""
        row = self._db.execute(
            "SELECT COALESCE(SUM(rows), 0) FROM pieces "
            "WHERE name = ? AND model = ? AND version = ? AND first_row < ?",
            (name, *key, next_row),
        ).fetchone()
        return int(row[0])

    def finish(self, name: str, rows: int) -> None:
        self._end(name, "done", rows, None)

    def reject(self, name: str, reason: str) -> None:
        self._end(name, "rejected", 0, reason)

    def _end(self, name: str, state: str, rows: int, detail: str | None) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO objects (name, state, rows, detail, at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET state = excluded.state, rows = excluded.rows, "
                "detail = excluded.detail, at = excluded.at",
                (name, state, rows, detail, time.time()),
            )
            self._db.execute("DELETE FROM pieces WHERE name = ?", (name,))
            self._db.execute("COMMIT")
            self._finished.add(name)

    def close(self) -> None:
        self._db.close()
