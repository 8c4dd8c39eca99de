"""Which accelerator a model trains on. Deep-learning frameworks get a GPU on the cluster; trees and
linear models do not need one. Local runs ignore accelerator requests."""

from core.spec.model import load_specs

GPU_FRAMEWORKS = frozenset({"pytorch", "transformers"})


def training_gpus(model: str) -> str:
    """The GPU count the train task asks for, as the string KFP's accelerator limit takes."""
    (spec,) = load_specs(names=[model])
    return "1" if spec.framework in GPU_FRAMEWORKS else "0"
