"""Transformers framework plug-in: a text classifier (a small BERT trained from scratch) over one string
request field, exported to ONNX with its token inputs.

The model, tokenizer handling and training loop live in `text_bert.py` and `text_tokens.py`, imported on
first use: torch and transformers take seconds to import (the serving environment has no transformers), and
every environment reads this module to validate specs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.spec.base import FieldProblem
from core.spec.label import require_classifier

if TYPE_CHECKING:
    import pandas as pd

    from core.bundle import BundleInfo, Predictor
    from core.spec.model import ModelSpec

NAME = "transformers"
BACKENDS = frozenset({"onnxruntime", "python"})
PIP_MODULES = ("torch", "transformers", "tokenizers")
GPU = True
EPOCHS = True


def check_spec(spec: ModelSpec) -> None:
    """A classifier that reads raw text: it needs a request field of dtype string."""
    require_classifier(spec.label, NAME)
    if not any(f.dtype == "string" for f in spec.inputs.request_fields or ()):
        raise FieldProblem(
            ("inputs", "request_fields"),
            "a transformers model reads raw text: list a request field with dtype string",
        )


def fit(
    spec: ModelSpec, train: pd.DataFrame, valid: pd.DataFrame, params: dict[str, Any], out_dir: Path
) -> tuple[Predictor, float]:
    from core.frameworks import text_bert

    return text_bert.fit(spec, train, valid, params, out_dir)


def load(folder: Path, info: BundleInfo) -> Predictor:
    from core.frameworks import text_bert

    return text_bert.load(folder, info)


def export_triton_artifact(folder: Path, info: BundleInfo, dest_dir: Path) -> str:
    from core.frameworks import text_bert

    return text_bert.export_triton_artifact(folder, info, dest_dir)
