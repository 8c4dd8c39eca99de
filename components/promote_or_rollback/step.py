"""The promote_or_rollback step: act on the analysis' verdict; the release logic is
inference/canary/finish.py, shared with `make rollout`."""

from __future__ import annotations

from inference.canary.finish import finish_rollout


def run(model: str, version: str, decision: str, serving_mode: str) -> str:
    return finish_rollout(model=model, version=version, decision=decision, serving_mode=serving_mode)
