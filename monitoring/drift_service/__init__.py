"""Drift service: receives KServe logger CloudEvents, feeds request rows to drift detectors, exports metrics.

    python -m monitoring.drift_service --port 8080 --detectors DIR [--checkpoint-dir DIR]

`service.py` is the framework-free core (routing, buffering, detector runs); `app.py` puts it behind HTTP.
"""
