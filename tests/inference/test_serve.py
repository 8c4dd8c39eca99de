"""`python -m inference.serve` as a user runs it: a subprocess over a tmp MLflow store with a champion and
a challenger, one real inference through its router, then SIGTERM: exit 0, ports closed, no Triton left."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow
import numpy as np
import psutil
import pytest

from core.paths import REPO_ROOT
from core.registry import CHALLENGER, CHAMPION, configure_tracking, set_alias
from inference.triton_local import Ports
from tests.helpers.environment import served_test
from tests.helpers.rollout import MODEL, fit_version, register_version, write_rollout_spec
from tests.helpers.router_stack import N_FEATURES, tensor
from tests.helpers.waiting import answers_ok, wait_for

STARTUP_TIMEOUT_S = 150.0
STOP_TIMEOUT_S = 30.0


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    output: Path
    repository: Path

    def text(self) -> str:
        return self.output.read_text()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """v1 champion, v2 challenger (the spec's canary share is 50%) in a tmp MLflow store."""
    home = tmp_path_factory.mktemp("mlops_home")
    (home / "specs").mkdir()
    # Clients send the features (no Feast transformer: this home has no feature store; the transformer
    # is served in tests/pipelines/test_serve_transformer.py).
    write_rollout_spec(home / "specs", request_fields=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        tracking_uri = configure_tracking()
        client = mlflow.MlflowClient()
        client.create_registered_model(MODEL)
        experiment = client.create_experiment(MODEL, artifact_location=str(home / "artifacts"))
        for number, model in enumerate((fit_version(0, 1.0), fit_version(0, 0.7)), start=1):
            register_version(client, experiment, model, home / f"export-{number}")
        set_alias(MODEL, CHAMPION, 1)
        set_alias(MODEL, CHALLENGER, 2)
        yield home, tracking_uri
        mlflow.set_tracking_uri(None)


@pytest.fixture
def served(home: tuple[Path, str], tmp_path: Path) -> Iterator[Served]:
    root, tracking_uri = home
    port = Ports.free().http
    env = {
        **os.environ,
        "MLOPS_HOME": str(root),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLOPS_SPEC_DIR": str(root / "specs"),
    }
    output = tmp_path / "serve.out"
    command = [sys.executable, "-m", "inference.serve", "--models", MODEL, "--port", str(port)]
    with output.open("w") as sink:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True
        )
    served = Served(process, f"http://127.0.0.1:{port}", output, root / "serving" / "repository")
    try:
        _wait_ready(served)
        yield served
    finally:
        if process.poll() is None:  # a failed test must not leave the stack behind
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=STOP_TIMEOUT_S)


def _wait_ready(served: Served) -> None:
    """Until the models are deployed (serve prints "serving;") and the router answers ready."""

    def state() -> str | bool:
        if served.process.poll() is not None:
            return "exited"
        return "serving;" in served.text() and answers_ok(f"{served.url}/v2/health/ready", timeout_s=1)

    try:
        outcome = wait_for(state, "serve deployed its models and the router is ready", STARTUP_TIMEOUT_S, 0.2)
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}; its output: {served.text()}") from None
    assert outcome is True, f"serve exited early: {served.text()}"


def _port_open(url: str) -> bool:
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def _processes_on(repository: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(repository) in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


@served_test
def test_serve_answers_through_the_router_and_stops_cleanly_on_sigterm(served: Served) -> None:
    rows = np.random.default_rng(3).normal(size=(4, N_FEATURES)).astype(np.float32)
    body = {"id": "serve-test", "inputs": [tensor(rows)]}
    response = httpx.post(f"{served.url}/v2/models/{MODEL}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    [output] = response.json()["outputs"]
    assert output["shape"] == [4, 2]
    probabilities = np.asarray(output["data"]).reshape(4, 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)

    text = served.text()
    assert f"router (OIP REST):  {served.url}/v2/models/<model>/infer" in text
    assert f"{MODEL}: stable v1 (50%), canary v2 (50%)" in text
    triton_url = re.search(r"triton HTTP:\s+(\S+)", text)
    assert triton_url and "triton gRPC:" in text and "triton metrics:" in text
    assert re.search(r"router \(OIP gRPC\):\s+127\.0\.0\.1:\d+", text), text
    runtime_json = served.repository.parent / "runtime.json"
    assert runtime_json.is_file(), "a running serve announces itself for attach()"
    assert _processes_on(served.repository), "no tritonserver found on the staged repository"

    began = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=STOP_TIMEOUT_S) == 0, served.text()
    stop_s = time.monotonic() - began
    assert "serve: stopped on SIGTERM" in served.text()
    assert not _port_open(served.url) and not _port_open(triton_url.group(1))
    assert _processes_on(served.repository) == [], "tritonserver outlived serve"
    assert not runtime_json.exists(), "runtime.json outlived serve"
    print(f"stopped in {stop_s:.1f} s")


def test_a_taken_port_is_refused_in_one_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "MLOPS_HOME": str(tmp_path)}
        env.pop("MLFLOW_TRACKING_URI", None)
        result = subprocess.run(
            [sys.executable, "-m", "inference.serve", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"error: serve: port {port} on 127.0.0.1 is not free (Address already in use); pick --port"
    )
    assert not (tmp_path / "serving").exists()
