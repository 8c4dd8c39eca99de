from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model

from core.images import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def register(
    model: str,
    mlflow_run_id: str,
    reason: str,
    bundle: Input[Model],
    evaluation: Input[Artifact],
    repository: Input[Artifact],
    training_set: Input[Dataset],
    detector: Input[Artifact],
) -> NamedTuple("Registration", [("version", str), ("alias", str), ("model_uri", str)]):
    """An MLflow model version with signature, input example, the Triton repository and the fitted drift
    detector, tied by tags to the pipeline run, feature service, data range and code version. Alias
    `champion` for a model's first version, `challenger` after that; runs only when the gate passed.
    """
    from core.runtime_config import check_step_environment

    check_step_environment("register")  # first: before the heavy imports

    from components.register.step import run

    return run(
        model=model,
        mlflow_run_id=mlflow_run_id,
        reason=reason,
        bundle_dir=bundle.path,
        evaluation_dir=evaluation.path,
        repository_dir=repository.path,
        training_set_path=training_set.path,
        detector_dir=detector.path,
    )
