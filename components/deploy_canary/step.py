"""The deploy_canary step: serve the version `register` made (a first champion alone, a challenger
as a canary); the release logic is inference/canary/deploy.py, shared with `make rollout` and `make serve`."""

from __future__ import annotations

from inference.canary.deploy import deploy_canary


def run(model: str, version: str, alias: str, serving_mode: str) -> str:
    return deploy_canary(model=model, version=version, alias=alias, serving_mode=serving_mode)
