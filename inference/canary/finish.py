"""Finish a canary as the analysis decided: promote (the challenger serves alone and becomes champion) or
roll back (all traffic back on the champion, `challenger` alias dropped). Anything but "promote" rolls
back: an inconclusive canary proved nothing, and the next pipeline run canaries a new challenger.

`Rollout.promote`/`.rollback` keep the registry and the service consistent when interrupted (see
inference/deploy/rollout.py). Locally the router's route is awaited, then the versions no longer served
are unloaded from Triton and removed from the runtime's repository.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.registry import CHALLENGER, configure_tracking, resolve_alias
from core.spec.model import load_specs
from core.timing import timed_step
from inference.canary import release
from inference.local_runtime import retire_version, staged_versions
from inference.runtime_file import RuntimeInfo, require_runtime

STEP = "promote_or_rollback"
PROMOTE = "promote"


def finish_rollout(
    model: str,
    version: str,
    decision: str,
    serving_mode: str,
    say: Callable[[str], None] = print,
    spec_dir: Path | None = None,
) -> str:
    """Promote or roll back `version` of `model`; returns the rollout state ("promoted", "rolled_back")
    or "no-canary" when there was no canary."""
    if decision == release.NO_CANARY:
        say(f"[{STEP}] {model}: no canary to promote or roll back")
        return release.NO_CANARY
    with timed_step(STEP, model):
        (spec,) = load_specs(spec_dir, names=[model])
        configure_tracking()
        challenger = resolve_alias(model, CHALLENGER)
        if challenger is None or challenger.version != version:
            raise LookupError(
                f"{STEP} {model}: v{version} is no longer the challenger "
                f"(challenger: {challenger.version if challenger else 'none'}); was it decided already?"
            )
        rollout = release.rollout_for(serving_mode)
        if decision == PROMOTE:
            result = rollout.promote(spec)
        else:
            result = rollout.rollback(spec, release.recorded_reasons(model, version))
        if serving_mode == "local":
            retire_unserved(require_runtime(), model, result.champion.version)
        say(f"[{STEP}] {model}: v{version} {result.state.value}; v{result.champion.version} serves alone")
        return result.state.value


def retire_unserved(info: RuntimeInfo, model: str, served: str) -> None:
    """Once the router routes only `served`, drop every other staged version of `model` from Triton."""
    release.wait_for_route(info, model, [served])
    for version in staged_versions(info, model):
        if version != served:
            retire_version(info, model, version)
