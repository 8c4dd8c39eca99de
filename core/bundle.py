"""The trained-model bundle: the folder `train` writes and every later step reads.

A bundle holds `bundle.json` (what the model is and what it takes) and the framework's native files. It is
framework-agnostic to its readers: `load_predictor(folder).predict_proba(frame)` gives class probabilities
from raw feature rows (the columns of the training set), whatever trained it: the framework plug-in named
in `bundle.json` loads it (core/frameworks/registry.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from core.frameworks.registry import get_framework

BUNDLE_FILE = "bundle.json"


@dataclass(frozen=True)
class BundleInfo:
    """What `bundle.json` records.

    `inputs` are the raw columns a prediction needs, in order; `classes` are the output columns of
    `predict_proba`, in order (binary: ["0", "1"]). `triton_inputs` describes the tensors the exported
    Triton model takes (name, datatype, dims without the batch axis), `triton_outputs` likewise.
    """

    model_name: str
    framework: str
    task: str
    label: str
    classes: list[str]
    inputs: list[str]
    native_files: list[str]
    triton_inputs: list[dict[str, Any]]
    triton_outputs: list[dict[str, Any]]
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / BUNDLE_FILE).write_text(json.dumps(asdict(self), indent=2, sort_keys=True, default=str))

    @classmethod
    def load(cls, folder: Path) -> BundleInfo:
        path = Path(folder) / BUNDLE_FILE
        if not path.exists():
            raise FileNotFoundError(f"{folder}: not a model bundle (no {BUNDLE_FILE})")
        return cls(**json.loads(path.read_text()))


class Predictor(Protocol):
    info: BundleInfo

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape (rows, len(info.classes)), from raw input columns."""
        ...

    def encode(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The Triton input tensors for these rows (what the exported model takes), by input name."""
        ...


def load_predictor(folder: str | Path) -> Predictor:
    folder = Path(folder)
    info = BundleInfo.load(folder)
    return get_framework(info.framework).load(folder, info)
