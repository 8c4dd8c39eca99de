from kfp import dsl

from core.images import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def promote_or_rollback(model: str, version: str, decision: str, serving_mode: str) -> str:
    """Promote the canary `version` (`decision` "promote") or roll it back (any other verdict), keeping
    registry aliases and the InferenceService consistent; locally, versions no longer served are unloaded.
    Returns the rollout state ("promoted", "rolled_back"), or "no-canary" when there was none.
    """
    from core.runtime_config import check_step_environment

    check_step_environment("promote-or-rollback")  # first: before the heavy imports

    from components.promote_or_rollback.step import run

    return run(model=model, version=version, decision=decision, serving_mode=serving_mode)
