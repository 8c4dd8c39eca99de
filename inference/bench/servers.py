"""The processes under test besides Triton (which `TritonLocal` runs): the canary router, MLServer, and a
cheap CloudEvents sink that receives the router's payload events.

Every server binds a free loopback port, logs to a file (never a terminal) with access logs off, and is
stopped by the context manager that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.paths import REPO_ROOT
from core.ports import free_ports, http_ok
from inference.router.shadow_priority import format_cpus

HOST = "127.0.0.1"
BENCH_VENV = REPO_ROOT / ".venv-bench"
PLATFORM_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
READY_TIMEOUT_S = 90.0
MLSERVER_WORKERS = 1  # MLServer's default `parallel_workers`


class ServerError(RuntimeError):
    """A server under test did not start; the message names it and its log."""


def _wait_ready(name: str, process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"{name} exited with code {process.returncode} while starting (log {log})")
        if http_ok(url):
            return
        time.sleep(0.2)
    raise ServerError(f"{name} not ready at {url} after {READY_TIMEOUT_S:.0f} s (log {log})")


@contextlib.contextmanager
def _process(name: str, command: list[str], ready_url: str, log: Path, **kwargs) -> Iterator[None]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
        )
    try:
        _wait_ready(name, process, ready_url, log)
        yield
    finally:
        _stop(process)


def _stop(process: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL of the whole group (MLServer's workers, uvicorn's children)."""
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def metric_total(metrics_url: str, name: str) -> float:
    """The sum of a Prometheus metric over all its label sets (0 when absent), from a text exposition."""
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    samples = (
        line.rsplit(" ", 1) for line in text.splitlines() if line.startswith((f"{name}{{", f"{name} "))
    )
    return sum(float(value) for _, value in samples)


# ------------------------------------------------------------------------------------------------ router
@dataclass(frozen=True)
class Router:
    http_url: str
    grpc_address: str | None  # None: this router has no gRPC endpoint
    shadow_metrics_url: str  # the shadow comparator's /metrics (the mirror's own process)


def router_flags() -> set[str]:
    """The router CLI's long options (another developer is adding gRPC; use it when it is there)."""
    done = subprocess.run(
        [str(PLATFORM_PYTHON), "-m", "inference.router", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    return {word.strip(",[]") for word in done.stdout.split() if word.startswith("--")}


@contextlib.contextmanager
def router(
    isvc: Path,
    triton_http: str,
    triton_grpc: str,
    logger_url: str,
    log: Path,
    repository: Path | None = None,
    shadow_cpus: frozenset[int] | None = None,
) -> Iterator[Router]:
    """`python -m inference.router`; with `repository`, a shadow runs on a Triton of its own (on
    `shadow_cpus` only, when given)."""
    http_port, grpc_port, shadow_port = free_ports(3)
    command = [
        str(PLATFORM_PYTHON), "-m", "inference.router", "--isvc", str(isvc), "--triton-url", triton_http,
        "--port", str(http_port), "--logger-url", logger_url, "--seed", "0",
        "--shadow-metrics-port", str(shadow_port),
    ] + (["--shadow-repository", str(repository)] if repository else []) + (
        ["--shadow-cpus", format_cpus(shadow_cpus)] if shadow_cpus else []
    )  # fmt: skip
    has_grpc = {"--grpc-port", "--triton-grpc"} <= router_flags()
    if has_grpc:
        command += ["--grpc-port", str(grpc_port), "--triton-grpc", triton_grpc]
    url = f"http://{HOST}:{http_port}"
    with _process("router", command, f"{url}/v2/health/ready", log, cwd=REPO_ROOT):
        shadow_metrics = f"http://{HOST}:{shadow_port}/metrics"
        yield Router(url, f"{HOST}:{grpc_port}" if has_grpc else None, shadow_metrics)


# ---------------------------------------------------------------------------------------------- MLServer
@dataclass(frozen=True)
class MLServer:
    http_url: str
    grpc_address: str
    workers: int


@contextlib.contextmanager
def mlserver(repository: Path, model: str, log: Path, workers: int = MLSERVER_WORKERS) -> Iterator[MLServer]:
    """`mlserver start` on `repository` with `debug: false`, which is what turns its access log off; ready
    once `model` is (the server answers ready even when a model failed to load)."""
    binary = BENCH_VENV / "bin" / "mlserver"
    if not binary.exists():
        raise ServerError(f"{binary}: not found (create the bench env: make .venv-bench/.synced)")
    http_port, grpc_port, metrics_port = free_ports(3)
    settings = {
        "debug": False,
        "host": HOST,
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": workers,
    }
    (repository / "settings.json").write_text(json.dumps(settings, indent=2))
    url = f"http://{HOST}:{http_port}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    with _process(
        "mlserver",
        [str(binary), "start", str(repository)],
        f"{url}/v2/models/{model}/ready",
        log,
        cwd=repository,
        env=env,
    ):
        yield MLServer(url, f"{HOST}:{grpc_port}", workers)


# ------------------------------------------------------------------------------------------- event sink
class EventSink:
    """A minimal HTTP/1.1 keep-alive server: answers every POST with 202, counts CloudEvents by type/endpoint.

    Raw asyncio, no framework: the router's events should cost the receiver as little as possible, so the
    benchmark measures the router's side of the logging. Runs on its own thread.
    """

    def __init__(self) -> None:
        self.port = free_ports(1)[0]
        self.counts: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="event-sink", daemon=True)
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def __enter__(self) -> EventSink:
        self._thread.start()
        start = asyncio.start_server(self._serve, HOST, self.port)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def total(self) -> int:
        return sum(self.counts.values())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while head := await reader.readuntil(b"\r\n\r\n"):
                headers = _headers(head)
                await reader.readexactly(int(headers.get("content-length", "0")))
                # request|response / default|canary: shows the split as well as the volume
                kind = f"{headers.get('ce-type', '').rsplit('.', 1)[-1]}/{headers.get('ce-endpoint', '')}"
                self.counts[kind] = self.counts.get(kind, 0) + 1
                writer.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        writer.close()


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    return {name.strip().lower(): value.strip() for name, value in pairs}
