"""A tiny framework plug-in, "tiny" (FeatureEncoder + a joblib-saved LogisticRegression), that can only load
bundles: the registration tests make its bundles themselves, so they depend on no trainer. A fresh
interpreter registers it with `from tests.helpers.tiny_plugin import TINY; register_framework(TINY)`."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from core.bundle import BundleInfo
from core.encoding import FeatureEncoder

FRAMEWORK = "tiny"


class TinyPredictor:
    def __init__(self, info: BundleInfo, encoder: FeatureEncoder, model: LogisticRegression) -> None:
        self.info, self.encoder, self.model = info, encoder, model

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(self.encoder.transform(frame).astype(np.float64))

    def encode(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"input__0": self.encoder.transform(frame)}


def load(folder: Path, info: BundleInfo) -> TinyPredictor:
    encoder = FeatureEncoder.from_dict(info.training["encoder"])
    return TinyPredictor(info, encoder, joblib.load(Path(folder) / "model.joblib"))


def _not_for_this_test(*_: object) -> None:
    raise AssertionError("the tiny framework only loads bundles in these tests")


TINY = SimpleNamespace(
    NAME=FRAMEWORK,
    BACKENDS=frozenset({"onnxruntime", "python"}),
    PIP_MODULES=("sklearn", "joblib"),
    GPU=False,
    EPOCHS=False,
    check_spec=lambda spec: None,
    fit=_not_for_this_test,
    load=load,
    export_triton_artifact=_not_for_this_test,
)
