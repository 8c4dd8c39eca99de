from kfp import dsl

from core.images import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def resolve_spec(model: str) -> str:
    """Load and validate the model spec (fails fast, naming file and field); return how many GPUs its
    training asks for on the cluster: "1" for the deep-learning frameworks, "0" otherwise.
    """
    from core.runtime_config import check_step_environment

    check_step_environment("resolve-spec")  # first: before the heavy imports

    from components.resolve_spec.step import run

    return run(model=model)
