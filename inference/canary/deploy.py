"""Deploy a registered version: alone when it is the (first) champion, else as a canary.

    deploy_canary("conversion-xgboost", "2", "challenger", "local")   # -> "canary"
    deploy_canary("conversion-xgboost", "1", "champion", "local")     # -> "no-canary"

Cluster: the InferenceService is server-side applied (KServe splits the traffic, in either mode). Local: the
served versions are staged into the live runtime's Triton first (loaded through its repository API),
then the InferenceService file is written and the router's route is awaited, so the analysis that follows
never sends traffic to a version that is not there yet.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.registry import (
    CHALLENGER,
    CHAMPION,
    ModelVersionRef,
    configure_tracking,
    require_alias,
)
from core.spec.model import ModelSpec, load_specs
from core.timing import timed_step
from inference.canary import release
from inference.local_runtime import retire_version, staged_versions
from inference.runtime_file import require_runtime

STEP = "deploy_canary"
CANARY = "canary"


def deploy_canary(
    model: str,
    version: str,
    alias: str,
    serving_mode: str,
    say: Callable[[str], None] = print,
    spec_dir: Path | None = None,
    bad_canary: str | None = None,
) -> str:
    """Serve `version` of `model` (just registered with `alias`); returns "canary" or "no-canary".
    `bad_canary` (local demos and tests) overrides `$MLOPS_BAD_CANARY`."""
    with timed_step(STEP, model):
        (spec,) = load_specs(spec_dir, names=[model])
        configure_tracking()
        rollout = release.rollout_for(serving_mode)
        info = require_runtime() if serving_mode == "local" else None
        champion = require_alias(model, CHAMPION, STEP)
        require_self_contained(spec, champion)
        if alias == CHAMPION or champion.version == version:
            if info is not None:
                release.stage(info, champion)
                release.stage_detector(champion, say)
            rollout.deploy(spec)
            if info is not None:
                release.wait_for_route(info, model, [champion.version])
                for stale in set(staged_versions(info, model)) - {champion.version}:
                    retire_version(info, model, stale)
            say(f"[{STEP}] {model}: champion v{champion.version} serves alone (no challenger to canary)")
            return release.NO_CANARY
        challenger = require_alias(model, CHALLENGER, STEP)
        if alias != CHALLENGER or challenger.version != version:
            raise ValueError(
                f"{STEP} {model}: version {version} ({alias or 'no alias'}) is not the challenger "
                f"(challenger is v{challenger.version}); nothing to canary"
            )
        require_self_contained(spec, challenger)
        if info is not None:
            if champion.version not in staged_versions(info, model):  # e.g. a wiped .local/serving
                release.stage(info, champion)
            release.stage(info, challenger, bad_canary or release.bad_canary_mode(model))
            release.stage_detector(challenger, say)
        rollout.start_canary(spec)
        if info is not None:
            release.wait_for_route(info, model, [champion.version, challenger.version])
        say(
            f"[{STEP}] {model}: canary v{challenger.version} at {spec.canary.traffic_percent}% "
            f"next to champion v{champion.version}"
        )
        return CANARY


def require_self_contained(spec: ModelSpec, version: ModelVersionRef) -> None:
    """The Feast transformer sends raw features, which a tabular version registered before versions
    carried their own preprocessing cannot take (it wants the encoded `input__0` of its own encoder).
    Such a version is the one without a `serving_inputs` tag (register tags every version since)."""
    if spec.inputs.feature_service and version.serving_inputs is None:
        raise ValueError(
            f"{STEP} {spec.name}: v{version.version} was registered before model versions carried their "
            "own preprocessing (its model takes an encoded tensor, not the raw features the transformer "
            "sends): re-train before the next canary"
        )
