"""Online detector state on disk, so a restarted service continues the detector's window.

One JSON file per (model, version), replaced atomically after each run of an online detector.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from monitoring.drift_service.errors import ConfigError


class CheckpointStore:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path_for(self, model: str, version: str) -> Path:
        return self.folder / _safe(model) / f"{_safe(version)}.json"

    def save(self, model: str, version: str, state: dict[str, Any]) -> Path:
        path = self.path_for(model, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(state, default=_jsonable), encoding="utf-8")
        # A crash mid-write must leave the previous checkpoint, never half a file.
        temporary.replace(path)
        return path

    def load(self, model: str, version: str) -> dict[str, Any] | None:
        path = self.path_for(model, version)
        if not path.is_file():
            return None
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"checkpoint {path}: unreadable ({exc})") from None
        if not isinstance(state, dict):
            raise ConfigError(f"checkpoint {path}: expected a JSON object")
        return state


def _safe(name: str) -> str:
    # Model names and versions come from the detector bundle; keep them inside the checkpoint folder.
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip(".")
    return cleaned or "_"


def _jsonable(value: Any) -> Any:
    # Detector state may hold numpy scalars/arrays; both have tolist().
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"checkpoint: {type(value).__name__} is not JSON-serialisable")
