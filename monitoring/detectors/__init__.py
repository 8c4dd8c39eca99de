"""Drift detectors fitted in training and loaded by the drift service (alibi-detect behind an interface).

Import from here: `load_detector(folder).score(rows) -> DriftResult`; fit with `monitoring.detectors.fit`.
"""

from monitoring.detectors.base import DetectorError, DriftDetector, DriftResult, load_detector

__all__ = ["DetectorError", "DriftDetector", "DriftResult", "load_detector"]
