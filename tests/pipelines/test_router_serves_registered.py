"""Every demo model the pipeline registered, served by the real Triton behind the router: `tritonclient`
over HTTP and gRPC through the router, and over gRPC directly against Triton, answers what the registered
MLflow model predicts on the same rows (issue #4's acceptance on both protocols)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from inference.deploy.annotations import MODEL_VERSION_KEY
from inference.router.__main__ import build_settings, parse_args
from inference.router.app import create_app
from inference.router.grpc_app import GrpcRouter
from inference.router.routing import stage_model_version
from inference.triton_local import TritonLocal
from pipelines.training import DEFAULT_MODELS
from tests.helpers.servers import serving_in_thread
from tests.helpers.triton_clients import GrpcClient

pytestmark = [pytest.mark.slow, pytest.mark.serving]
ROWS = 40
ATOL = 1e-5  # as test_triton_serves_what_mlflow_registered


def _champion(model: str):
    from mlflow import MlflowClient

    return MlflowClient().get_model_version_by_alias(model, "champion")


def _stage_champion(model: str, repository: Path, isvc_dir: Path) -> Path:
    """The champion's exported local Triton model as `<model>__v<version>` and its InferenceService."""
    import mlflow

    version = _champion(model)
    folder = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path=f"triton/local/{model}")
    stage_model_version(folder, repository, model, str(version.version))
    path = isvc_dir / f"{model}.yaml"
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": model, "annotations": {MODEL_VERSION_KEY: str(version.version)}},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "triton"}}}},
    }
    path.write_text(yaml.safe_dump(isvc))
    return path


def _scoring_rows(model: str) -> pd.DataFrame:
    import mlflow

    folder = mlflow.artifacts.download_artifacts(run_id=_champion(model).run_id, artifact_path="data")
    (path,) = list(Path(folder).iterdir())
    return pd.read_parquet(path).tail(ROWS).reset_index(drop=True)


def _http_infer(address: str, model: str, tensors: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
    """tritonclient.http with JSON tensors (the router accepts no binary tensor extension)."""
    import tritonclient.http as triton_http

    client = triton_http.InferenceServerClient(address)
    try:
        inputs = []
        for name, tensor in tensors.items():
            item = triton_http.InferInput(name, list(tensor.shape), _datatype(tensor))
            item.set_data_from_numpy(tensor, binary_data=False)
            inputs.append(item)
        outputs = [triton_http.InferRequestedOutput("output__0", binary_data=False)]
        result = client.infer(model, inputs, outputs=outputs)
        return result.as_numpy("output__0"), result.get_response()["model_version"]
    finally:
        client.close()


def _grpc_infer(client: GrpcClient, model: str, tensors: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
    inputs = [{"name": n, "datatype": _datatype(t), "data": t.tolist()} for n, t in tensors.items()]
    answer = client.call(kind="infer", model=model, inputs=inputs)
    assert answer["code"] == "OK", (model, answer)
    ((name, version, output),) = answer["answers"]
    assert name == model  # the router answers with the public name, Triton with its own
    return np.asarray(output), version


def _datatype(tensor: np.ndarray) -> str:
    if tensor.dtype == object:  # a categorical raw feature
        return "BYTES"
    return "INT64" if tensor.dtype == np.int64 else "FP32"


def test_every_registered_model_answers_alike_over_http_and_grpc_through_the_router(first_run, tmp_path):
    import mlflow

    from core.registry import champion_predictor

    repository, isvc_dir = tmp_path / "repository", tmp_path / "isvc"
    isvc_dir.mkdir()
    isvc_files = [_stage_champion(model, repository, isvc_dir) for model in DEFAULT_MODELS]
    with TritonLocal(log_path=tmp_path / "triton.log").start(repository) as triton:
        flags = [arg for path in isvc_files for arg in ("--isvc", str(path))]
        settings = build_settings(parse_args([*flags, "--triton-url", triton.http_url, "--seed", "0"]))
        grpc_router = GrpcRouter(settings, triton.grpc_address)
        grpc_router.start()
        through_router, direct = GrpcClient(grpc_router.address), GrpcClient(triton.grpc_address)
        try:
            with serving_in_thread(create_app(settings)) as rest_url:
                rest_address = rest_url.removeprefix("http://")
                for model in DEFAULT_MODELS:
                    rows = _scoring_rows(model)
                    expected = mlflow.pyfunc.load_model(f"models:/{model}@champion").predict(rows).to_numpy()
                    tensors = champion_predictor(model, dest=tmp_path / model).encode(rows)
                    version = str(_champion(model).version)
                    answers = {
                        "http via router": _http_infer(rest_address, model, tensors),
                        "grpc via router": _grpc_infer(through_router, model, tensors),
                    }
                    triton_name = f"{model}__v{version}"
                    direct_output, _ = _grpc_infer(direct, triton_name, tensors)
                    answers["grpc direct"] = (direct_output, version)
                    for path, (served, served_version) in answers.items():
                        assert served_version == version, (model, path)
                        np.testing.assert_allclose(served, expected, atol=ATOL, err_msg=f"{model} {path}")
        finally:
            through_router.close()
            direct.close()
            grpc_router.stop()
