"""The one model every path serves: a small XGBoost conversion model, trained on demo data and exported with
the project's own export step, staged for Triton (two versions, for the router's canary), MLServer and the
in-process runner, plus the single-row OIP request bodies the load generators send.

Triton, the router and the in-process runner serve the self-contained model: the raw features in, the
version's preprocessing graph and then the trees (the local Python backend runs both). MLServer's XGBoost
runtime can run only the trees, so it gets the encoded matrix (`mlserver_body_file`) and does less work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

MODEL = "conversion-xgboost"
STABLE, CANARY = "1", "2"
SHADOW = "3"  # staged too: the `router-shadow` path copies live requests to it (inference/bench/shadow.py)
CANARY_PERCENT = 20
DEMO_CUSTOMERS = 200  # ~4,000 sessions: enough for a realistic tree ensemble, trained in about a second
MAX_ROUNDS = 100  # small on purpose: the benchmark measures serving overhead, not tree depth
INPUT = "input__0"


@dataclass(frozen=True)
class BenchModel:
    export_dir: Path  # export_repository's output (cluster/ and local/)
    triton_repository: Path  # <model>__v1, __v2 and __v3 (the shadow), as the router expects
    mlserver_repository: Path  # <model>/model-settings.json + xgboost.json
    isvc_file: Path  # InferenceService with the canary split
    body_file: Path  # one-row OIP JSON request: the raw features
    mlserver_body_file: Path  # the same row encoded: the trees' input__0 matrix
    inputs: dict[str, np.ndarray]  # the raw features of that row, as named tensors
    artifacts: list[Path]  # what the local model runs, in order: preprocess.onnx, xgboost.json

    @property
    def triton_model(self) -> str:
        from inference.router.isvc import triton_model_name

        return triton_model_name(MODEL, STABLE)


def demo_frame(customers: int = DEMO_CUSTOMERS) -> pd.DataFrame:
    """Training-set shaped demo rows (features + label), oldest first."""
    from feature_repo.demo_data.config import GeneratorConfig
    from feature_repo.demo_data.generate import generate
    from feature_repo.demo_data.labels import point_in_time_features

    tables = generate(GeneratorConfig(customers=customers))
    features = point_in_time_features(
        tables["session_stats"], tables["customer_activity"], tables["customer_profile"]
    )
    labels = tables["conversions"][["session_id", "converted"]]
    return features.merge(labels, on="session_id").sort_values("event_timestamp", ignore_index=True)


def build(work: Path) -> BenchModel:
    """Train, export (with the export step's parity check) and stage the model under `work`."""
    from core.frameworks import xgboost_model
    from core.spec.model import DEFAULT_SPEC_DIR, load_spec
    from inference.triton_repository import PREPROCESS_FILE, export_repository

    spec = load_spec(DEFAULT_SPEC_DIR / f"{MODEL}.yaml")
    frame = demo_frame()
    cut = int(len(frame) * 0.8)
    train, valid = frame.iloc[:cut], frame.iloc[cut:]
    params = {**spec.training.hyperparameters, "n_estimators": MAX_ROUNDS}
    predictor, _ = xgboost_model.fit(spec, train, valid, params, work / "bundle")
    export = export_repository(work / "bundle", spec, work / "export", valid.tail(50))
    local_model = export.model_dir("local")
    first = valid.head(1)
    inputs = predictor.encode(first)
    matrix = predictor.encoder.transform(first).astype(np.float32)
    artifacts = [local_model / "1" / name for name in (PREPROCESS_FILE, export.artifact)]
    return BenchModel(
        export_dir=work / "export",
        triton_repository=_stage_triton(local_model, work / "triton"),
        mlserver_repository=_stage_mlserver(artifacts[-1], work / "mlserver"),
        isvc_file=_write_isvc(work / "isvc.yaml"),
        body_file=_write_body(inputs, work / "request.json"),
        mlserver_body_file=_write_body({INPUT: matrix}, work / "request-matrix.json"),
        inputs=inputs,
        artifacts=artifacts,
    )


def request_body(tensors: dict[str, np.ndarray]) -> dict:
    from core.raw_features import oip_inputs

    return {"inputs": oip_inputs(tensors)}


def _write_body(tensors: dict[str, np.ndarray], path: Path) -> Path:
    path.write_text(json.dumps(request_body(tensors)))
    return path


def _stage_triton(local_model: Path, repository: Path) -> Path:
    from inference.router.routing import stage_model_version

    for version in (STABLE, CANARY, SHADOW):  # copies: the split and the shadow cost what real ones do
        stage_model_version(local_model, repository, MODEL, version)
    return repository


def _stage_mlserver(artifact: Path, repository: Path) -> Path:
    """MLServer's model folder: its XGBoost runtime loads the very JSON file Triton serves."""
    model_dir = repository / MODEL
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "xgboost.json").write_bytes(artifact.read_bytes())
    settings = {
        "name": MODEL,
        "implementation": "mlserver_xgboost.XGBoostModel",
        "parameters": {"uri": "./xgboost.json", "version": STABLE},
    }
    (model_dir / "model-settings.json").write_text(json.dumps(settings, indent=2))
    return repository


def _write_isvc(path: Path) -> Path:
    from inference.deploy.annotations import CANARY_VERSION_KEY, MODEL_VERSION_KEY

    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": MODEL, "annotations": {MODEL_VERSION_KEY: STABLE, CANARY_VERSION_KEY: CANARY}},
        "spec": {"predictor": {"canaryTrafficPercent": CANARY_PERCENT}},
    }
    path.write_text(yaml.safe_dump(isvc, sort_keys=False))
    return path
