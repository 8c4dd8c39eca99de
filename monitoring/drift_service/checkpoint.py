"""Each detector's progress on disk, so a restarted service continues where the last one stopped.

One JSON file per (model, version), replaced atomically after each detector run: how many of the
(model, version)'s acknowledged rows have been scored (`rows_scored`, counting from the first row ever
journaled; `monitoring/drift_service/journal.py` replays the rows after it) and, for an online detector, its
state after those rows. Both in one file, so a crash can never leave a state that has seen rows the progress
says are unscored (they would be scored twice) or the reverse (lost).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitoring.drift_service.errors import ConfigError

FORMAT = 2  # 1 (no "format" key): the detector state alone, written before the journal existed


@dataclass(frozen=True)
class Progress:
    rows_scored: int
    state: dict[str, Any] | None  # an online detector's state after those rows; None for batch detectors


class CheckpointStore:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path_for(self, model: str, version: str) -> Path:
        return self.folder / safe_name(model) / f"{safe_name(version)}.json"

    def save(self, model: str, version: str, progress: Progress) -> Path:
        path = self.path_for(model, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".json.tmp")
        document = {"format": FORMAT, "rows_scored": progress.rows_scored, "state": progress.state}
        temporary.write_text(json.dumps(document, default=_jsonable), encoding="utf-8")
        # A crash mid-write must leave the previous checkpoint, never half a file.
        temporary.replace(path)
        return path

    def load(self, model: str, version: str) -> Progress | None:
        path = self.path_for(model, version)
        if not path.is_file():
            return None
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"checkpoint {path}: unreadable ({exc})") from None
        if not isinstance(document, dict):
            raise ConfigError(f"checkpoint {path}: expected a JSON object")
        if document.get("format") != FORMAT:  # format 1: the state alone, and no journal to resume
            return Progress(rows_scored=0, state=document or None)
        rows, state = document.get("rows_scored"), document.get("state")
        if not isinstance(rows, int) or rows < 0 or not (state is None or isinstance(state, dict)):
            raise ConfigError(f"checkpoint {path}: rows_scored must be an integer >= 0, state an object")
        return Progress(rows, state)


def safe_name(name: str) -> str:
    """A model name or version as one path segment that stays inside its folder."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip(".")
    return cleaned or "_"


def _jsonable(value: Any) -> Any:
    # Detector state may hold numpy scalars/arrays; both have tolist().
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"checkpoint: {type(value).__name__} is not JSON-serialisable")
