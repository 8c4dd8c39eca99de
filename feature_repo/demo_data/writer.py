"""Write the tables as Parquet plus a manifest, and tell whether a folder is already up to date."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from feature_repo.demo_data.config import TABLES, GeneratorConfig

MANIFEST = "manifest.json"
# Bump when the generator's logic changes, so that data written by an older version is redone.
GENERATOR_VERSION = 2  # 2: the offers catalogue and the sessions' offer impressions


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _time_range(frame: pd.DataFrame) -> dict[str, str | None]:
    stamps = frame["event_timestamp"]
    if stamps.empty:
        return {"min": None, "max": None}
    return {"min": stamps.min().isoformat(), "max": stamps.max().isoformat()}


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    # Write beside the target and rename, so a crash never leaves a half-written table behind.
    partial = path.with_name(path.name + ".partial")
    frame.to_parquet(partial, engine="pyarrow", index=False)
    partial.replace(path)


def build_manifest(config: GeneratorConfig, tables: dict[str, pd.DataFrame], out_dir: Path) -> dict[str, Any]:
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": config.seed,
        "parameters": config.to_json(),
        "start": config.start.isoformat(),
        "end": config.end.isoformat(),
        "drift": [spec.to_json() for spec in config.drift],
        "tables": {
            name: {
                "file": f"{name}.parquet",
                "rows": len(frame),
                "event_timestamp": _time_range(frame),
                "sha256": sha256_file(out_dir / f"{name}.parquet"),
            }
            for name, frame in tables.items()
        },
    }


def write_tables(config: GeneratorConfig, tables: dict[str, pd.DataFrame], out_dir: Path) -> Path:
    """Write every table and then the manifest (last, so it only ever describes complete files)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        _write_parquet(frame, out_dir / f"{name}.parquet")
    path = out_dir / MANIFEST
    text = json.dumps(build_manifest(config, tables, out_dir), indent=2, sort_keys=True) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def data_window(out_dir: Path) -> tuple[str, str]:
    """The demo data's `[start, end)` from its manifest (ISO strings; empty when there is none): what tests
    of the demo pass as an explicit window."""
    manifest = read_manifest(out_dir)
    if manifest is None:
        return "", ""
    return manifest["start"], manifest["end"]


def is_up_to_date(config: GeneratorConfig, out_dir: Path) -> bool:
    """True when the folder holds this config's data, every file unchanged since it was written."""
    manifest = read_manifest(out_dir)
    if not manifest or manifest.get("generator_version") != GENERATOR_VERSION:
        return False
    entries = manifest.get("tables") or {}
    if manifest.get("parameters") != config.to_json() or set(entries) != set(TABLES):
        return False
    for entry in entries.values():
        path = out_dir / entry["file"]
        if not path.is_file() or sha256_file(path) != entry["sha256"]:
            return False
    return True
