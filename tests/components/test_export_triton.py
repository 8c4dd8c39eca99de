"""Triton export: config rendering per backend and target, the repository layout, and the parity check.

The bundles are real (a scikit-learn LogisticRegression exported with skl2onnx, an XGBoost classifier saved
as JSON) behind a small framework defined here (`load`, `export_triton_artifact`), registered in place of the
trainers' plug-ins so that these tests depend only on the bundle contract.
"""

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
from core.spec.model import ModelSpec, load_spec
from inference import python_backend_model
from inference.python_backend_model import TritonPythonModel, load_artifact
from inference.triton_config import render_config
from inference.triton_repository import (
    EXPORT_FILE,
    TRANSFORMER_FILES,
    TRANSFORMER_FOLDER,
    ParityError,
    export_repository,
)

SPECS = Path(__file__).resolve().parents[2] / "pipelines" / "models"
INPUT_COLUMNS = ["sessions_7d", "duration_s", "sentiment_score", "plan_tier"]
INPUTS = [{"name": "input__0", "datatype": "FP32", "dims": [7]}]
OUTPUTS = [{"name": "output__0", "datatype": "FP32", "dims": [2]}]


# ------------------------------------------------------------------- a tiny framework module (bundle API)
@dataclass
class TinyPredictor:
    info: BundleInfo
    encoder: FeatureEncoder
    model: Any  # LogisticRegression or xgboost.Booster

    def encode(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"input__0": self.encoder.transform(frame)}

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        features = self.encoder.transform(frame)
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
    (dest_dir / "model.onnx").write_bytes(sklearn_to_onnx(model, info.triton_inputs[0]["dims"][0]))
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
    encoder = FeatureEncoder.fit(frame, INPUT_COLUMNS, standardize=framework == "sklearn")
    features, label = encoder.transform(frame), frame["converted"].to_numpy()
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
    n_features = len(encoder.output_names)
    BundleInfo(
        model_name=f"tiny-{framework}",
        framework=framework,
        task="binary",
        label="converted",
        classes=["0", "1"],
        inputs=INPUT_COLUMNS,
        native_files=["encoder.json", native],
        triton_inputs=[{"name": "input__0", "datatype": "FP32", "dims": [n_features]}],
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


def spec_named(name: str) -> ModelSpec:
    return load_spec(SPECS / f"{name}.yaml")


@pytest.fixture
def tiny(request: pytest.FixtureRequest) -> None:
    use_tiny_frameworks(request)


# ------------------------------------------------------------------------------------- config.pbtxt
def test_cluster_fil_config_runs_on_gpu_with_forest_parameters() -> None:
    serving = spec_named("conversion-xgboost").serving
    text = render_config("conversion-xgboost", INPUTS, OUTPUTS, serving, "cluster", "xgboost.json")
    assert 'name: "conversion-xgboost"' in text
    assert 'backend: "fil"' in text
    assert "instance_group [ { kind: KIND_GPU, count: 1 } ]" in text
    assert "max_batch_size: 256" in text
    for key, value in [("model_type", "xgboost_json"), ("output_class", "true"), ("predict_proba", "true")]:
        assert f'{{ key: "{key}" value: {{ string_value: "{value}" }} }}' in text
    assert 'key: "threshold"' in text
    assert "preferred_batch_size: [ 64, 128, 256 ]" in text
    assert "max_queue_delay_microseconds: 500" in text
    assert "default_model_filename" not in text  # FIL's default file name
    assert 'name: "input__0"\n    data_type: TYPE_FP32\n    dims: [ 7 ]' in text
    assert 'name: "output__0"\n    data_type: TYPE_FP32\n    dims: [ 2 ]' in text


def test_cluster_onnx_config_uses_cpu_instances_when_the_spec_has_no_gpu() -> None:
    serving = spec_named("conversion-sklearn").serving
    text = render_config("conversion-sklearn", INPUTS, OUTPUTS, serving, "cluster", "model.onnx")
    assert 'backend: "onnxruntime"' in text and 'platform: "onnxruntime_onnx"' in text
    assert "instance_group [ { kind: KIND_CPU, count: 2 } ]" in text
    assert "dynamic_batching" not in text  # the spec has none
    assert "parameters" not in text and "KIND_GPU" not in text


def test_cluster_config_names_a_non_default_artifact() -> None:
    serving = spec_named("conversion-mlp").serving
    text = render_config("conversion-mlp", INPUTS, OUTPUTS, serving, "cluster", "mlp.onnx")
    assert 'default_model_filename: "mlp.onnx"' in text
    assert "KIND_GPU" in text


def test_local_config_is_the_python_backend_on_one_cpu_instance() -> None:
    serving = spec_named("conversion-xgboost").serving  # a GPU spec: local mode still serves on CPU
    text = render_config("conversion-xgboost", INPUTS, OUTPUTS, serving, "local", "xgboost.json")
    assert 'backend: "python"' in text
    assert "instance_group [ { kind: KIND_CPU, count: 1 } ]" in text
    assert "KIND_GPU" not in text and "fil" not in text and "platform" not in text
    assert "max_batch_size: 256" in text and "preferred_batch_size: [ 64, 128, 256 ]" in text
    assert '{ key: "artifact" value: { string_value: "xgboost.json" } }' in text


def test_text_model_inputs_render_as_int64_variable_length() -> None:
    serving = spec_named("intent-transformer").serving
    inputs = [
        {"name": "input_ids", "datatype": "INT64", "dims": [-1]},
        {"name": "attention_mask", "datatype": "INT64", "dims": [-1]},
    ]
    outputs = [{"name": "output__0", "datatype": "FP32", "dims": [6]}]
    text = render_config("intent-transformer", inputs, outputs, serving, "cluster", "model.onnx")
    assert 'name: "attention_mask"\n    data_type: TYPE_INT64\n    dims: [ -1 ]' in text
    assert "dims: [ 6 ]" in text
    # warm-up needs concrete shapes: the variable axis gets one token
    assert 'key: "attention_mask" value: { data_type: TYPE_INT64 dims: [ 1 ] zero_data: true }' in text


@pytest.mark.parametrize("target", ["cluster", "local"])
def test_every_config_warms_the_model_up_before_it_is_ready(target) -> None:
    serving = spec_named("conversion-xgboost").serving
    text = render_config("conversion-xgboost", INPUTS, OUTPUTS, serving, target, "xgboost.json")
    warmup = text[text.index("model_warmup [") :]
    assert "batch_size: 1" in warmup
    assert 'inputs { key: "input__0" value: { data_type: TYPE_FP32 dims: [ 7 ] zero_data: true } }' in warmup
    assert warmup.count("inputs {") == len(INPUTS)


def test_render_rejects_unknown_targets_and_datatypes() -> None:
    serving = spec_named("conversion-sklearn").serving
    with pytest.raises(ValueError, match="unknown Triton target 'edge'"):
        render_config("m", INPUTS, OUTPUTS, serving, "edge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input 'input__0' has datatype 'STRING'"):
        render_config("m", [{**INPUTS[0], "datatype": "STRING"}], OUTPUTS, serving, "local")


# ------------------------------------------------------------------------------------ export_repository
@pytest.mark.parametrize(
    ("framework", "spec_name", "artifact", "cluster_backend"),
    [
        ("sklearn", "conversion-sklearn", "model.onnx", "onnxruntime"),
        ("xgboost", "conversion-xgboost", "xgboost.json", "fil"),
    ],
)
def test_export_writes_both_repositories_and_records_parity(
    tiny: None, tmp_path: Path, framework: str, spec_name: str, artifact: str, cluster_backend: str
) -> None:
    frame = tiny_frame(300)
    bundle = build_bundle(tmp_path / "bundle", framework, frame)
    dest = tmp_path / "repo"
    stale = dest / "local" / spec_name / "1" / "stale.onnx"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")

    result = export_repository(bundle, spec_named(spec_name), dest, test_frame=frame.tail(60))

    assert result.artifact == artifact and result.parity_rows == 60
    assert result.parity_max_abs_diff is not None and 0.0 <= result.parity_max_abs_diff <= 1e-5
    cluster, local = dest / "cluster" / spec_name, dest / "local" / spec_name
    assert sorted(p.name for p in (cluster / "1").iterdir()) == [artifact]
    assert sorted(p.name for p in (local / "1").iterdir()) == sorted([artifact, "model.py"])
    assert not stale.exists()
    assert (local / "1" / "model.py").read_text() == Path(python_backend_model.__file__).read_text()
    assert (cluster / "1" / artifact).read_bytes() == (local / "1" / artifact).read_bytes()
    assert f'backend: "{cluster_backend}"' in (cluster / "config.pbtxt").read_text()
    assert 'backend: "python"' in (local / "config.pbtxt").read_text()
    transformer = dest / TRANSFORMER_FOLDER  # what the KServe transformer downloads
    assert sorted(p.name for p in transformer.iterdir()) == sorted(TRANSFORMER_FILES)
    assert (transformer / "encoder.json").read_bytes() == (bundle / "encoder.json").read_bytes()
    report = json.loads((dest / EXPORT_FILE).read_text())
    assert report["model_name"] == spec_name and report["artifact"] == artifact
    assert report["backends"] == {"cluster": cluster_backend, "local": "python"}
    assert report["parity_max_abs_diff"] == result.parity_max_abs_diff and report["tolerance"] == 1e-5


def test_export_without_test_rows_records_no_parity(tiny: None, tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "bundle", "xgboost", tiny_frame(200))
    result = export_repository(bundle, spec_named("conversion-xgboost"), tmp_path / "repo")
    assert result.parity_max_abs_diff is None and result.parity_rows == 0
    assert json.loads((tmp_path / "repo" / EXPORT_FILE).read_text())["parity_max_abs_diff"] is None


def test_export_fails_when_the_artifact_disagrees_with_the_model(tiny: None, tmp_path: Path) -> None:
    frame = tiny_frame(300)
    bundle = build_bundle(tmp_path / "bundle", "sklearn", frame, sabotage=True)
    with pytest.raises(ParityError, match=r"differs from the trained model by up to .* on 50 test rows"):
        export_repository(bundle, spec_named("conversion-sklearn"), tmp_path / "repo", frame.head(50))
    assert not (tmp_path / "repo" / EXPORT_FILE).exists()


def test_export_rejects_a_bundle_of_another_framework(tiny: None, tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "bundle", "xgboost", tiny_frame(100))
    with pytest.raises(ValueError, match="bundle framework 'xgboost' != spec framework 'sklearn'"):
        export_repository(bundle, spec_named("conversion-sklearn"), tmp_path / "repo")


# ------------------------------------------------------------------ the Python-backend model, outside Triton
def test_python_model_initializes_from_its_config_and_batches_requests(tiny: None, tmp_path: Path) -> None:
    frame = tiny_frame(200)
    bundle = build_bundle(tmp_path / "bundle", "xgboost", frame)
    export_repository(bundle, spec_named("conversion-xgboost"), tmp_path / "repo")
    model_dir = tmp_path / "repo" / "local" / "conversion-xgboost"
    config = {
        "input": INPUTS,
        "output": OUTPUTS,
        "parameters": {"artifact": {"string_value": "xgboost.json"}},
    }
    model = TritonPythonModel()
    model.initialize(
        {"model_config": json.dumps(config), "model_repository": str(model_dir), "model_version": "1"}
    )
    predictor = load(bundle, BundleInfo.load(bundle))
    parts = [frame.iloc[:3], frame.iloc[3:4], frame.iloc[4:9]]

    outputs = model._predict([predictor.encode(part) for part in parts])

    for part, output in zip(parts, outputs, strict=True):
        np.testing.assert_allclose(output, predictor.predict_proba(part), atol=1e-6)


def test_python_model_isolates_a_failing_request(tmp_path: Path) -> None:
    model = TritonPythonModel()
    model.input_names = ["input__0"]

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        if np.isinf(inputs["input__0"]).any():
            raise ValueError("infinite feature")
        return inputs["input__0"][:, :2] * 2

    model.run = run
    good, bad = np.ones((2, 3), np.float32), np.full((1, 3), np.inf, np.float32)
    outputs = model._predict([{"input__0": good}, {"input__0": bad}, {"input__0": good}])
    assert isinstance(outputs[1], ValueError)
    np.testing.assert_array_equal(outputs[0], np.full((2, 2), 2.0))
    np.testing.assert_array_equal(outputs[2], np.full((2, 2), 2.0))


def test_artifact_loader_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.onnx: exported artifact not found"):
        load_artifact(tmp_path / "missing.onnx", n_outputs=2)
    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"model.pt: cannot run a .pt artifact"):
        load_artifact(tmp_path / "model.pt", n_outputs=2)
    with pytest.raises(FileNotFoundError, match="no exported artifact"):
        python_backend_model.find_artifact(tmp_path, {})


def test_binary_probabilities_become_two_class_columns() -> None:
    p = np.array([0.25, 0.9], dtype=np.float32)
    np.testing.assert_allclose(
        python_backend_model.as_class_columns(p, 2), [[0.75, 0.25], [0.1, 0.9]], atol=1e-7
    )
    assert python_backend_model.as_class_columns(p, 1).shape == (2, 1)
