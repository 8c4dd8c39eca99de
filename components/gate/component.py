from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Output

from core.images import TRAINING_IMAGE


@dsl.component(base_image=TRAINING_IMAGE, install_kfp_package=False)
def gate(
    model: str,
    mlflow_run_id: str,
    evaluation: Input[Artifact],
    test_set: Input[Dataset],
    decision: Output[Markdown],
) -> bool:
    """The spec's floors, and the current champion scored on the same test rows. Returns whether the
    model passed; every reason is in the `decision` output (shown in the UI) and on the MLflow run.
    """
    from core.runtime_config import check_step_environment

    check_step_environment("gate")  # first: before the heavy imports

    from components.gate.step import run

    return run(
        model=model,
        mlflow_run_id=mlflow_run_id,
        evaluation_dir=evaluation.path,
        test_path=test_set.path,
        decision_path=decision.path,
    )
