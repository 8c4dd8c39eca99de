from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from core.images import SERVING_IMAGE


@dsl.component(base_image=SERVING_IMAGE, install_kfp_package=False)
def fit_detector(model: str, training_set: Input[Dataset], detector: Output[Artifact]):
    """Fit `model`'s drift detector (spec `monitoring.detector`) on a sample of its training set.

    `detector` is a detector bundle folder (monitoring/detectors/base.py) with the placeholder version
    "candidate"; register stores it on the MLflow run as `detector/` stamped with the registered version.
    """
    from core.runtime_config import check_step_environment

    check_step_environment("fit-detector")  # first: before the heavy imports

    from components.fit_detector.step import run

    summary = run(model=model, training_set_path=training_set.path, detector_dir=detector.path)
    detector.metadata.update(summary)
