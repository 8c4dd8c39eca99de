from kfp import dsl

from core.images import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def deploy_canary(model: str, version: str, alias: str, serving_mode: str) -> str:
    """Serve the version `register` just made: a first champion alone (returns "no-canary"), a
    challenger as a canary next to the champion at the spec's traffic share (returns "canary").
    `serving_mode`: "cluster" (KServe InferenceService via the Kubernetes API) or "local" (the live
    local serving runtime: Triton + router).
    """
    from core.runtime_config import check_step_environment

    check_step_environment("deploy-canary")  # first: before the heavy imports

    from components.deploy_canary.step import run

    return run(model=model, version=version, alias=alias, serving_mode=serving_mode)
