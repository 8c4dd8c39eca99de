from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Output

from core.images import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def validate_data(model: str, training_set: Input[Dataset], report: Output[Markdown]):
    """Schema, nulls, ranges, label balance, row count, and skew against the champion's training set.

    Fails the run with a one-line message naming the column and the rule; the full report is the
    `report` output either way.
    """
    from core.runtime_config import check_step_environment

    check_step_environment("validate-data")  # first: before the heavy imports

    from components.validate_data.step import run

    run(model=model, training_set_path=training_set.path, report_path=report.path)
