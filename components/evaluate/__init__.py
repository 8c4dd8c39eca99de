"""Evaluate step: test metrics (overall and per slice), ROC/PR/reliability/confusion plots, Evidently report.

`core.evaluate` is the entry point; `metrics`, `plots` and `report` are its parts. Nothing is imported here
so that importing the package (e.g. from a KFP component) stays cheap.
"""
