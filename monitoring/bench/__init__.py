"""Monitoring benchmark (`python -m monitoring.bench`): drift detector throughput, false alarms, delay."""
