"""The detector kinds: which class implements each `monitoring.detector` kind of the model spec, and
loading a bundle by the kind its manifest names.

The spec validates kinds on its own (`core.spec.monitoring.Detector`, which must not import monitoring);
this is the only other place that lists them. A class is imported when its kind is used, so loading a
tabular detector does not import the text one (nor its share of alibi-detect).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from monitoring.detectors.base import MANIFEST, DetectorError, DriftDetector, read_manifest

if TYPE_CHECKING:
    from core.spec.model import ModelSpec

_TABULAR = "monitoring.detectors.tabular", "BatchTabularDetector"
_ONLINE = "monitoring.detectors.online", "OnlineTabularDetector"
_TEXT = "monitoring.detectors.text", "TextDriftDetector"
KIND_CLASSES: dict[str, tuple[str, str]] = {
    "ks": _TABULAR,
    "chi2": _TABULAR,
    "tabular": _TABULAR,
    "cvm_online": _ONLINE,
    "fet_online": _ONLINE,
    "mmd_online": _TEXT,
    "lsdd_online": _TEXT,
}
"""kind -> (module, class name)."""


class DetectorKind(Protocol):
    """The class side of a kind: fit one from a model spec, or load one from its bundle."""

    def fit_spec(
        self, spec: ModelSpec, version: str, reference: pd.DataFrame, columns: list[str]
    ) -> DriftDetector: ...

    def from_bundle(self, detector_dir: Path, manifest: dict[str, Any]) -> DriftDetector: ...


def detector_class(kind: object, where: str) -> DetectorKind:
    """The class implementing `kind`; `where` names its source in the error for an unknown kind."""
    if not isinstance(kind, str) or kind not in KIND_CLASSES:
        raise DetectorError(f"{where}: unknown detector kind {kind!r}")
    module, name = KIND_CLASSES[kind]
    return getattr(importlib.import_module(module), name)


def load_detector(detector_dir: Path) -> DriftDetector:
    """The detector saved in `detector_dir`. Load once per model version: online kinds take seconds."""
    manifest = read_manifest(detector_dir)
    cls = detector_class(manifest.get("kind"), str(Path(detector_dir) / MANIFEST))
    return cls.from_bundle(Path(detector_dir), manifest)
