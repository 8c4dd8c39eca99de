"""Which accelerator a model trains on: a GPU on the cluster when its framework plug-in says `GPU` (the
deep-learning ones); trees and linear models do not need one. Local runs ignore accelerator requests."""

from core.frameworks.registry import get_framework
from core.spec.model import load_specs


def run(model: str) -> str:
    """The GPU count the train task asks for, as the string KFP's accelerator limit takes."""
    (spec,) = load_specs(names=[model])
    return "1" if get_framework(spec.framework).GPU else "0"
