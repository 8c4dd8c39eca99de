"""Logged predictions keyed by request id, in sqlite, until their delayed outcome arrives.

One table row per prediction row: a request with N rows (a batched OIP request) gives N table rows with
`row` 0..N-1. The request event fills the decoded inputs, the response event the probabilities; either
may arrive first (KServe's logger posts them independently). An outcome labels a row once.

Bounded by age (`max_age_s`, counted from when the request arrived) and by count (`max_rows`, oldest go
first), so a model whose labels never come cannot fill the disk. The file lives under the drift service's
state dir, so a restart keeps the predictions still waiting for their outcome. Plain sqlite3 + JSON: the
report job (platform env) reads the same file with this module.

Writes are batched: `log_request` / `log_response` append to a write-ahead log (`write_log.py`) and `flush`
commits everything logged since the last one in one transaction (every read flushes first).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitoring.quality.write_log import Entry, WriteLog

log = logging.getLogger(__name__)

DB_FILE = "quality.sqlite"
DEFAULT_MAX_ROWS = 200_000
DEFAULT_MAX_AGE_S = 8 * 86_400.0  # the demo's labels arrive within 7 days of the prediction
PRUNE_EVERY_S = 5.0

LOG_FOLDER = "pending"  # under the state dir: logged events not yet committed (write_log.py)
_UPSERT = {
    "request": "INSERT INTO predictions (ce_id, row, request_id, model, version, received_at,"
    " rows_in_request, features) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ce_id, row) DO UPDATE SET"
    " features = excluded.features, rows_in_request = excluded.rows_in_request,"
    " request_id = excluded.request_id",
    "response": "INSERT INTO predictions (ce_id, row, request_id, model, version, received_at, proba)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ce_id, row) DO UPDATE SET proba = excluded.proba",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    ce_id TEXT NOT NULL,
    row INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    received_at REAL NOT NULL,
    rows_in_request INTEGER,
    features TEXT,
    proba TEXT,
    label INTEGER,
    labeled_at REAL,
    observed_at REAL,
    PRIMARY KEY (ce_id, row)
);
CREATE INDEX IF NOT EXISTS predictions_request ON predictions (request_id);
CREATE INDEX IF NOT EXISTS predictions_received ON predictions (received_at);
CREATE INDEX IF NOT EXISTS predictions_labeled ON predictions (model, version, labeled_at);
"""


@dataclass(frozen=True)
class StoredRow:
    ce_id: str
    row: int
    request_id: str
    model: str
    version: str
    rows_in_request: int | None
    proba: list[float] | None
    label: int | None


class PredictionStore:
    """Thread-safe: the HTTP handlers and the flusher share one connection under a lock."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        max_rows: int = DEFAULT_MAX_ROWS,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        log_folder: str | Path | None = None,
    ) -> None:
        if max_rows < 1 or max_age_s <= 0:
            raise ValueError(
                f"prediction store: need max_rows >= 1 and max_age_s > 0, got {max_rows}, {max_age_s}"
            )
        self.path = str(path)
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")  # the report job may read while the service writes
        self._db.executescript(_SCHEMA)
        self._last_prune = 0.0
        # Writes go through the log and reach sqlite in batches (`flush`); a crash's leftovers first.
        self._log = WriteLog(log_folder)
        entries, upto = self._log.replay()
        if entries:
            self._apply(entries)
            log.info("prediction store: %d logged events recovered from %s", len(entries), log_folder)
        self._log.committed(upto)

    @classmethod
    def in_folder(cls, folder: str | Path, **bounds: Any) -> PredictionStore:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder / DB_FILE, log_folder=folder / LOG_FOLDER, **bounds)

    def close(self) -> None:
        with self._lock:
            self._flush()
            self._log.close()
            self._db.close()

    # ------------------------------------------------------------------------------------------ writes
    def log_request(
        self, ce_id: str, request_id: str, model: str, version: str, rows: Sequence[dict | None], now: float
    ) -> None:
        """The decoded input rows of a request (None where the inputs could not be decoded)."""
        values = [
            (ce_id, i, request_id, model, version, now, len(rows), _dumps(row)) for i, row in enumerate(rows)
        ]
        self._log.append("request", values)

    def log_response(
        self,
        ce_id: str,
        request_id: str,
        model: str,
        version: str,
        proba: Sequence[Sequence[float]],
        now: float,
    ) -> None:
        """The model's class probabilities per row; the request's payload id wins over the response's."""
        values = [
            (ce_id, i, request_id, model, version, now, json.dumps([float(p) for p in row]))
            for i, row in enumerate(proba)
        ]
        self._log.append("response", values)

    def set_labels(self, labels: Iterable[tuple[str, int, int, float, float | None]]) -> None:
        """(ce_id, row, label, labeled_at, observed_at) for rows `matching` returned unlabeled; the window
        runs on `labeled_at` (arrival), `observed_at` is the client's time of the outcome."""
        with self._lock:
            self._flush()
            self._db.executemany(
                "UPDATE predictions SET label = ?, labeled_at = ?, observed_at = ?"
                " WHERE ce_id = ? AND row = ? AND label IS NULL",
                [(label, at, observed, ce_id, row) for ce_id, row, label, at, observed in labels],
            )

    def flush(self, now: float) -> None:
        """Commit what was logged since the last flush (the drift service's flusher, about once a second;
        every read flushes first, so it sees every acknowledged event)."""
        with self._lock:
            self._flush(now)

    def _flush(self, now: float | None = None) -> None:
        """Commit the logged batch; with `now`, also prune when PRUNE_EVERY_S has passed (reads flush
        without: their caller's clock is not the store's)."""
        entries, upto = self._log.take()
        if entries:
            self._apply(entries)
        self._log.committed(upto)
        if now is not None and now - self._last_prune >= PRUNE_EVERY_S:
            self._prune(now)
            self._last_prune = now

    def _apply(self, entries: list[Entry]) -> None:
        """One transaction for the whole batch, in logged order (a request may follow its response)."""
        self._db.execute("BEGIN")
        try:
            for kind, values in entries:
                self._db.executemany(_UPSERT[kind], values)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _prune(self, now: float) -> None:
        self._db.execute("DELETE FROM predictions WHERE received_at < ?", (now - self.max_age_s,))
        (count,) = self._db.execute("SELECT COUNT(*) FROM predictions").fetchone()
        if count > self.max_rows:
            self._db.execute(
                "DELETE FROM predictions WHERE rowid IN"
                " (SELECT rowid FROM predictions ORDER BY received_at LIMIT ?)",
                (count - self.max_rows,),
            )

    def prune(self, now: float) -> None:
        with self._lock:
            self._flush()
            self._prune(now)

    # ------------------------------------------------------------------------------------------- reads
    def matching(self, request_id: str) -> list[StoredRow]:
        """Rows whose payload id or CloudEvent id is `request_id` (any model and version)."""
        with self._lock:
            self._flush()
            found = self._db.execute(
                "SELECT ce_id, row, request_id, model, version, rows_in_request, proba, label"
                " FROM predictions WHERE request_id = ? OR ce_id = ? ORDER BY ce_id, row",
                (request_id, request_id),
            ).fetchall()
        return [StoredRow(*row[:6], _loads(row[6]), row[7]) for row in found]

    def labeled_window(
        self, model: str, version: str, size: int, since: float
    ) -> tuple[list[int], list[list[float]], list[str]]:
        """The newest `size` labeled rows with a prediction, labeled at or after `since`: their labels,
        predictions and request (CloudEvent) ids."""
        with self._lock:
            self._flush()
            found = self._db.execute(
                "SELECT label, proba, ce_id FROM predictions WHERE model = ? AND version = ?"
                " AND labeled_at >= ? AND proba IS NOT NULL ORDER BY labeled_at DESC, ce_id, row LIMIT ?",
                (model, version, since, size),
            ).fetchall()
        return [row[0] for row in found], [json.loads(row[1]) for row in found], [row[2] for row in found]

    def labeled_counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            self._flush()
            found = self._db.execute(
                "SELECT model, version, COUNT(*) FROM predictions WHERE label IS NOT NULL GROUP BY 1, 2"
            ).fetchall()
        return {(model, version): count for model, version, count in found}

    def recent(
        self, model: str, version: str | None = None, since: float = 0.0, limit: int = 10_000
    ) -> list[dict[str, Any]]:
        """Recent rows of a model (newest first) as JSON-ready dicts, for the monitoring reports."""
        where, params = "model = ? AND received_at >= ?", [model, since]
        if version is not None:
            where += " AND version = ?"
            params.append(version)
        with self._lock:
            self._flush()
            found = self._db.execute(
                "SELECT request_id, row, version, received_at, features, proba, label, labeled_at,"
                f" observed_at FROM predictions WHERE {where} ORDER BY received_at DESC, ce_id, row LIMIT ?",
                (*params, limit),
            ).fetchall()
        keys = (
            "request_id",
            "row",
            "version",
            "received_at",
            "features",
            "proba",
            "label",
            "labeled_at",
            "observed_at",
        )
        rows = [dict(zip(keys, row, strict=True)) for row in found]
        for row in rows:
            row["features"], row["proba"] = _loads(row["features"]), _loads(row["proba"])
        return rows


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
