"""Canary analysis step: judge the canary against the stable version with the spec's criteria
(`step.run`; the logic is inference/canary/analyze.py)."""
