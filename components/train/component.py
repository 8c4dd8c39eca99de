from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from core.images import TRAINING_IMAGE


@dsl.component(base_image=TRAINING_IMAGE, install_kfp_package=False)
def train(model: str, training_set: Input[Dataset], bundle: Output[Model], test_set: Output[Dataset]):
    """Train `model` per its spec: time-based split, optional Optuna search, early stopping.

    `bundle` is the framework-agnostic model bundle (components/README.md); `test_set` holds the newest
    rows, never seen in training, for evaluation, the gate and the export parity check.
    """
    from core.runtime_config import check_step_environment

    check_step_environment("train")  # first: before the heavy imports

    from components.train.step import run

    summary = run(
        model=model, training_set_path=training_set.path, bundle_dir=bundle.path, test_path=test_set.path
    )
    bundle.metadata.update(summary)
