"""Which drift detectors the service runs: `load_detectors` loads every detector bundle under a folder,
keyed by (model, version), and names the bundle in any start-up error. The contract the service codes
against is `monitoring.detectors.base.DriftDetector`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from monitoring.detectors.base import DriftDetector
from monitoring.drift_service.errors import ConfigError
from monitoring.payloads.logged import Key

DetectorLoader = Callable[[Path], DriftDetector]


def load_bundle_detector(folder: Path) -> DriftDetector:
    # Imported on use: alibi-detect is heavy and lives only in the serving environment.
    from monitoring.detectors.kinds import load_detector

    return load_detector(folder)


def load_detectors(
    root: str | Path, loader: DetectorLoader = load_bundle_detector
) -> dict[Key, DriftDetector]:
    """Every detector bundle (a folder with `detector.json`) under `root`, keyed by (model, version)."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"--detectors {root}: not a folder")
    folders = sorted(path.parent for path in root.rglob("detector.json"))
    if not folders:
        raise ConfigError(f"--detectors {root}: no detector.json found")
    detectors: dict[Key, DriftDetector] = {}
    for folder in folders:
        try:
            detector = loader(folder)
        except Exception as exc:  # whatever the bundle's loader raises, name the bundle at start-up
            raise ConfigError(f"detector bundle {folder}: {type(exc).__name__}: {exc}") from exc
        key = (detector.model, str(detector.version))
        if key in detectors:
            raise ConfigError(f"--detectors {root}: two bundles for model {key[0]} version {key[1]}")
        detectors[key] = detector
    return detectors
