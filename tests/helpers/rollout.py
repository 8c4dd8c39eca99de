"""Registered versions of a tiny model for the rollout and serve tests: logistic regressions exported for
Triton's Python backend (`demo`, as tests/helpers/router_stack.py exports it), logged to a tmp MLflow store,
and a spec whose canary fits a short test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import yaml

from core.registry import MODEL_TENSORS, SERVING_INPUTS_TAG
from tests.helpers.router_stack import N_FEATURES, export_local_model
from tests.helpers.specs import fixture_spec_data

MODEL = "demo"  # export_local_model names its Triton model "demo"


def fit_version(seed: int, c: float) -> Any:
    """A logistic regression on rows of a fixed relation; different `c` give close, distinct versions."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    features = rng.normal(size=(300, N_FEATURES))
    label = (features @ np.array([1.0, -0.5, 0.8, 0.0, 0.3]) + rng.normal(size=300) > 0).astype(int)
    return LogisticRegression(C=c).fit(features, label)


def write_rollout_spec(folder: Path, request_fields: bool = False) -> None:
    """`demo.yaml` in `folder`: the conversion-sklearn fixture spec with a canary sized for a test; with
    `request_fields`, clients send the features themselves (no Feast transformer in front of the model)."""
    spec = fixture_spec_data("conversion-sklearn")
    spec["name"] = MODEL
    if request_fields:
        spec["inputs"] = {
            "request_fields": [{"name": f"f{i}", "dtype": "float64"} for i in range(N_FEATURES)]
        }
        # the fixture slices and checks behaviour by Feast features
        spec["evaluation"] |= {"slices": [], "behaviour": []}
    spec["serving"]["instances"] = 1
    # Half the traffic on the canary keeps the test short while both samples stay large enough for PSI.
    spec["canary"] = {
        "traffic_percent": 50,
        "analysis_window_s": 60,
        "min_requests": 100,
        # Loose latency and shift bounds: a shared 2-core machine jitters; the bad canaries break them anyway
        # (the slow one adds 50 ms, well over the 10 ms floor).
        "success": {
            "max_error_rate": 0.01,
            "max_p95_latency_ratio": 3.0,
            "min_p95_latency_increase_ms": 10,
            "max_prediction_shift": 0.3,
        },
    }
    (folder / f"{MODEL}.yaml").write_text(yaml.safe_dump(spec))


def register_version(client: mlflow.MlflowClient, experiment: str, model: Any, folder: Path) -> None:
    """`model` exported under `folder`, logged to a run of `experiment` and registered as the next version."""
    export_local_model(model, folder / "local" / MODEL)
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifacts(str(folder), artifact_path="triton")
    uri = f"{run.info.artifact_uri}/triton"
    # The demo model takes one tensor (`input__0`), not raw features: it says so, as register would.
    tags = {"triton_uri": uri, SERVING_INPUTS_TAG: MODEL_TENSORS}
    client.create_model_version(MODEL, uri, run.info.run_id, tags=tags)
