"""Retrain trigger: receives Alertmanager webhooks and starts (re)training pipeline runs.

    python -m monitoring.retrain_trigger --port 8080 --state-db PATH --token-file PATH --mode local|kfp

See `app.py` for the HTTP API and `state.py` for what is persisted.
"""
