"""The deep-learning trainers on small real demo data: the PyTorch MLP and the from-scratch BERT.

Each trains for real (few epochs, one thread), writes a real bundle, and is checked on what later steps
rely on: it learns, it is reproducible, early stopping works, the bundle reloads to the same answers and
the exported ONNX gives the same probabilities under ONNX Runtime.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import torch

from components.train.splits import Splits, time_split
from core.bundle import BundleInfo, load_predictor
from core.encoding import FeatureEncoder
from core.frameworks import pytorch_model, text_tokens, torch_common, transformers_model
from core.metrics import classification_metrics
from core.settings import variable
from core.spec.model import ModelSpec
from feature_repo.demo_data.config import INTENTS
from tests.helpers.specs import fixture_spec


def _with_training(spec: ModelSpec, **changes) -> ModelSpec:
    return spec.model_copy(update={"training": spec.training.model_copy(update=changes)})


def _onnx_outputs(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output__0"], feeds)[0]


@pytest.fixture(autouse=True)
def _one_thread():
    # Training takes core.training_threads() (1 by default); prediction uses torch's global setting.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ------------------------------------------------------------------------------------------------ MLP
@pytest.fixture(scope="module")
def mlp_spec() -> ModelSpec:
    return fixture_spec("conversion-mlp")


@pytest.fixture(scope="module")
def conversion_splits(conversion_training_set: pd.DataFrame, mlp_spec: ModelSpec) -> Splits:
    return time_split(conversion_training_set, mlp_spec.training.split)


@pytest.fixture(scope="module")
def mlp_bundle(mlp_spec, conversion_splits, tmp_path_factory) -> tuple[Path, object, float]:
    """The MLP trained with the (fixture) spec's own hyper-parameters and epoch budget."""
    out = tmp_path_factory.mktemp("mlp")
    predictor, score = pytorch_model.fit(mlp_spec, conversion_splits.train, conversion_splits.valid, {}, out)
    return out, predictor, score


def test_mlp_learns_conversion(mlp_bundle, conversion_splits):
    out, predictor, score = mlp_bundle
    test = conversion_splits.test
    metrics = classification_metrics(test["converted"], predictor.predict_proba(test), ["0", "1"])
    assert score > 0.7, f"validation ROC AUC {score:.3f}"
    assert metrics["roc_auc"] > 0.7, f"test ROC AUC {metrics['roc_auc']:.3f}"
    valid = conversion_splits.valid
    on_valid = classification_metrics(valid["converted"], predictor.predict_proba(valid), ["0", "1"])
    assert score == pytest.approx(on_valid["roc_auc"])  # the spec's primary metric, on validation
    assert BundleInfo.load(out).hyperparameters["hidden_units"] == 64  # from the spec


def test_mlp_bundle_records_the_contract(mlp_bundle, conversion_splits):
    out, _, _ = mlp_bundle
    info = BundleInfo.load(out)
    assert (info.framework, info.task, info.classes) == ("pytorch", "binary", ["0", "1"])
    skipped = {"session_id", "customer_id", "event_timestamp", "converted"}
    assert info.inputs == [c for c in conversion_splits.train.columns if c not in skipped]
    assert info.triton_inputs == FeatureEncoder.load(out).raw_inputs  # the raw features, one tensor each
    assert [t["dims"] for t in info.triton_inputs] == [[1]] * len(info.inputs)
    assert info.triton_outputs == [{"name": "output__0", "datatype": "FP32", "dims": [2]}]
    assert all((out / name).is_file() for name in info.native_files)


def test_mlp_bundle_round_trip(mlp_bundle, conversion_splits):
    out, predictor, _ = mlp_bundle
    test = conversion_splits.test
    reloaded = load_predictor(out)
    proba = reloaded.predict_proba(test)
    assert proba.shape == (len(test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(proba, predictor.predict_proba(test))
    features = _matrix(reloaded, test)
    assert features.dtype == np.float32
    assert features.shape == (len(test), reloaded.info.training["architecture"]["n_features"])


def test_mlp_onnx_matches_predict_proba(mlp_bundle, conversion_splits, tmp_path):
    out, predictor, _ = mlp_bundle
    info = BundleInfo.load(out)
    name = pytorch_model.export_triton_artifact(out, info, tmp_path)
    model = onnx.load(tmp_path / name)
    assert name == "model.onnx"
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    test = conversion_splits.test
    features = _matrix(predictor, test)
    for rows in (slice(None), slice(0, 1)):  # the batch axis is dynamic
        np.testing.assert_allclose(
            _onnx_outputs(tmp_path / name, {"input__0": features[rows]}),
            predictor.predict_proba(test.iloc[rows]),
            atol=1e-5,
        )


def test_mlp_is_deterministic_for_a_seed(mlp_spec, conversion_splits, tmp_path):
    short = _with_training(mlp_spec, max_epochs=3)
    train, valid, test = conversion_splits.train, conversion_splits.valid, conversion_splits.test
    first, _ = pytorch_model.fit(short, train, valid, {}, tmp_path / "a")
    again, _ = pytorch_model.fit(short, train, valid, {}, tmp_path / "b")
    other, _ = pytorch_model.fit(_with_training(short, seed=1), train, valid, {}, tmp_path / "c")
    np.testing.assert_array_equal(first.predict_proba(test), again.predict_proba(test))
    assert not np.allclose(first.predict_proba(test), other.predict_proba(test))


def test_mlp_stops_early_and_keeps_the_best_epoch(mlp_spec, conversion_splits, tmp_path):
    # Labels that are pure noise: nothing generalises, so validation loss stops improving at once.
    rng = np.random.default_rng(0)
    train, valid = (
        split.assign(converted=rng.integers(0, 2, len(split)))
        for split in (conversion_splits.train, conversion_splits.valid)
    )
    spec = _with_training(mlp_spec, max_epochs=60, early_stopping_rounds=2)
    predictor, _ = pytorch_model.fit(spec, train, valid, {"learning_rate": 1e-2}, tmp_path)
    training = BundleInfo.load(tmp_path).training
    assert training["stopped_early"]
    assert training["epochs_trained"] == training["best_epoch"] + 2 < 60
    assert training["best_valid_loss"] == pytest.approx(min(training["valid_loss_history"]), abs=1e-4)
    # The returned model carries the best epoch's weights, not the last epoch's.
    reloaded = classification_metrics(valid["converted"], predictor.predict_proba(valid), ["0", "1"])
    assert reloaded["log_loss"] == pytest.approx(training["best_valid_loss"], abs=1e-5)


def test_mlp_learns_a_multiclass_label(mlp_spec, conversion_splits, tmp_path):
    tiers = ["free", "starter", "pro", "enterprise"]
    label = mlp_spec.label.model_copy(update={"column": "plan_tier", "task": "multiclass", "classes": tiers})
    spec = _with_training(mlp_spec.model_copy(update={"label": label}), max_epochs=10)
    data = [s.dropna(subset=["plan_tier"]) for s in (conversion_splits.train, conversion_splits.valid)]
    predictor, score = pytorch_model.fit(spec, *data, {}, tmp_path)
    proba = predictor.predict_proba(data[1])
    assert proba.shape == (len(data[1]), 4)
    assert "plan_tier" not in predictor.info.inputs
    majority = data[1]["plan_tier"].value_counts(normalize=True).max()
    accuracy = classification_metrics(data[1]["plan_tier"], proba, tiers)["accuracy"]
    assert accuracy > majority + 0.05, f"accuracy {accuracy:.3f} vs majority share {majority:.3f}"
    assert score > 0.5  # multiclass ROC AUC, one-vs-rest


def test_mlp_rejects_unknown_labels(mlp_spec, conversion_splits, tmp_path):
    train = conversion_splits.train.assign(converted=2)
    with pytest.raises(ValueError, match="not among the model's classes"):
        pytorch_model.fit(mlp_spec, train, conversion_splits.valid, {}, tmp_path)


# ---------------------------------------------------------------------------------------- transformer
TEXT_PARAMS = {"max_train_rows": 3000, "max_epochs": 3}


@pytest.fixture(scope="module")
def intent_spec() -> ModelSpec:
    return fixture_spec("intent-transformer")


@pytest.fixture(scope="module")
def intent_splits(intent_training_set: pd.DataFrame, intent_spec: ModelSpec) -> Splits:
    return time_split(intent_training_set, intent_spec.training.split)


@pytest.fixture(scope="module")
def intent_bundle(intent_spec, intent_splits, tmp_path_factory) -> tuple[Path, object, float]:
    """The spec's architecture, trained on the newest 3,000 messages for 3 epochs."""
    out = tmp_path_factory.mktemp("intent")
    predictor, score = transformers_model.fit(
        intent_spec, intent_splits.train, intent_splits.valid, TEXT_PARAMS, out
    )
    return out, predictor, score


def test_tokenizer_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    tokenizer = text_tokens.load_tokenizer()
    assert tokenizer.vocab_size == 30522
    # bert-base-uncased WordPiece ids: [CLS] hello world [SEP]
    assert tokenizer("Hello world")["input_ids"] == [101, 7592, 2088, 102]


def test_texts_are_tokenized_in_slices_into_the_same_tensors(monkeypatch):
    """Slices bound the tokenizer's per-text objects; the tensors are those of one call, in order."""
    tokenizer = text_tokens.load_tokenizer()
    texts = [f"message {i} " + "word " * (i % 9) for i in range(23)]
    whole = text_tokens.tokenize(tokenizer, texts, 12)
    monkeypatch.setattr(text_tokens, "TOKENIZE_SLICE", 5)  # 4 full slices and a short last one
    sliced = text_tokens.tokenize(tokenizer, texts, 12)
    assert whole[0].shape == (23, 12) and sliced[0].shape == (23, 12)
    assert torch.equal(whole[0], sliced[0]) and torch.equal(whole[1], sliced[1])
    assert not torch.equal(whole[1][0], whole[1][8])  # the texts differ in length: padding differs


def test_transformer_learns_the_demo_intents(intent_bundle, intent_splits):
    out, predictor, score = intent_bundle
    test = intent_splits.test
    metrics = classification_metrics(test["intent"], predictor.predict_proba(test), list(INTENTS))
    assert metrics["accuracy"] > 0.8, f"test accuracy {metrics['accuracy']:.3f} (chance ~0.33)"
    assert score > 0.6  # macro F1 on validation
    training = BundleInfo.load(out).training
    assert (training["train_rows"], training["epochs_trained"]) == (3000, 3)
    assert training["train_rows_available"] == len(intent_splits.train)


def test_transformer_bundle_round_trip(intent_bundle, intent_splits):
    out, predictor, _ = intent_bundle
    test = intent_splits.test.iloc[:300]
    reloaded = load_predictor(out)
    info = reloaded.info
    assert (info.framework, info.inputs, info.classes) == ("transformers", ["text"], list(INTENTS))
    assert [t["name"] for t in info.triton_inputs] == ["input_ids", "attention_mask"]
    assert all((out / name).is_file() for name in info.native_files)
    np.testing.assert_allclose(reloaded.predict_proba(test), predictor.predict_proba(test), atol=1e-6)
    tensors = reloaded.encode(test)
    for name in ("input_ids", "attention_mask"):
        assert tensors[name].dtype == np.int64
        assert tensors[name].shape == (len(test), 64)  # spec max_length


def test_transformer_onnx_matches_predict_proba(intent_bundle, intent_splits, tmp_path):
    out, predictor, _ = intent_bundle
    name = transformers_model.export_triton_artifact(out, BundleInfo.load(out), tmp_path)
    graph = onnx.load(tmp_path / name)
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [(i.name, i.type.tensor_type.elem_type) for i in graph.graph.input] == [
        ("input_ids", onnx.TensorProto.INT64),
        ("attention_mask", onnx.TensorProto.INT64),
    ]
    test = intent_splits.test.iloc[:200]
    expected = predictor.predict_proba(test)
    tensors = predictor.encode(test)
    np.testing.assert_allclose(_onnx_outputs(tmp_path / name, tensors), expected, atol=1e-4)
    # Batch and sequence axes are dynamic: one row, cut to its own length, gives the same answer.
    length = int(tensors["attention_mask"][0].sum())
    single = {key: value[:1, :length] for key, value in tensors.items()}
    np.testing.assert_allclose(_onnx_outputs(tmp_path / name, single), expected[:1], atol=1e-4)


def test_transformer_is_deterministic_for_a_seed(intent_spec, intent_splits, tmp_path):
    params = {"max_train_rows": 300, "max_epochs": 1}
    valid, test = intent_splits.valid.iloc[:100], intent_splits.test.iloc[:100]
    first, _ = transformers_model.fit(intent_spec, intent_splits.train, valid, params, tmp_path / "a")
    again, _ = transformers_model.fit(intent_spec, intent_splits.train, valid, params, tmp_path / "b")
    np.testing.assert_array_equal(first.predict_proba(test), again.predict_proba(test))


# ---------------------------------------------------------------------------------------------- device
def test_training_device_follows_the_environment(monkeypatch):
    monkeypatch.setenv(variable("train_device"), "cpu")
    assert torch_common.training_device() == torch.device("cpu")
    monkeypatch.setenv(variable("train_device"), "auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert torch_common.training_device().type == expected


@pytest.mark.parametrize("value", ["tpu", "gpu0", "mps"])
def test_training_device_rejects_unknown_devices(monkeypatch, value):
    monkeypatch.setenv(variable("train_device"), value)
    with pytest.raises(ValueError, match=f"{variable('train_device')}: must be auto, cpu, cuda or cuda:N"):
        torch_common.training_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="asserts the error where there is no GPU")
def test_asking_for_cuda_without_a_gpu_is_an_error_not_a_cpu_run(monkeypatch):
    monkeypatch.setenv(variable("train_device"), "cuda")
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        torch_common.training_device()


def test_the_bundle_records_where_it_trained(mlp_bundle):
    assert BundleInfo.load(mlp_bundle[0]).training["device"] == torch_common.describe_device(
        torch_common.training_device()
    )


def _matrix(predictor, frame):
    """What the estimator (and its exported artifact) takes: the encoder's scaled matrix."""
    return predictor.encoder.scale(predictor.encoder.transform(frame))
