"""The analyze_canary step: judge the canary with the spec's criteria; the release logic is
inference/canary/analyze.py, shared with `make rollout`."""

from __future__ import annotations

from inference.canary.analyze import analyze_canary


def run(model: str, version: str, deployment: str, serving_mode: str) -> str:
    return analyze_canary(model=model, version=version, deployment=deployment, serving_mode=serving_mode)
