"""Transformer servers (`python -m inference.transformer`) as subprocesses of a test, and their stop."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

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
