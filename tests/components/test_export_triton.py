"""Triton export: config rendering per backend and target, the repository layout, and the parity check.

The bundles are real (a scikit-learn LogisticRegression exported with skl2onnx, an XGBoost classifier saved
as JSON) behind the tiny framework of tests/helpers/tiny_bundles.py (`load`, `export_triton_artifact`),
registered in place of the trainers' plug-ins so that these tests depend only on the bundle contract. The
specs are the fixture specs (tests/helpers/specs.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from core.bundle import BundleInfo
from core.encoding_onnx import LegacyBundleError
from inference import python_backend_model
from inference.python_backend_model import TritonPythonModel, load_artifact
from inference.triton_config import render_config
from inference.triton_repository import EXPORT_FILE, ParityError, check_parity, export_repository
from tests.helpers.specs import fixture_spec
from tests.helpers.tiny_bundles import build_bundle, load, tiny_frame, use_tiny_frameworks

INPUTS = [{"name": "input__0", "datatype": "FP32", "dims": [7]}]
OUTPUTS = [{"name": "output__0", "datatype": "FP32", "dims": [2]}]


@pytest.fixture
def tiny(request: pytest.FixtureRequest) -> None:
    use_tiny_frameworks(request)


# ------------------------------------------------------------------------------------- config.pbtxt
def test_cluster_fil_config_runs_on_gpu_with_forest_parameters() -> None:
    serving = fixture_spec("conversion-xgboost").serving
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
    serving = fixture_spec("conversion-sklearn").serving
    text = render_config("conversion-sklearn", INPUTS, OUTPUTS, serving, "cluster", "model.onnx")
    assert 'backend: "onnxruntime"' in text and 'platform: "onnxruntime_onnx"' in text
    assert "instance_group [ { kind: KIND_CPU, count: 2 } ]" in text
    assert "dynamic_batching" not in text  # the spec has none
    assert "parameters" not in text and "KIND_GPU" not in text


def test_cluster_config_names_a_non_default_artifact() -> None:
    serving = fixture_spec("conversion-mlp").serving
    text = render_config("conversion-mlp", INPUTS, OUTPUTS, serving, "cluster", "mlp.onnx")
    assert 'default_model_filename: "mlp.onnx"' in text
    assert "KIND_GPU" in text


def test_local_config_is_the_python_backend_on_one_cpu_instance() -> None:
    serving = fixture_spec("conversion-xgboost").serving  # a GPU spec: local mode still serves on CPU
    text = render_config("conversion-xgboost", INPUTS, OUTPUTS, serving, "local", "xgboost.json")
    assert 'backend: "python"' in text
    assert "instance_group [ { kind: KIND_CPU, count: 1 } ]" in text
    assert "KIND_GPU" not in text and "fil" not in text and "platform" not in text
    assert "max_batch_size: 256" in text and "preferred_batch_size: [ 64, 128, 256 ]" in text
    assert '{ key: "artifact" value: { string_value: "xgboost.json" } }' in text


def test_text_model_inputs_render_as_int64_variable_length() -> None:
    serving = fixture_spec("intent-transformer").serving
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
    serving = fixture_spec("conversion-xgboost").serving
    text = render_config("conversion-xgboost", INPUTS, OUTPUTS, serving, target, "xgboost.json")
    warmup = text[text.index("model_warmup [") :]
    assert "batch_size: 1" in warmup
    assert 'inputs { key: "input__0" value: { data_type: TYPE_FP32 dims: [ 7 ] zero_data: true } }' in warmup
    assert warmup.count("inputs {") == len(INPUTS)


def test_render_rejects_unknown_targets_and_datatypes() -> None:
    serving = fixture_spec("conversion-sklearn").serving
    with pytest.raises(ValueError, match="unknown Triton target 'edge'"):
        render_config("m", INPUTS, OUTPUTS, serving, "edge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input 'input__0' has datatype 'STRING'"):
        render_config("m", [{**INPUTS[0], "datatype": "STRING"}], OUTPUTS, serving, "local")


# ------------------------------------------------------------------------------------ export_repository
def test_an_onnx_export_takes_the_raw_features_in_both_repositories(tiny: None, tmp_path: Path) -> None:
    frame = tiny_frame(300)
    bundle = build_bundle(tmp_path / "bundle", "sklearn", frame)
    dest = tmp_path / "repo"
    stale = dest / "local" / "conversion-sklearn" / "1" / "stale.onnx"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")

    result = export_repository(bundle, fixture_spec("conversion-sklearn"), dest, test_frame=frame.tail(60))

    assert result.artifact == "model.onnx" and result.parity_rows == 60
    assert result.parity_max_abs_diff is not None and 0.0 <= result.parity_max_abs_diff <= 1e-5
    cluster, local = dest / "cluster" / "conversion-sklearn", dest / "local" / "conversion-sklearn"
    assert sorted(p.name for p in (dest / "cluster").iterdir()) == ["conversion-sklearn"]
    assert sorted(p.name for p in (cluster / "1").iterdir()) == ["model.onnx"]
    assert sorted(p.name for p in (local / "1").iterdir()) == ["model.onnx", "model.py"]
    assert not stale.exists()
    assert (local / "1" / "model.py").read_text() == Path(python_backend_model.__file__).read_text()
    assert (cluster / "1" / "model.onnx").read_bytes() == (local / "1" / "model.onnx").read_bytes()
    graph = onnx.load(cluster / "1" / "model.onnx").graph
    assert [(i.name, i.type.tensor_type.elem_type) for i in graph.input] == [
        (name, onnx.TensorProto.FLOAT) for name in ("sessions_7d", "duration_s", "sentiment_score")
    ] + [("plan_tier", onnx.TensorProto.STRING)]  # the raw features: the encoder runs inside the graph
    for config in (cluster / "config.pbtxt", local / "config.pbtxt"):
        assert 'name: "plan_tier"\n    data_type: TYPE_STRING\n    dims: [ 1 ]' in config.read_text()
    assert 'backend: "onnxruntime"' in (cluster / "config.pbtxt").read_text()
    assert 'backend: "python"' in (local / "config.pbtxt").read_text()
    report = json.loads((dest / EXPORT_FILE).read_text())
    assert report["model_name"] == "conversion-sklearn" and report["artifact"] == "model.onnx"
    assert report["backends"] == {"cluster": "onnxruntime", "local": "python"}
    assert report["parity_max_abs_diff"] == result.parity_max_abs_diff and report["tolerance"] == 1e-5


def test_a_fil_export_is_an_ensemble_of_preprocessing_and_trees(tiny: None, tmp_path: Path) -> None:
    frame = tiny_frame(300)
    bundle = build_bundle(tmp_path / "bundle", "xgboost", frame)
    dest = tmp_path / "repo"
    old_step = dest / "cluster" / "conversion-xgboost_trees" / "1" / "stale.json"  # an earlier export's
    old_step.parent.mkdir(parents=True)
    old_step.write_text("stale")

    result = export_repository(bundle, fixture_spec("conversion-xgboost"), dest, test_frame=frame.tail(60))

    assert result.parity_max_abs_diff is not None and result.parity_max_abs_diff <= 1e-5
    cluster = dest / "cluster"
    assert sorted(p.name for p in cluster.iterdir()) == [
        "conversion-xgboost",
        "conversion-xgboost_preprocess",
        "conversion-xgboost_trees",
    ]
    ensemble = (cluster / "conversion-xgboost" / "config.pbtxt").read_text()
    assert 'platform: "ensemble"' in ensemble and "model_warmup" not in ensemble
    assert 'model_name: "conversion-xgboost_preprocess"' in ensemble
    assert 'input_map { key: "input__0" value: "preprocessed" }' in ensemble
    assert 'name: "plan_tier"\n    data_type: TYPE_STRING' in ensemble
    assert not old_step.exists()
    assert (cluster / "conversion-xgboost" / "1" / "ENSEMBLE").is_file()  # a version folder MLflow keeps
    preprocess = (cluster / "conversion-xgboost_preprocess" / "config.pbtxt").read_text()
    assert 'backend: "onnxruntime"' in preprocess and "KIND_CPU" in preprocess  # strings: CPU even on GPU
    trees = (cluster / "conversion-xgboost_trees" / "config.pbtxt").read_text()
    assert 'backend: "fil"' in trees and "KIND_GPU" in trees
    assert 'name: "input__0"\n    data_type: TYPE_FP32\n    dims: [ 7 ]' in trees
    local = dest / "local" / "conversion-xgboost"
    assert sorted(p.name for p in (local / "1").iterdir()) == ["model.py", "preprocess.onnx", "xgboost.json"]
    assert '{ string_value: "preprocess.onnx xgboost.json" }' in (local / "config.pbtxt").read_text()
    assert (local / "1" / "preprocess.onnx").read_bytes() == (
        cluster / "conversion-xgboost_preprocess" / "1" / "model.onnx"
    ).read_bytes()


def test_a_bundle_that_scales_on_the_wire_must_be_retrained(tiny: None, tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "bundle", "sklearn", tiny_frame(100))
    encoder = json.loads((bundle / "encoder.json").read_text())
    (bundle / "encoder.json").write_text(json.dumps({**encoder, "scale_in_model": False}))
    with pytest.raises(LegacyBundleError, match="re-train before the next canary"):
        export_repository(bundle, fixture_spec("conversion-sklearn"), tmp_path / "repo")


def test_export_without_test_rows_records_no_parity(tiny: None, tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "bundle", "xgboost", tiny_frame(200))
    result = export_repository(bundle, fixture_spec("conversion-xgboost"), tmp_path / "repo")
    assert result.parity_max_abs_diff is None and result.parity_rows == 0
    assert json.loads((tmp_path / "repo" / EXPORT_FILE).read_text())["parity_max_abs_diff"] is None


def test_export_fails_when_the_artifact_disagrees_with_the_model(tiny: None, tmp_path: Path) -> None:
    frame = tiny_frame(300)
    bundle = build_bundle(tmp_path / "bundle", "sklearn", frame, sabotage=True)
    with pytest.raises(ParityError, match=r"differs from the trained model by up to .* on 50 test rows"):
        export_repository(bundle, fixture_spec("conversion-sklearn"), tmp_path / "repo", frame.head(50))
    assert not (tmp_path / "repo" / EXPORT_FILE).exists()


def test_the_parity_check_runs_the_artifact_in_slices_over_every_row(tiny: None, tmp_path: Path) -> None:
    """Slices bound the artifact's memory (one call on every test row held the transformer's activations
    for all of them: 15 GB); every row is still compared, in order."""
    frame = tiny_frame(300)
    bundle = build_bundle(tmp_path / "bundle", "sklearn", frame, sabotage=True)  # rows differ unequally
    export_repository(bundle, fixture_spec("conversion-sklearn"), tmp_path / "repo")  # no parity rows
    chain = [tmp_path / "repo" / "cluster" / "conversion-sklearn" / "1" / "model.onnx"]
    info, rows = BundleInfo.load(bundle), frame.tail(50)

    whole = check_parity(bundle, info, chain, rows, tolerance=1.0, batch_rows=len(rows))
    sliced = check_parity(bundle, info, chain, rows, tolerance=1.0, batch_rows=7)
    assert whole > 0.01 and sliced == whole  # the worst row is found in whichever slice holds it
    for last in (1, 7, 8):  # a short last slice, an exact multiple, one row past it
        tail = rows.tail(last)
        assert check_parity(bundle, info, chain, tail, 1.0, batch_rows=7) == check_parity(
            bundle, info, chain, tail, 1.0, batch_rows=last
        )


def test_export_rejects_a_bundle_of_another_framework(tiny: None, tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "bundle", "xgboost", tiny_frame(100))
    with pytest.raises(ValueError, match="bundle framework 'xgboost' != spec framework 'sklearn'"):
        export_repository(bundle, fixture_spec("conversion-sklearn"), tmp_path / "repo")


# ------------------------------------------------------------------ the Python-backend model, outside Triton
def test_python_model_initializes_from_its_config_and_batches_requests(tiny: None, tmp_path: Path) -> None:
    frame = tiny_frame(200)
    bundle = build_bundle(tmp_path / "bundle", "xgboost", frame)
    export_repository(bundle, fixture_spec("conversion-xgboost"), tmp_path / "repo")
    model_dir = tmp_path / "repo" / "local" / "conversion-xgboost"
    config = {
        "input": BundleInfo.load(bundle).triton_inputs,
        "output": OUTPUTS,
        "parameters": {"artifact": {"string_value": "preprocess.onnx xgboost.json"}},
    }
    model = TritonPythonModel()
    model.initialize(
        {"model_config": json.dumps(config), "model_repository": str(model_dir), "model_version": "1"}
    )
    predictor = load(bundle, BundleInfo.load(bundle))
    parts = [frame.iloc[:3], frame.iloc[3:4], frame.iloc[4:9]]

    as_triton_gives_them = [  # the Python backend hands BYTES over as bytes objects
        {k: _as_bytes(v) if v.dtype == object else v for k, v in predictor.encode(part).items()}
        for part in parts
    ]
    outputs = model._predict(as_triton_gives_them)

    for part, output in zip(parts, outputs, strict=True):
        np.testing.assert_allclose(output, predictor.predict_proba(part), atol=1e-6)


def _as_bytes(texts: np.ndarray) -> np.ndarray:
    return np.array([t.encode() for t in texts.reshape(-1)], dtype=object).reshape(texts.shape)


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
        python_backend_model.find_artifacts(tmp_path, {})


def test_binary_probabilities_become_two_class_columns() -> None:
    p = np.array([0.25, 0.9], dtype=np.float32)
    np.testing.assert_allclose(
        python_backend_model.as_class_columns(p, 2), [[0.75, 0.25], [0.1, 0.9]], atol=1e-7
    )
    assert python_backend_model.as_class_columns(p, 1).shape == (2, 1)
