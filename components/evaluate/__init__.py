"""Evaluate step: test metrics (overall and per slice), ROC/PR/reliability/confusion plots and the
Evidently report (`step.run`; `plots.py`, `report.py` and `tracking.py` are its parts)."""
