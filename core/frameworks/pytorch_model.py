"""PyTorch framework plug-in: a multi-layer perceptron on the tabular encoder's matrix (a classifier, or a
ranker's pointwise scorer), exported to ONNX.

The network, its training loop and the ONNX export live in `torch_mlp.py`, imported on first use: torch
takes seconds to import, and every environment reads this module to validate specs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from core.bundle import BundleInfo, Predictor
    from core.spec.model import ModelSpec

NAME = "pytorch"
BACKENDS = frozenset({"onnxruntime", "pytorch_libtorch", "python"})
PIP_MODULES = ("torch",)
GPU = True
EPOCHS = True


def check_spec(spec: ModelSpec) -> None:
    """No rules beyond the spec's own: any tabular feature service or request fields; a ranker is a
    pointwise scorer."""


def fit(
    spec: ModelSpec, train: pd.DataFrame, valid: pd.DataFrame, params: dict[str, Any], out_dir: Path
) -> tuple[Predictor, float]:
    from core.frameworks import torch_mlp

    return torch_mlp.fit(spec, train, valid, params, out_dir)


def load(folder: Path, info: BundleInfo) -> Predictor:
    from core.frameworks import torch_mlp

    return torch_mlp.load(folder, info)


def export_triton_artifact(folder: Path, info: BundleInfo, dest_dir: Path) -> str:
    from core.frameworks import torch_mlp

    return torch_mlp.export_triton_artifact(folder, info, dest_dir)
