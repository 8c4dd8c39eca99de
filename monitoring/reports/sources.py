"""Recent logged rows of one model version, from the drift service over HTTP (`GET /v1/recent`, the
cluster's way: its sqlite file sits on a ReadWriteOnce volume in another pod) or from its state dir (local
mode, the same `quality.sqlite` read directly)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring.quality.store import DB_FILE, PredictionStore

MAX_ROWS = 100_000
PREDICTION = "prediction"  # P(positive) of a binary model, the predicted class name of a multiclass one
TARGET = "target"


class ReportError(RuntimeError):
    """The report cannot be made; the message is one line naming what and where."""


def fetch_rows(
    source: str, model: str, version: str, since: float, limit: int = MAX_ROWS
) -> list[dict[str, Any]]:
    """Logged rows (newest first) from `http(s)://drift-service` or a drift service `--state-dir`."""
    if source.startswith(("http://", "https://")):
        import httpx

        params = {"model": model, "version": version, "since": since, "limit": limit}
        try:
            reply = httpx.get(f"{source.rstrip('/')}/v1/recent", params=params, timeout=60)
            reply.raise_for_status()
        except httpx.HTTPError as exc:
            raise ReportError(f"drift service {source}: GET /v1/recent failed ({exc})") from None
        return reply.json()["rows"]
    path = Path(source) / DB_FILE
    if not path.is_file():
        raise ReportError(f"--source {source}: no {DB_FILE} (is it the drift service's --state-dir?)")
    store = PredictionStore(path)
    try:
        return store.recent(model, version, since, limit)
    finally:
        store.close()


def rows_frame(rows: list[dict[str, Any]], classes: list[str] | None) -> pd.DataFrame:
    """One column per logged input, plus `prediction` and `target` (None where no outcome is joined);
    rows logged without inputs (no detector for their version) are left out."""
    rows = [row for row in rows if row.get("features")]
    frame = pd.DataFrame([row["features"] for row in rows])
    proba = [row.get("proba") for row in rows]
    frame[PREDICTION] = [_prediction(p, classes) for p in proba]
    frame[TARGET] = [_target(row.get("label"), classes) for row in rows]
    return frame


def _prediction(proba: list[float] | None, classes: list[str] | None) -> Any:
    if not proba:
        return None
    return float(proba[1]) if classes is None else classes[int(np.argmax(proba))]


def _target(label: int | None, classes: list[str] | None) -> Any:
    if label is None:
        return None
    return int(label) if classes is None else classes[int(label)]
