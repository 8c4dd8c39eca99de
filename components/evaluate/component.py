from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from core.images import TRAINING_IMAGE


@dsl.component(base_image=TRAINING_IMAGE, install_kfp_package=False)
def evaluate(
    model: str,
    lineage: str,
    pipeline_run: str,
    bundle: Input[Model],
    test_set: Input[Dataset],
    training_set: Input[Dataset],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[HTML],
    evaluation: Output[Artifact],
) -> str:
    """ROC AUC, PR AUC, F1, log loss, Brier score, ECE and per-slice metrics on the test split; plots and
    an Evidently report of training vs test data and model quality. Opens the MLflow run of this
    training attempt and returns its id.
    """
    from core.runtime_config import check_step_environment

    check_step_environment("evaluate")  # first: before the heavy imports

    from components.evaluate.step import run

    return run(
        model=model,
        lineage_json=lineage,
        pipeline_run=pipeline_run,
        bundle_dir=bundle.path,
        test_path=test_set.path,
        training_path=training_set.path,
        evaluation_dir=evaluation.path,
        report_path=report.path,
        kfp_metrics=metrics,
        kfp_classification=classification,
    )
