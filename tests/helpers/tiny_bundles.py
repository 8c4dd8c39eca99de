"""A tiny framework (the bundle API: `load`, `export_triton_artifact`) over real scikit-learn and XGBoost
models, its bundles and data, standing in for the trainers' plug-ins so that export and serving tests depend
only on the bundle contract."""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.bundle import BundleInfo
from core.encoding import FeatureEncoder
from core.frameworks.registry import get_framework, register_framework, unregister_framework
from core.raw_features import raw_arrays

INPUT_COLUMNS = ["sessions_7d", "duration_s", "sentiment_score", "plan_tier"]


# ------------------------------------------------------------------- a tiny framework module (bundle API)
@dataclass
class TinyPredictor:
    info: BundleInfo
    encoder: FeatureEncoder
    model: Any  # LogisticRegression or xgboost.Booster

    def encode(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return raw_arrays(frame, self.encoder.raw_inputs)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        features = self.encoder.scale(self.encoder.transform(frame))
        if self.info.framework == "sklearn":
            return self.model.predict_proba(features.astype(np.float64))
        import xgboost

        p = self.model.predict(xgboost.DMatrix(features))
        return np.stack([1.0 - p, p], axis=1)


def load(folder: Path, info: BundleInfo) -> TinyPredictor:
    encoder = FeatureEncoder.from_dict(json.loads((folder / "encoder.json").read_text()))
    if info.framework == "sklearn":
        model = pickle.loads((folder / "model.pkl").read_bytes())
    else:
        import xgboost

        model = xgboost.Booster(model_file=str(folder / "xgboost.json"))
    return TinyPredictor(info=info, encoder=encoder, model=model)


def export_triton_artifact(folder: Path, info: BundleInfo, dest_dir: Path) -> str:
    if info.framework == "xgboost":
        shutil.copy(folder / "xgboost.json", dest_dir / "xgboost.json")
        return "xgboost.json"
    model = pickle.loads((folder / "model.pkl").read_bytes())
    if info.training.get("sabotage"):  # an export bug: the served model is not the trained one
        model.coef_ = model.coef_ * 1.5
    width = len(FeatureEncoder.load(folder).output_names)
    (dest_dir / "model.onnx").write_bytes(sklearn_to_onnx(model, width))
    return "model.onnx"


def sklearn_to_onnx(model: Any, n_features: int) -> bytes:
    """ONNX with the contract's tensor names: `input__0` in, probabilities as `output__0` (zipmap off)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = to_onnx(
        model,
        initial_types=[("input__0", FloatTensorType([None, n_features]))],
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )
    for node in onx.graph.node:
        node.output[:] = ["output__0" if name == "probabilities" else name for name in node.output]
    for output in onx.graph.output:
        if output.name == "probabilities":
            output.name = "output__0"
    return onx.SerializeToString()


# --------------------------------------------------------------------------------- bundles and frames
def tiny_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """Numeric and categorical inputs with missing values, and a label that depends on them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "sessions_7d": rng.poisson(3, rows).astype("float64"),
            "duration_s": rng.gamma(2.0, 60.0, rows),
            "sentiment_score": rng.normal(0.0, 1.0, rows),
            "plan_tier": rng.choice(["free", "starter", "pro", "enterprise"], rows),
        }
    )
    frame.loc[frame.index % 7 == 0, "duration_s"] = np.nan
    frame.loc[frame.index % 11 == 0, "plan_tier"] = None
    logit = 0.4 * frame["sessions_7d"] - 1.2 + frame["sentiment_score"] + (frame["plan_tier"] == "pro")
    frame["converted"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def build_bundle(folder: Path, framework: str, frame: pd.DataFrame, sabotage: bool = False) -> Path:
    """A real trained bundle of `framework` ("sklearn" or "xgboost") on `frame`."""
    encoder = FeatureEncoder.fit(
        frame, INPUT_COLUMNS, standardize=framework == "sklearn", scale_in_model=True
    )
    features, label = encoder.scale(encoder.transform(frame)), frame["converted"].to_numpy()
    folder.mkdir(parents=True)
    (folder / "encoder.json").write_text(json.dumps(encoder.to_dict()))
    if framework == "sklearn":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(max_iter=500).fit(features.astype(np.float64), label)
        (folder / "model.pkl").write_bytes(pickle.dumps(model))
        native = "model.pkl"
    else:
        import xgboost

        params = {"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "seed": 0}
        booster = xgboost.train(params, xgboost.DMatrix(features, label), num_boost_round=20)
        booster.save_model(str(folder / "xgboost.json"))
        native = "xgboost.json"
    BundleInfo(
        model_name=f"tiny-{framework}",
        framework=framework,
        task="binary",
        label="converted",
        classes=["0", "1"],
        inputs=INPUT_COLUMNS,
        native_files=["encoder.json", native],
        triton_inputs=encoder.raw_inputs,
        triton_outputs=[{"name": "output__0", "datatype": "FP32", "dims": [2]}],
        training={"sabotage": sabotage},
    ).save(folder)
    return folder


def use_tiny_frameworks(request: pytest.FixtureRequest) -> None:
    """Stand in for the sklearn and xgboost plug-ins with this module's `load`/`export_triton_artifact`
    (their declarations kept) until the requesting test ends."""
    for name in ("sklearn", "xgboost"):
        real = get_framework(name)
        tiny = SimpleNamespace(
            **{key: getattr(real, key) for key in ("NAME", "BACKENDS", "PIP_MODULES", "GPU", "EPOCHS")},
            check_spec=real.check_spec,
            fit=real.fit,
            load=load,
            export_triton_artifact=export_triton_artifact,
        )
        register_framework(tiny, replace=True)
        request.addfinalizer(lambda name=name: unregister_framework(name))
