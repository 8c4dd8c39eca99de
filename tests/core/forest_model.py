"""A framework plug-in that lives outside the package: scikit-learn's extremely randomized trees on the
tabular encoder's matrix, exported to ONNX with skl2onnx.

It is what a user writes to add a framework: this one file, with the declarations and `fit` / `load` /
`export_triton_artifact` the registry asks for (core/frameworks/registry.py). Its library is already in
the lock files, so nothing else changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.bundle import BundleInfo
from core.encoding import FeatureEncoder
from core.frameworks.base import (
    OUTPUT,
    TABULAR_INPUT,
    TabularPredictor,
    describe_bundle,
    input_columns,
    label_codes,
    validation_score,
)
from core.spec.base import FieldProblem
from core.spec.model import ModelSpec

NAME = "extra-trees"
BACKENDS = frozenset({"onnxruntime", "python"})
PIP_MODULES = ("sklearn", "joblib")
GPU = False
EPOCHS = False
MODEL_FILE = "forest.joblib"
ONNX_FILE = "model.onnx"


class ForestPredictor(TabularPredictor):
    def __init__(self, info: BundleInfo, encoder: FeatureEncoder, forest: Any) -> None:
        super().__init__(info, encoder)
        self.forest = forest

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        return self.forest.predict_proba(matrix)


def check_spec(spec: ModelSpec) -> None:
    if spec.training.early_stopping_rounds is not None:
        raise FieldProblem(("training", "early_stopping_rounds"), "a forest does not stop early; remove it")


def fit(
    spec: ModelSpec, train: pd.DataFrame, valid: pd.DataFrame, params: dict[str, Any], out_dir: Path
) -> tuple[ForestPredictor, float]:
    import joblib
    from sklearn.ensemble import ExtraTreesClassifier

    inputs = input_columns(spec, train)
    encoder = FeatureEncoder.fit(train, inputs)
    forest = ExtraTreesClassifier(random_state=spec.training.seed, n_jobs=1, **params)
    forest.fit(encoder.transform(train), label_codes(spec, train))
    out_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(forest, out_dir / MODEL_FILE)
    info = describe_bundle(spec, inputs, [encoder.save(out_dir), MODEL_FILE], encoder.raw_inputs, params)
    info.save(out_dir)
    predictor = load(out_dir, info)
    return predictor, validation_score(spec, valid, predictor.predict_proba(valid))


def load(folder: Path, info: BundleInfo) -> ForestPredictor:
    import joblib

    return ForestPredictor(info, FeatureEncoder.load(folder), joblib.load(Path(folder) / MODEL_FILE))


def export_triton_artifact(folder: Path, info: BundleInfo, dest_dir: Path) -> str:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    forest = load(folder, info).forest
    width = len(FeatureEncoder.load(folder).output_names)
    model = to_onnx(
        forest,
        initial_types=[(TABULAR_INPUT, FloatTensorType([None, width]))],
        options={id(forest): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    for node in model.graph.node:  # the contract's output name: probabilities as `output__0`
        node.output[:] = [OUTPUT if name == "probabilities" else name for name in node.output]
    outputs = model.graph.output
    for extra in [o for o in outputs if o.name != "probabilities"]:
        outputs.remove(extra)
    outputs[0].name = OUTPUT
    dest_dir.mkdir(parents=True, exist_ok=True)
    (dest_dir / ONNX_FILE).write_bytes(model.SerializeToString())
    return ONNX_FILE
