"""A real Triton server on this machine, from the `nvidia-pytriton` wheel in the serving environment.

The wheel carries Triton's `tritonserver` binary and its Python backend (no other backend), so local
repositories serve every model through `model.py` (see inference/triton_repository.py). Nothing of pytriton is
imported; only its files are used:

    with TritonLocal().start("build/repo/local") as triton:
        httpclient.InferenceServerClient(triton.http_address)

    python -m inference.triton_local --model-repository DIR      # foreground until Ctrl-C

Two traps this module handles: the Python backend stub links `libpython3.11.so.1.0`, so the serving
interpreter's LIBDIR goes on LD_LIBRARY_PATH; and the stub imports numpy from the first `python` on PATH,
which must be the numpy<2 serving env (else every output fails "output tensor shape does not match").

`TritonDist` (the wheel's files) lives in `triton_dist.py`; free ports and readiness come from `core.ports`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from core.paths import logs_dir
from core.ports import HOST, free_ports, http_ok
from inference.triton_dist import SERVING_VENV, TritonDist, TritonError

STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 5
LOAD_TIMEOUT_S = 120.0  # a Python-backend model imports onnxruntime/xgboost in a fresh stub process
# Logged on every start without a GPU; not the reason anything failed.
_BENIGN_ERRORS = ("CudaDriverHelper has not been initialized",)


@dataclass(frozen=True)
class Ports:
    """Where a local Triton listens on the loopback host: HTTP, gRPC and metrics."""

    http: int
    grpc: int
    metrics: int

    @classmethod
    def free(cls) -> Ports:
        http, grpc, metrics = free_ports(3)
        return cls(http=http, grpc=grpc, metrics=metrics)


class TritonLocal:
    """Start, probe and stop one `tritonserver` process; a context manager that stops it on exit."""

    def __init__(
        self,
        serving_venv: Path = SERVING_VENV,
        log_path: str | Path | None = None,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
        model_control_mode: str = "none",
        extra_args: list[str] | None = None,
        load_models: list[str] | None = None,
    ) -> None:
        self.serving_venv = Path(serving_venv)
        self.log_path = Path(log_path) if log_path else None
        self.startup_timeout_s = startup_timeout_s
        self.model_control_mode = model_control_mode
        self.extra_args = list(extra_args or [])
        # explicit mode: the models loaded at start (None: the whole repository; []: none, load via the API)
        self.load_models = load_models
        self.ports: Ports | None = None
        self.startup_s: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._shm_prefix = ""

    # --------------------------------------------------------------------------------------- lifecycle
    def start(self, model_repository: str | Path, ports: Ports | None = None) -> TritonLocal:
        """Start the server on `model_repository` and return once `/v2/health/ready` answers 200."""
        if self.running:
            raise TritonError(f"tritonserver already running on {self.http_url}")
        repository = Path(model_repository).resolve()
        if not repository.is_dir():
            raise TritonError(f"{repository}: model repository not found")
        dist = TritonDist.find(self.serving_venv)
        self.ports = ports or Ports.free()
        self._workdir = Path(tempfile.mkdtemp(prefix="triton-local-"))
        # A per-server prefix keeps two servers on one machine (tests, developers) out of each other's shm.
        self._shm_prefix = f"mlops-triton-{uuid.uuid4().hex[:12]}-"
        backend_dir = dist.make_backend_dir(self._workdir)
        self.log_path = self.log_path or logs_dir() / f"triton-{self.ports.http}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        with self.log_path.open("ab") as log:  # a restart keeps the crashed server's last lines
            self._process = subprocess.Popen(
                self._command(dist, repository, backend_dir),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._environment(dist),
                start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop Triton in order
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - began
        return self

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (Triton drains in-flight requests), then SIGKILL of its process group after `timeout_s`."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # also the Python-backend stubs it started
                process.wait()
        self._remove_leftovers()

    def __enter__(self) -> TritonLocal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------ probes
    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's pid, which is also its process group's id (its backend stubs are in the group)."""
        return self._process.pid if self._process is not None else None

    @property
    def http_address(self) -> str:
        """host:port, as tritonclient's InferenceServerClient takes it."""
        return f"{HOST}:{self._ports().http}"

    @property
    def grpc_address(self) -> str:
        return f"{HOST}:{self._ports().grpc}"

    @property
    def http_url(self) -> str:
        return f"http://{self.http_address}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://{self.grpc_address}"

    @property
    def metrics_address(self) -> str:
        return f"{HOST}:{self._ports().metrics}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.metrics_address}/metrics"

    def is_ready(self) -> bool:
        return http_ok(f"{self.http_url}/v2/health/ready")

    def is_model_ready(self, model: str) -> bool:
        return http_ok(f"{self.http_url}/v2/models/{model}/ready")

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The log's last error lines (else its last lines), joined into one line for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = [line.strip() for line in self.log_path.read_text(errors="replace").splitlines()]
        errors = [line for line in text if _is_error(line)]
        return " | ".join((errors or [line for line in text if line])[-lines:])

    # -------------------------------------------------------------------------------------- internals
    def _command(self, dist: TritonDist, repository: Path, backend_dir: Path) -> list[str]:
        ports = self._ports()
        return [
            str(dist.binary),
            f"--model-repository={repository}",
            f"--backend-directory={backend_dir}",
            f"--backend-config=python,shm-region-prefix-name={self._shm_prefix}",
            f"--model-control-mode={self.model_control_mode}",
            f"--http-address={HOST}",
            f"--http-port={ports.http}",
            f"--grpc-address={HOST}",
            f"--grpc-port={ports.grpc}",
            f"--metrics-address={HOST}",
            f"--metrics-port={ports.metrics}",
            "--allow-gpu-metrics=false",
            # the request-latency quantiles the canary's p95 is read from, as the cluster's ServingRuntime
            "--metrics-config=summary_latencies=true",
            "--exit-timeout-secs=10",
            # explicit mode loads nothing by default; load the whole repository (or the models named), later
            # changes go via the API
            *(self._load_flags() if self.model_control_mode == "explicit" else []),
            *self.extra_args,
        ]

    def _load_flags(self) -> list[str]:
        models = ["*"] if self.load_models is None else self.load_models
        return [f"--load-model={model}" for model in models]

    def _environment(self, dist: TritonDist) -> dict[str, str]:
        env = dict(os.environ)
        library_path = [str(p) for p in dist.library_dirs()]
        if env.get("LD_LIBRARY_PATH"):
            library_path.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(library_path)
        env["PATH"] = os.pathsep.join([str(dist.python.parent), env.get("PATH", "")])
        env.pop("PYTHONPATH", None)  # the stub must see the serving env only, not the platform's packages
        env.pop("PYTHONHOME", None)
        return env

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise TritonError(
                    f"tritonserver exited with code {self._process.returncode} while starting "
                    f"(log {self.log_path}): {self.log_tail()}"
                )
            if self.is_ready():
                return
            time.sleep(0.1)
        raise TritonError(
            f"tritonserver not ready after {self.startup_timeout_s:.0f} s "
            f"(log {self.log_path}): {self.log_tail()}"
        )

    def _ports(self) -> Ports:
        if self.ports is None:
            raise TritonError("tritonserver has not been started")
        return self.ports

    def _remove_leftovers(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        if self._shm_prefix:  # regions a killed stub could not unlink
            for region in Path("/dev/shm").glob(f"{self._shm_prefix}*"):
                with contextlib.suppress(OSError):
                    region.unlink()


def repository_call(http_url: str, action: str, name: str) -> None:
    """Triton's repository API: `load` or `unload` model `name` (a TritonError in one line otherwise)."""
    import httpx  # the CLI below and Triton's own start need none of it

    url = f"{http_url}/v2/repository/models/{name}/{action}"
    try:
        answer = httpx.post(url, json={}, timeout=LOAD_TIMEOUT_S)
    except httpx.HTTPError as error:
        raise TritonError(f"triton {action} of {name} at {url} failed: {error}") from None
    if answer.status_code != 200:
        raise TritonError(f"triton {action} of {name} answered {answer.status_code}: {answer.text}")


def _is_error(line: str) -> bool:
    """Triton's error lines: glog severity E (`E1122 23:44:44.47 ...`) or the final `error: ...`."""
    flagged = line.startswith("error:") or (line[:1] == "E" and line[1:5].isdigit())
    return flagged and not any(benign in line for benign in _BENIGN_ERRORS)


# ------------------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m inference.triton_local", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model-repository", required=True, type=Path)
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--log-file", type=Path, help="default: <MLOPS_HOME>/logs/triton-<http-port>.log")
    parser.add_argument("--model-control-mode", default="none", choices=["none", "poll", "explicit"])
    args = parser.parse_args(argv)
    triton = TritonLocal(log_path=args.log_file, model_control_mode=args.model_control_mode)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop() runs in the finally below
    # A process started in the background by a non-interactive shell inherits SIGINT ignored, and Python
    # then installs no KeyboardInterrupt handler: Ctrl-C (or a supervisor's SIGINT) would do nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        triton.start(args.model_repository, Ports(args.http_port, args.grpc_port, args.metrics_port))
        print(
            f"triton ready in {triton.startup_s:.1f} s: http {triton.http_url}, grpc {triton.grpc_url}, "
            f"metrics {triton.metrics_url}, log {triton.log_path} (Ctrl-C stops)",
            flush=True,
        )
        while triton.running:
            time.sleep(0.5)
        print(f"tritonserver exited: {triton.log_tail()}", file=sys.stderr)
        return 1
    except TritonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        triton.stop()


if __name__ == "__main__":
    sys.exit(main())
