"""The trigger's memory: which alerts it has seen and which runs it started, in one sqlite file (WAL).

Every decision is one `BEGIN IMMEDIATE` transaction on a fresh connection, so concurrent webhook requests
(an Alertmanager HA pair sends the same alert twice, on purpose, at the same moment) are serialized by
sqlite itself: exactly one of them sees the alert as new.

A run is written as `pending` before it is submitted. A crash after that leaves the `pending` row;
`TriggerService.recover()` asks the submitter whether the run was started (the crash may have come after
starting it and before recording that) and watches it if so, else submits it: each run starts once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from monitoring.retrain_trigger.errors import PersistError

RunStatus = Literal["pending", "submitted", "running", "succeeded", "failed"]
ACTIVE_STATUSES: tuple[RunStatus, ...] = ("pending", "submitted", "running")
Outcome = Literal["triggered", "deduplicated", "cooldown", "in_flight"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    fingerprint TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    model       TEXT NOT NULL,
    alertname   TEXT NOT NULL,
    received_at REAL NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('triggered', 'cooldown', 'in_flight')),
    run_id      INTEGER REFERENCES runs (id),
    PRIMARY KEY (fingerprint, starts_at)
);
CREATE TABLE IF NOT EXISTS runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    model        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    status       TEXT NOT NULL
                 CHECK (status IN ('pending', 'submitted', 'running', 'succeeded', 'failed')),
    created_at   REAL NOT NULL,
    submitted_at REAL,
    finished_at  REAL,
    external_id  TEXT,
    error        TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_model ON runs (model, status);
"""


@dataclass(frozen=True)
class RunRecord:
    id: int
    model: str
    reason: str
    status: RunStatus
    created_at: float
    submitted_at: float | None
    finished_at: float | None
    external_id: str | None
    error: str | None


@dataclass(frozen=True)
class Admission:
    """What became of one firing alert; `run` is the new `pending` run when the outcome is `triggered`."""

    outcome: Outcome
    run: RunRecord | None = None


class StateStore:
    def __init__(self, path: str | Path, timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s

    def initialize(self) -> None:
        """Create the file and schema (idempotent) and switch the database to WAL."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise PersistError(f"{self.path}: cannot initialize the state database: {exc}") from exc
        finally:
            conn.close()

    def ping(self) -> None:
        with self._transaction() as conn:
            conn.execute("SELECT 1 FROM runs LIMIT 1")

    # ------------------------------------------------------------------------------------------ decisions
    def admit(
        self,
        *,
        fingerprint: str,
        starts_at: str,
        model: str,
        alertname: str,
        reason: str,
        now: float,
        cooldown_s: float,
        failure_backoff_s: float = 0.0,
    ) -> Admission:
        """Record a firing retrain alert and decide atomically: duplicate, cool-down (`cooldown_s` after a
        run that started and did not fail, `failure_backoff_s` after one that failed), in flight, new run."""
        with self._transaction() as conn:
            seen = conn.execute(
                "SELECT 1 FROM alerts WHERE fingerprint = ? AND starts_at = ?", (fingerprint, starts_at)
            ).fetchone()
            if seen:
                return Admission("deduplicated")
            outcome = self._blocking_outcome(conn, model, now, cooldown_s, failure_backoff_s)
            run = None
            if outcome is None:
                outcome = "triggered"
                run = self._insert_pending_run(conn, model, reason, now)
            conn.execute(
                "INSERT INTO alerts (fingerprint, starts_at, model, alertname, received_at, outcome, run_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (fingerprint, starts_at, model, alertname, now, outcome, run.id if run else None),
            )
            return Admission(outcome, run)

    @staticmethod
    def _blocking_outcome(
        conn: sqlite3.Connection, model: str, now: float, cooldown_s: float, failure_backoff_s: float
    ) -> Outcome | None:
        # The cool-down counts from the last run that really started and did not fail (a failed
        # submission never started); a run that failed blocks only for the short back-off after it ended,
        # so one broken run does not hold retraining for the whole cool-down.
        (last_submitted,) = conn.execute(
            "SELECT MAX(submitted_at) FROM runs WHERE model = ? AND status != 'failed'", (model,)
        ).fetchone()
        if last_submitted is not None and now - last_submitted < cooldown_s:
            return "cooldown"
        (last_failed,) = conn.execute(
            "SELECT MAX(finished_at) FROM runs WHERE model = ? AND status = 'failed'"
            " AND submitted_at IS NOT NULL",
            (model,),
        ).fetchone()
        if last_failed is not None and now - last_failed < failure_backoff_s:
            return "cooldown"
        (active,) = conn.execute(
            f"SELECT COUNT(*) FROM runs WHERE model = ? AND status IN {ACTIVE_STATUSES}", (model,)
        ).fetchone()
        return "in_flight" if active else None

    @staticmethod
    def _insert_pending_run(conn: sqlite3.Connection, model: str, reason: str, now: float) -> RunRecord:
        cursor = conn.execute(
            "INSERT INTO runs (model, reason, status, created_at) VALUES (?, ?, 'pending', ?)",
            (model, reason, now),
        )
        return RunRecord(cursor.lastrowid or 0, model, reason, "pending", now, None, None, None, None)

    # ---------------------------------------------------------------------------------------- transitions
    def mark_submitted(self, run_id: int, external_id: str, now: float) -> None:
        self._update(
            "UPDATE runs SET status = 'submitted', submitted_at = ?, external_id = ? WHERE id = ?",
            (now, external_id, run_id),
        )

    def mark_running(self, run_id: int) -> None:
        self._update("UPDATE runs SET status = 'running' WHERE id = ? AND status = 'submitted'", (run_id,))

    def mark_finished(self, run_id: int, succeeded: bool, now: float, error: str | None = None) -> None:
        self._update(
            "UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE id = ?",
            ("succeeded" if succeeded else "failed", now, error, run_id),
        )

    def abandon_submission(self, run_id: int, error: str, now: float) -> None:
        """The run never started: mark it failed and forget its alert, so the sender's retry is not a
        duplicate and can start the run."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = 'failed', finished_at = ?, error = ? WHERE id = ?",
                (now, error, run_id),
            )
            conn.execute("DELETE FROM alerts WHERE run_id = ?", (run_id,))

    # -------------------------------------------------------------------------------------------- queries
    def run(self, run_id: int) -> RunRecord:
        runs = self._select_runs("WHERE id = ?", (run_id,))
        if not runs:
            raise KeyError(f"run {run_id} not found in {self.path}")
        return runs[0]

    def runs(self, statuses: tuple[RunStatus, ...] | None = None) -> list[RunRecord]:
        if statuses is None:
            return self._select_runs("", ())
        marks = ", ".join("?" * len(statuses))
        return self._select_runs(f"WHERE status IN ({marks})", statuses)

    def in_flight_counts(self) -> dict[str, int]:
        with self._transaction() as conn:
            rows = conn.execute(
                f"SELECT model, COUNT(*) FROM runs WHERE status IN {ACTIVE_STATUSES} GROUP BY model"
            ).fetchall()
        return dict(rows)

    # ----------------------------------------------------------------------------------------- plumbing
    def _select_runs(self, where: str, args: tuple[object, ...]) -> list[RunRecord]:
        columns = "id, model, reason, status, created_at, submitted_at, finished_at, external_id, error"
        with self._transaction() as conn:
            rows = conn.execute(f"SELECT {columns} FROM runs {where} ORDER BY id", args).fetchall()
        return [RunRecord(*row) for row in rows]

    def _update(self, sql: str, args: tuple[object, ...]) -> None:
        with self._transaction() as conn:
            conn.execute(sql, args)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        conn.execute("PRAGMA synchronous=FULL")  # a recorded alert must survive a crash, not just an exit
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            raise PersistError(f"{self.path}: cannot open the state database: {exc}") from exc
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise PersistError(f"{self.path}: {exc}") from exc
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
