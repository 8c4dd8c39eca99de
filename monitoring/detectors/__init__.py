"""Drift detectors fitted in training and loaded by the drift service (alibi-detect behind an interface).

Import from here: `load_detector(folder).score(rows) -> DriftResult`; fit with `monitoring.detectors.fit`.
"""
