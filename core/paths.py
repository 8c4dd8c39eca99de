"""Where local state lives. Everything mutable sits under one folder so `make clean` removes it all."""

from __future__ import annotations

import os
from pathlib import Path

from core.settings import settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def state_root() -> Path:
    """The local state folder: `$MLOPS_HOME`, else `.local/` in the repository."""
    return (settings().home or REPO_ROOT / ".local").resolve()


def feature_data_dir() -> Path:
    """The feature repository's data folder (Parquet written by the demo generator)."""
    return state_root() / "data"


def feast_dir() -> Path:
    return state_root() / "feast"


def mlflow_dir() -> Path:
    return state_root() / "mlflow"


def pipeline_root() -> Path:
    return state_root() / "pipeline_root"


def write_text_atomically(path: Path, text: str) -> None:
    """Write beside `path` and rename over it, so a reader (another process polling the file) never sees
    half a file; creates the parent folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text)
    partial.replace(path)


def logs_dir() -> Path:
    return state_root() / "logs"


def monitoring_runtime_file() -> Path:
    """Where a live `make monitor` says where it listens (serving reads it: inference cannot import
    monitoring)."""
    return state_root() / "monitoring" / "runtime.json"
