"""Transformer servers (`python -m inference.transformer`) as subprocesses of a test, and their stop."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core.ports import HOST
from tests.helpers.waiting import wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120


@dataclass
class Transformer:
    model: str
    process: subprocess.Popen
    http: str
    grpc: str
    log: Path


def start_transformer(
    model: str, predictor: str, protocol: str, ports: list[int], home: Path, log: Path, *extra: str
) -> Transformer:
    """Start one transformer for `model` calling `predictor` over `protocol` (v2 | grpc-v2) on
    `ports` (HTTP, gRPC), with MLOPS_HOME `home`, its output in `log`; `extra` are more CLI flags."""
    http_port, grpc_port = ports
    command = [
        sys.executable, "-m", "inference.transformer",
        "--model-name", model, "--predictor-host", predictor, "--protocol", protocol,
        "--feature-repo", str(ROOT / "feature_repo"),
        "--http-port", str(http_port), "--grpc-port", str(grpc_port), *extra,
    ]  # fmt: skip
    env = {**os.environ, "MLOPS_HOME": str(home)}
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Transformer(model, process, f"http://{HOST}:{http_port}", f"{HOST}:{grpc_port}", log)


def wait_ready(server: Transformer) -> None:
    wait_until_serving(
        f"{server.http}/v2/models/{server.model}/ready",
        server.process,
        START_TIMEOUT_S,
        details=lambda: server.log.read_text(errors="replace")[-2000:],
    )


def stop_transformers(servers: list[Transformer]) -> None:
    """SIGTERM to all first (each drains for a few seconds), then wait; SIGKILL what hangs."""
    running = [server.process for server in servers if server.process.poll() is None]
    for process in running:
        process.terminate()
    for process in running:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_rest_and_grpc(
    model: str, triton_http: int, triton_grpc: int, ports: list[int], home: Path, root: Path, *extra: str
) -> list[Transformer]:
    """Two transformers for `model`: one calling Triton over REST v2 (`ports[0:2]`), one over gRPC v2
    (`ports[2:4]`); their logs are `root`/rest.log and `root`/grpc.log."""
    return [
        start_transformer(model, f"{HOST}:{triton_http}", "v2", ports[0:2], home, root / "rest.log", *extra),
        start_transformer(
            model, f"{HOST}:{triton_grpc}", "grpc-v2", ports[2:4], home, root / "grpc.log", *extra
        ),
    ]


def train_xgboost_repository(spec: Any, frame: pd.DataFrame, root: Path, params: dict[str, Any]) -> Path:
    """Fit `spec` with XGBoost on the oldest 70% of `frame` (early stopping on the rest), export its Triton
    repository to `root`/repo; returns the bundle folder `root`/bundle."""
    from core.frameworks import xgboost_model
    from inference.triton_repository import export_repository

    cut = int(len(frame) * 0.7)
    bundle = root / "bundle"
    xgboost_model.fit(spec, frame.iloc[:cut], frame.iloc[cut:], params, bundle)
    export_repository(bundle, spec, root / "repo", frame.tail(40))
    return bundle
