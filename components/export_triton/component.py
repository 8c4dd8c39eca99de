from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from core.images import TRAINING_IMAGE


@dsl.component(base_image=TRAINING_IMAGE, install_kfp_package=False)
def export_triton(model: str, bundle: Input[Model], test_set: Input[Dataset], repository: Output[Artifact]):
    """A Triton model repository for the bundle: `cluster/` (ONNX Runtime or FIL, GPU per the spec) and
    `local/` (the same artifact in Triton's Python backend). Fails if the exported model's predictions
    differ from the native model's on the test rows beyond the stated tolerance.
    """
    from core.runtime_config import check_step_environment

    check_step_environment("export-triton")  # first: before the heavy imports

    from components.export_triton.step import run

    repository.metadata.update(
        run(model=model, bundle_dir=bundle.path, test_path=test_set.path, repository_dir=repository.path)
    )
