"""Scheduled Evidently reports per model version: reference = the version's training set (its MLflow
run's `data/` artifact), current = the recent requests the drift service logged (with their joined
outcomes). `python -m monitoring.reports --help`; runs in the platform image (a CronJob:
manifests/monitoring-reports). `sources.py` reads the rows, `build.py` runs Evidently, `publish.py`
talks to MLflow.
"""
