"""A throwaway MLflow registry for deploy tests: models with versions 1 and 2, each with a logged Triton
repository (`triton/cluster` and `triton/local`), and version references shaped like the registry's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest

from core.registry import ModelVersionRef, configure_tracking


def version_ref(name: str, version: str) -> ModelVersionRef:
    base = f"s3://models/{name}/{version}/artifacts/triton"
    return ModelVersionRef(name, version, f"{base}/cluster", f"{base}/local")


@contextmanager
def two_version_registry(home: Path, models: tuple[str, ...]) -> Iterator[Path]:
    """A fresh sqlite store under `home` (MLOPS_HOME while open) with versions 1 and 2 of each model."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        configure_tracking()
        client = mlflow.MlflowClient()
        for model in models:
            client.create_registered_model(model)
            experiment = client.create_experiment(model, artifact_location=str(home / "artifacts" / model))
            for number in (1, 2):
                _register_version(client, model, experiment, home / f"{model}-repo-{number}")
        yield home
        mlflow.set_tracking_uri(None)


def _register_version(client: mlflow.MlflowClient, model: str, experiment: str, folder: Path) -> None:
    (folder / "cluster" / model / "1").mkdir(parents=True)
    (folder / "cluster" / model / "config.pbtxt").write_text(f'name: "{model}"\nbackend: "fil"\n')
    (folder / "cluster" / model / "1" / "xgboost.json").write_text("{}")
    (folder / "local" / model / "1").mkdir(parents=True)
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifacts(str(folder), artifact_path="triton")
    triton_uri = f"{run.info.artifact_uri}/triton"
    client.create_model_version(model, triton_uri, run.info.run_id, tags={"triton_uri": triton_uri})
