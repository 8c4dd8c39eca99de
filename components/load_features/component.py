from kfp import dsl
from kfp.dsl import Dataset, Output

from core.images import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def load_features(model: str, start: str, end: str, training_set: Output[Dataset]) -> str:
    """Point-in-time training set for `model` from its Feast feature service over [start, end).

    Empty `start`/`end` fall back to the model spec's training window. Returns the lineage (feature
    service, time range, row count, content hash) as JSON; it is also the dataset's metadata.
    """
    import json

    from core.runtime_config import check_step_environment

    check_step_environment("load-features")  # first: before the heavy imports

    from components.load_features.step import run

    lineage = run(model=model, start=start, end=end, out_path=training_set.path)
    training_set.metadata.update(lineage)
    return json.dumps(lineage)
