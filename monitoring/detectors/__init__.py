"""Drift detectors fitted in training and loaded by the drift service (alibi-detect behind an interface).

The interface is `monitoring.detectors.base` (`DriftDetector`, `DriftResult`); load a bundle with
`monitoring.detectors.kinds.load_detector(folder)`, fit one with `monitoring.detectors.fit`.
"""
