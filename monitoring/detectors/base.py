"""The drift-detector interface the drift service codes against, and the on-disk bundle format.

A bundle is a folder: `detector.json` (kind, model, version, features, preprocessing, thresholds),
`alibi/` (alibi-detect's `save_detector` output) and `reference.parquet` (the raw reference sample, for
humans and reports). alibi-detect is BSL-1.1 licensed: keeping it behind this interface lets another
library replace it without touching the service.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

MANIFEST = "detector.json"
ALIBI_DIR = "alibi"
REFERENCE = "reference.parquet"
REFERENCE_FALLBACK = "reference.jsonl"  # while the serving env's pyarrow is unusable (needs numpy 2)
FORMAT_VERSION = 1


class DetectorError(ValueError):
    """A detector cannot be fitted, loaded or applied; the message names what and where."""


@dataclass(frozen=True)
class DriftResult:
    drift: bool
    """The detector's verdict for this window (online: after the last row scored)."""
    statistics: dict[str, float]
    """Per feature (batch, cvm/fet online) or {"__all__": value} (multivariate online)."""
    p_values: dict[str, float]
    """Per feature where the test has one, else {}."""
    threshold: float
    """p-value threshold after correction (batch) or the online threshold at the current time."""
    rows: int
    """Rows scored."""


@runtime_checkable
class DriftDetector(Protocol):
    """What the drift service codes against; `monitoring.detectors.kinds` names each kind's class."""

    model: str
    version: str
    features: list[str]
    """The raw input columns `score` reads."""
    online: bool
    """True: tests after every row and keeps a checkpointable `state`; False: tests whole windows."""

    def score(self, rows: pd.DataFrame) -> DriftResult: ...

    def state(self) -> dict: ...

    def restore(self, state: dict) -> None: ...

    def save(self, detector_dir: Path) -> Path: ...


def save_detector_bundle(
    detector_dir: Path, manifest: dict[str, Any], alibi_detector: Any, reference: pd.DataFrame
) -> Path:
    """Write the bundle folder; `manifest` must hold at least kind, model, version and features."""
    from alibi_detect.saving import save_detector

    detector_dir = Path(detector_dir)
    detector_dir.mkdir(parents=True, exist_ok=True)
    save_detector(alibi_detector, detector_dir / ALIBI_DIR)
    body = {
        "format_version": FORMAT_VERSION,
        **manifest,
        "reference_file": write_table(reference, detector_dir),
    }
    (detector_dir / MANIFEST).write_text(json.dumps(body, indent=2, sort_keys=True), encoding="utf-8")
    return detector_dir


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_table(frame: pd.DataFrame, folder: Path) -> str:
    """Write the reference sample as Parquet, or as JSON lines when pyarrow cannot be imported."""
    frame = frame.reset_index(drop=True)
    if parquet_available():
        frame.to_parquet(folder / REFERENCE, index=False)
        return REFERENCE
    frame.to_json(folder / REFERENCE_FALLBACK, orient="records", lines=True, date_format="iso")
    return REFERENCE_FALLBACK


def read_table(path: Path) -> pd.DataFrame:
    """A Parquet table, or JSON lines for a `.jsonl` path."""
    path = Path(path)
    if not path.is_file():
        raise DetectorError(f"{path}: file not found")
    if path.suffix == ".jsonl":
        return pd.read_json(path, orient="records", lines=True)
    try:
        return pd.read_parquet(path)
    except ImportError as exc:
        raise DetectorError(
            f"{path}: cannot read Parquet here (pyarrow unusable: {exc}); pass a .jsonl file"
        ) from exc


def read_manifest(detector_dir: Path) -> dict[str, Any]:
    path = Path(detector_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DetectorError(f"{path}: detector manifest not found (is this a detector bundle?)") from None
    except json.JSONDecodeError as exc:
        raise DetectorError(f"{path}: invalid JSON: {exc}") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DetectorError(
            f"{path}: format_version {manifest.get('format_version')!r} is not {FORMAT_VERSION}"
        )
    return manifest


def load_alibi(detector_dir: Path, seed: int) -> Any:
    """alibi-detect's detector from the bundle; online ones re-simulate thresholds here (seconds)."""
    from alibi_detect.saving import load_detector as alibi_load

    with seeded(seed):
        return alibi_load(Path(detector_dir) / ALIBI_DIR)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Fix numpy/torch/random so online threshold simulation and reference splits repeat on load
    (a restored state is only valid against the same reference split)."""
    import torch

    np_state, py_state, torch_state = np.random.get_state(), random.getstate(), torch.get_rng_state()
    np.random.seed(seed)
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
        torch.set_rng_state(torch_state)


def finite_or_nan(value: Any) -> float:
    value = float(value)
    return value if np.isfinite(value) else float("nan")


def is_numeric(series: pd.Series) -> bool:
    """A column KS/CvM can test: numbers, not booleans (those are categories)."""
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
