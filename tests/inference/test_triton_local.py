"""A real Triton server (the serving env's tritonserver, Python backend) on exported local repositories.

One server serves a tiny ONNX model and a tiny XGBoost model exported by `export_repository`; the tests
talk to it with `tritonclient` over HTTP and gRPC and compare with the native models' probabilities.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from core.bundle import load_predictor
from inference.triton_dist import TritonDist, TritonError
from inference.triton_local import Ports, TritonLocal
from inference.triton_repository import export_repository
from tests.helpers.specs import fixture_spec
from tests.helpers.tiny_bundles import build_bundle, tiny_frame, use_tiny_frameworks
from tests.helpers.triton_clients import grpc_infer, http_inputs
from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.serving]
MODELS = {"conversion-sklearn": "sklearn", "conversion-xgboost": "xgboost"}
REPO_ROOT = Path(__file__).resolve().parents[2]


class Served:
    """The running server, the rows it is asked about and what the native models answer for them."""

    def __init__(self, triton: TritonLocal, frame: pd.DataFrame, repository: Path, bundles: dict[str, Path]):
        self.triton, self.frame, self.repository = triton, frame, repository
        self.inputs = {m: load_predictor(b).encode(frame) for m, b in bundles.items()}
        self.expected = {m: load_predictor(b).predict_proba(frame) for m, b in bundles.items()}


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("triton")
    frame = tiny_frame(300)
    use_tiny_frameworks(request)
    bundles = {m: build_bundle(root / m, fw, frame) for m, fw in MODELS.items()}
    for model in MODELS:
        export_repository(bundles[model], fixture_spec(model), root / "repo", frame.tail(50))
    with TritonLocal(log_path=root / "triton.log").start(root / "repo" / "local") as triton:
        print(f"\ntriton start-up: {triton.startup_s:.2f} s")
        yield Served(triton, frame.tail(40).reset_index(drop=True), root / "repo" / "local", bundles)


def _http_infer(
    client: httpclient.InferenceServerClient, model: str, tensors: dict[str, np.ndarray]
) -> np.ndarray:
    return client.infer(model, http_inputs(httpclient, tensors)).as_numpy("output__0")


def _rows(tensors: dict[str, np.ndarray], part: slice) -> dict[str, np.ndarray]:
    return {name: values[part] for name, values in tensors.items()}


def test_server_reports_ready_models_and_start_up_time(served: Served) -> None:
    assert served.triton.is_ready()
    assert all(served.triton.is_model_ready(model) for model in MODELS)
    assert not served.triton.is_model_ready("no-such-model")
    startup_s = served.triton.startup_s
    assert startup_s is not None and 0 < startup_s <= served.triton.startup_timeout_s


@pytest.mark.parametrize("model", MODELS)
def test_http_outputs_equal_the_native_model(served: Served, model: str) -> None:
    client = httpclient.InferenceServerClient(served.triton.http_address)
    try:
        got = _http_infer(client, model, served.inputs[model])
    finally:
        client.close()
    assert got.dtype == np.float32 and got.shape == served.expected[model].shape
    np.testing.assert_allclose(got, served.expected[model], atol=1e-5, rtol=0)


@pytest.mark.parametrize("model", MODELS)
def test_grpc_outputs_equal_the_native_model(served: Served, model: str, tmp_path: Path) -> None:
    got = grpc_infer(served.triton.grpc_address, model, _rows(served.inputs[model], slice(7)), tmp_path)
    np.testing.assert_allclose(got, served.expected[model][:7], atol=1e-5, rtol=0)


def test_concurrent_requests_are_batched_and_answered_each_on_their_own(served: Served) -> None:
    model, rows = "conversion-xgboost", served.inputs["conversion-xgboost"]
    client = httpclient.InferenceServerClient(served.triton.http_address, concurrency=8)
    try:
        slices = [
            slice(i, i + size) for i, size in zip(range(0, 40, 5), [1, 2, 3, 4, 5, 1, 2, 3], strict=True)
        ]
        pending = []
        for part in slices:
            pending.append(client.async_infer(model, http_inputs(httpclient, _rows(rows, part))))
        results = [request.get_result().as_numpy("output__0") for request in pending]
    finally:
        client.close()
    for part, got in zip(slices, results, strict=True):
        np.testing.assert_allclose(got, served.expected[model][part], atol=1e-5, rtol=0)


def test_malformed_requests_fail_alone_and_the_server_keeps_serving(served: Served) -> None:
    client = httpclient.InferenceServerClient(served.triton.http_address)
    try:
        good = _rows(served.inputs["conversion-sklearn"], slice(3))
        missing = {name: values for name, values in good.items() if name != "plan_tier"}
        with pytest.raises(InferenceServerException, match="plan_tier"):
            _http_infer(client, "conversion-sklearn", missing)
        wrong_type = http_inputs(httpclient, good)
        as_fp64 = httpclient.InferInput("duration_s", [3, 1], "FP64")
        as_fp64.set_data_from_numpy(good["duration_s"].astype(np.float64))
        wrong_type = [as_fp64 if t.name() == "duration_s" else t for t in wrong_type]
        with pytest.raises(InferenceServerException, match="FP64"):
            client.infer("conversion-sklearn", wrong_type)
        got = _http_infer(client, "conversion-sklearn", good)
    finally:
        client.close()
    np.testing.assert_allclose(got, served.expected["conversion-sklearn"][:3], atol=1e-5, rtol=0)
    assert served.triton.running


def test_a_model_that_cannot_load_fails_start_up_with_the_log_tail(served: Served, tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    shutil.copytree(served.repository / "conversion-sklearn", repository / "broken")
    (repository / "broken" / "1" / "model.onnx").unlink()
    config = repository / "broken" / "config.pbtxt"
    config.write_text(config.read_text().replace('name: "conversion-sklearn"', 'name: "broken"'))
    triton = TritonLocal(log_path=tmp_path / "triton.log", startup_timeout_s=60)
    with pytest.raises(
        TritonError, match=r"exited with code 1 while starting .*model.onnx: exported artifact not found"
    ):
        triton.start(repository)
    assert not triton.running


def test_start_errors_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(TritonError, match="model repository not found"):
        TritonLocal().start(tmp_path / "nowhere")
    with pytest.raises(TritonError, match="no tritonserver"):
        TritonDist.find(tmp_path)


def test_cli_serves_until_interrupted_and_then_frees_its_ports(served: Served, tmp_path: Path) -> None:
    ports = Ports.free()
    command = [
        sys.executable,
        "-m",
        "inference.triton_local",
        f"--model-repository={served.repository}",
        f"--http-port={ports.http}",
        f"--grpc-port={ports.grpc}",
        f"--metrics-port={ports.metrics}",
        f"--log-file={tmp_path / 'cli.log'}",
        "--model-control-mode=explicit",  # still loads the whole repository at start
    ]
    cli = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert cli.stdout is not None
        line = cli.stdout.readline()
        assert line.startswith("triton ready in"), line
        client = httpclient.InferenceServerClient(f"127.0.0.1:{ports.http}")
        try:
            assert client.is_model_ready("conversion-xgboost")
        finally:
            client.close()
        cli.send_signal(signal.SIGINT)
        assert cli.wait(timeout=30) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
    wait_for(lambda: not _port_open(ports.http), f"port {ports.http} closed", timeout_s=30, interval_s=0.1)


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_cluster_ensemble_runs_in_a_real_triton(served: Served, tmp_path: Path) -> None:
    """The cluster's XGBoost ensemble (scheduling, tensor names, the BYTES warm-up) as Triton loads it, its
    two steps switched to the Python backend (the local build has no onnxruntime or FIL backend)."""
    cluster, repository = served.repository.parent / "cluster", tmp_path / "ensemble"
    shutil.copytree(cluster / "conversion-xgboost", repository / "conversion-xgboost")
    for step, artifact in [
        ("conversion-xgboost_preprocess", "model.onnx"),
        ("conversion-xgboost_trees", "xgboost.json"),
    ]:
        shutil.copytree(cluster / step, repository / step)
        config = (repository / step / "config.pbtxt").read_text()
        native = config[config.index("backend:") : config.index("max_batch_size")]
        config = config.replace(native, 'backend: "python"\n').replace("KIND_GPU", "KIND_CPU")
        if "parameters [" in config:  # FIL's parameters
            config = config[: config.index("parameters [")] + config[config.index("model_warmup") :]
        config += f'parameters [ {{ key: "artifact" value: {{ string_value: "{artifact}" }} }} ]\n'
        (repository / step / "config.pbtxt").write_text(config)
        shutil.copy2(served.repository / "conversion-xgboost" / "1" / "model.py", repository / step / "1")
    with TritonLocal(log_path=tmp_path / "triton.log").start(repository) as triton:
        client = httpclient.InferenceServerClient(triton.http_address)
        try:
            metadata = client.get_model_metadata("conversion-xgboost")
            got = _http_infer(client, "conversion-xgboost", served.inputs["conversion-xgboost"])
        finally:
            client.close()
    assert metadata["platform"] == "ensemble"
    assert {(i["name"], i["datatype"]) for i in metadata["inputs"]} == {
        ("sessions_7d", "FP32"),
        ("duration_s", "FP32"),
        ("sentiment_score", "FP32"),
        ("plan_tier", "BYTES"),
    }  # a client can build its request from the metadata alone
    np.testing.assert_allclose(got, served.expected["conversion-xgboost"], atol=1e-5, rtol=0)
