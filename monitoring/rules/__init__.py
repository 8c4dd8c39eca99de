"""Prometheus alerting/recording rules and Alertmanager config: extraction, rendering and checks."""
